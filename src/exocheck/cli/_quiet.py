"""Third-party warnings that must not reach a user's terminal, each named with its reason.

A user of ``exocheck`` can do nothing about a warning a library raises about its own code, and
such a warning turns a one-line error into three lines. Each filter below names the warning (its
category, its message and the module that raises it) and why it is harmless to exocheck; any
other warning still shows, so a new one is seen.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple


class ThirdPartyWarning(NamedTuple):
    """One warning silenced: matched on ``message`` (regex) raised from ``module`` (regex)."""

    category: str
    message: str
    module: str
    reason: str


#: The category is named, not imported: filtering must not import the library (every command's
#: start-up would pay for it); the message and the raising module identify the warning.
THIRD_PARTY_WARNINGS: tuple[ThirdPartyWarning, ...] = (
    ThirdPartyWarning(
        category="cryptography.utils.CryptographyDeprecationWarning",
        message=r"DSA is deprecated",
        module=r"pyhanko(\.|$)",
        reason="pyHanko imports cryptography's DSA key class to recognise every key type; "
        "exocheck signs with Ed25519 and ECDSA, never DSA (raised on `coa` and `verify`)",
    ),
)


def quiet_third_party_warnings() -> None:
    """Ignore the warnings of :data:`THIRD_PARTY_WARNINGS` in this process."""
    for known in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=known.message, module=known.module)
