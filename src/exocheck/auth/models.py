"""The tables of users, sessions and electronic signatures, which live with every other table in
:mod:`exocheck.store.models` (one metadata, which Alembic compares in full)."""

from exocheck.store.models import MEANINGS, ROLES, AuthSession, Signature, User

__all__ = ["MEANINGS", "ROLES", "AuthSession", "Signature", "User"]
