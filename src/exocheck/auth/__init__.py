"""Who someone is: users, password hashing, sessions and roles, shared by the command line and
the web service::

    from exocheck.auth import Accounts
    from exocheck.lots.signatures import Signing
    from exocheck.store import Store

    store = Store.open("qc.db")
    accounts = Accounts(store)
    accounts.add_user("rita", role="reviewer", password=..., by="admin")
    Signing(store, accounts).sign("L001", user="rita", password=..., meaning="reviewed",
                                  reason="data checked against the raw files")

What a lot allows (signatures, four eyes, status) is :mod:`exocheck.lots`.
"""

from __future__ import annotations

from typing import Any

from exocheck.auth.accounts import Accounts, SessionView, UserView
from exocheck.store.models import MEANINGS, ROLES

__all__ = [
    "MEANINGS",
    "ROLES",
    "SIGNERS",
    "STATUSES",
    "Accounts",
    "SessionView",
    "Signing",
    "UserView",
    "canonical_sha256",
]


def __getattr__(name: str) -> Any:
    """The lot-signing names this package used to hold, from :mod:`exocheck.lots` (imported on
    first use: the lot lifecycle builds on accounts, not the other way round)."""
    if name in ("SIGNERS", "Signing", "canonical_sha256"):
        from exocheck.lots import signatures

        return getattr(signatures, name)
    if name == "STATUSES":
        from exocheck.lots.status import STATUSES

        return STATUSES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
