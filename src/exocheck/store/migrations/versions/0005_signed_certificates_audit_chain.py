"""Signed certificates and a tamper-evident audit trail: the hash chain over audit events
(existing events are chained in id order), issued certificates with their signed coa.json, the
public keys that signed them, and lot recalls.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op

from exocheck.store import chain

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TRIGGERS = {
    "sqlite": (
        ["DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"],
        [
            f"CREATE TRIGGER audit_events_no_{verb} BEFORE {verb.upper()} ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END"
            for verb in ("update", "delete")
        ],
    ),
    "postgresql": (
        ["ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"],
        ["ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"],
    ),
}


def _chain_existing_events() -> None:
    """Chain the events written before this migration (the append-only trigger is lifted for
    this one change and restored)."""
    bind = op.get_bind()
    events = sa.table(
        "audit_events",
        *(
            sa.column(name)
            for name in ("id", "actor", "action", "entity", "entity_key", "lot_id", "chain_sha256")
        ),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("before", sa.JSON()),
        sa.column("after", sa.JSON()),
    )
    rows = bind.execute(sa.select(events).order_by(events.c.id)).mappings().all()
    if not rows:
        return
    lift, restore = _TRIGGERS.get(bind.dialect.name, ([], []))
    for statement in lift:
        op.execute(statement)
    previous = chain.GENESIS_SHA256
    for row in rows:
        payload = chain.event_payload(SimpleNamespace(**row))
        previous = chain.link(previous, payload)
        bind.execute(events.update().where(events.c.id == row["id"]).values(chain_sha256=previous))
    for statement in restore:
        op.execute(statement)


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("chain_sha256", sa.String(length=64), nullable=True))
    _chain_existing_events()
    op.create_table(
        "certificate_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("use", sa.String(length=10), nullable=False),
        sa.Column("algorithm", sa.String(length=50), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=True),
        sa.Column("first_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.String(length=64), nullable=False),
        sa.Column("lot_id", sa.Integer(), sa.ForeignKey("lots.id"), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(length=200), nullable=False),
        sa.Column("coa_json", sa.Text(), nullable=False),
        sa.Column("coa_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "data_key_id",
            sa.String(length=64),
            sa.ForeignKey("certificate_keys.key_id"),
            nullable=False,
        ),
        sa.Column("data_signature", sa.Text(), nullable=False),
        sa.Column(
            "pdf_key_id",
            sa.String(length=64),
            sa.ForeignKey("certificate_keys.key_id"),
            nullable=False,
        ),
        sa.Column("audit_head_id", sa.Integer(), nullable=False),
        sa.Column("audit_head_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("certificate_id", name="uq_certificates_certificate_id"),
    )
    op.create_index("ix_certificates_lot_id", "certificates", ["lot_id"])
    op.create_table(
        "lot_recalls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), sa.ForeignKey("lots.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("printed_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recalled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lot_recalls_lot_id", "lot_recalls", ["lot_id"])


def downgrade() -> None:
    op.drop_index("ix_lot_recalls_lot_id", table_name="lot_recalls")
    op.drop_table("lot_recalls")
    op.drop_index("ix_certificates_lot_id", table_name="certificates")
    op.drop_table("certificates")
    op.drop_table("certificate_keys")
    lift, restore = _TRIGGERS.get(op.get_bind().dialect.name, ([], []))
    for statement in lift:
        op.execute(statement)
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_column("chain_sha256")
    for statement in restore:
        op.execute(statement)
