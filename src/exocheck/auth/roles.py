"""Who may do what: the role × action matrix every shell enforces.

=====================  ========  ========  ====  =====
action                 analyst   reviewer  qa    admin
=====================  ========  ========  ====  =====
read (lots, audit...)  yes       yes       yes   yes
lot.create             yes
measurement.add        yes
sign (reviewed)                  yes
sign (approved)                            yes
sign (rejected)                  yes       yes
catalog.edit                               yes
instrument.edit                            yes
method.add             yes                 yes
method.approve                             yes
calibration.add        yes
user.manage                                      yes
=====================  ========  ========  ====  =====

Signing is checked in detail (meaning, four eyes) by :mod:`exocheck.auth.signatures`; here
``sign`` means "may open the signature dialog at all". ``measurement.add`` covers every result of
a lot (NTA, protein, markers, safety, imports, batch results, stability studies);
``catalog.edit`` covers products and specifications; ``instrument.edit`` the instrument
register; ``method.add`` writing an analytical method (a draft until QA approves it: four eyes,
never its author, :mod:`exocheck.methods.methods`); ``calibration.add`` a bead calibration. Who is acting is established by
:func:`exocheck.auth.identity.identify`, which then asks :func:`require`.
"""

from __future__ import annotations

from exocheck.auth.models import ROLES
from exocheck.errors import NotAllowed

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "read": ROLES,
    "lot.create": ("analyst",),
    "measurement.add": ("analyst",),
    "sign": ("reviewer", "qa"),
    "measurement.withdraw": ("analyst", "reviewer", "qa"),
    "lot.recall": ("qa",),
    "certificate.issue": ("analyst", "reviewer", "qa"),
    "catalog.edit": ("qa",),
    "instrument.edit": ("qa",),
    "method.add": ("analyst", "qa"),
    "method.approve": ("qa",),
    "calibration.add": ("analyst",),
    "user.manage": ("admin",),
}

_WHAT = {
    "lot.create": "create lots",
    "measurement.add": "add measurements",
    "sign": "sign lots",
    "measurement.withdraw": "withdraw measurements",
    "lot.recall": "recall lots",
    "certificate.issue": "issue certificates",
    "catalog.edit": "change products and specifications",
    "instrument.edit": "change the instrument register",
    "method.add": "write analytical methods",
    "method.approve": "approve analytical methods",
    "calibration.add": "record bead calibrations",
    "user.manage": "manage users",
}


def can(role: str, action: str) -> bool:
    """True when ``role`` may do ``action``."""
    return role in PERMISSIONS[action]


def require(role: str, action: str) -> None:
    """:class:`NotAllowed` unless ``role`` may do ``action``."""
    if not can(role, action):
        allowed = " or ".join(PERMISSIONS[action])
        raise NotAllowed(
            f"a user with role {role} cannot {_WHAT.get(action, action)} (it takes: {allowed})"
        )
