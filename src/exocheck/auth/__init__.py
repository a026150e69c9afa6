"""Users, sessions, roles and electronic signatures, shared by the command line and the web
service::

    from exocheck.auth import Accounts, Signing
    from exocheck.store import Store

    store = Store.open("qc.db")
    accounts = Accounts(store)
    accounts.add_user("rita", role="reviewer", password=..., by="admin")
    Signing(store, accounts).sign("L001", user="rita", password=..., meaning="reviewed",
                                  reason="data checked against the raw files")
"""

from __future__ import annotations

from exocheck.auth.accounts import Accounts, SessionView, UserView
from exocheck.auth.models import MEANINGS, ROLES
from exocheck.auth.signatures import SIGNERS, STATUSES, Signing, canonical_sha256

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
