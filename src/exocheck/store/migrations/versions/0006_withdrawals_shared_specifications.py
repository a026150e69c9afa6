"""Signatures that accept a deviation, measurement withdrawals, the issued certificate's PDF (served again while its lot is unchanged), (an e-signed correction that keeps the row) and specifications shared
by several products (the product a specification was stored for becomes its first link).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


_MEANINGS_BEFORE = "meaning IN ('reviewed', 'approved', 'rejected')"
_MEANINGS = "meaning IN ('reviewed', 'approved', 'rejected', 'deviation accepted')"


def upgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.drop_constraint("ck_signatures_meaning", type_="check")
        batch.create_check_constraint("ck_signatures_meaning", _MEANINGS)
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("pdf", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("lot_event_id", sa.Integer(), nullable=True))
    op.create_table(
        "measurement_withdrawals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("measurement_id", sa.Integer(), sa.ForeignKey("measurements.id"), nullable=False),
        sa.Column("lot_id", sa.Integer(), sa.ForeignKey("lots.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("printed_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("measurement_id"),
    )
    op.create_index("ix_measurement_withdrawals_lot_id", "measurement_withdrawals", ["lot_id"])
    op.create_table(
        "specification_products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "specification_id", sa.Integer(), sa.ForeignKey("specifications.id"), nullable=False
        ),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("specification_id", "product_id"),
    )
    op.create_index(
        "ix_specification_products_specification_id",
        "specification_products",
        ["specification_id"],
    )
    op.create_index(
        "ix_specification_products_product_id", "specification_products", ["product_id"]
    )
    op.execute(
        "INSERT INTO specification_products (specification_id, product_id, created_at, "
        "created_by) SELECT id, product_id, created_at, created_by FROM specifications "
        "WHERE product_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.drop_constraint("ck_signatures_meaning", type_="check")
        batch.create_check_constraint("ck_signatures_meaning", _MEANINGS_BEFORE)
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("lot_event_id")
        batch.drop_column("pdf")
    op.drop_table("specification_products")
    op.drop_table("measurement_withdrawals")
