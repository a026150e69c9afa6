"""Stability studies keep their evaluation protocol (acceptance limits, transform, storage
class, labelled storage condition) and the SHA-256 of the CSV file they were imported from.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stability_studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protocol", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("source_sha256", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            "fk_stability_studies_source_sha256", "attachments", ["source_sha256"], ["sha256"]
        )


def downgrade() -> None:
    with op.batch_alter_table("stability_studies", schema=None) as batch_op:
        batch_op.drop_constraint("fk_stability_studies_source_sha256", type_="foreignkey")
        batch_op.drop_column("source_sha256")
        batch_op.drop_column("protocol")
