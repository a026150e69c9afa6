"""Alembic migrations of the exocheck store (run programmatically by :func:`exocheck.store.session.upgrade`)."""
