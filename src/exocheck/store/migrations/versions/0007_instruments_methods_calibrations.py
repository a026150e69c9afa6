"""The instrument register, versioned analytical methods (QA-approved) and stored bead
calibrations that passed their acceptance check.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instruments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("laser_wavelength_nm", sa.Float(), nullable=True),
        sa.Column("filter_set", sa.String(length=200), nullable=True),
        sa.Column("camera", sa.String(length=200), nullable=True),
        sa.Column("pixel_size_um", sa.Float(), nullable=True),
        sa.Column("qualification_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("calibration_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("serial"),
    )
    op.create_table(
        "methods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("instrument_model", sa.String(length=200), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.Integer(), sa.ForeignKey("instruments.id"), nullable=True),
        sa.Column("method_id", sa.Integer(), sa.ForeignKey("methods.id"), nullable=True),
        sa.Column("standard_name", sa.String(length=200), nullable=True),
        sa.Column("standard_lot", sa.String(length=200), nullable=False),
        sa.Column("standard_expiry", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certified_diameter_nm", sa.Float(), nullable=False),
        sa.Column("certified_concentration_per_ml", sa.Float(), nullable=False),
        sa.Column("measured_d50_nm", sa.Float(), nullable=False),
        sa.Column("span", sa.Float(), nullable=False),
        sa.Column("tolerance_percent", sa.Float(), nullable=False),
        sa.Column("max_span", sa.Float(), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_calibrations_instrument_id", "calibrations", ["instrument_id"])


def downgrade() -> None:
    op.drop_index("ix_calibrations_instrument_id", table_name="calibrations")
    op.drop_table("calibrations")
    op.drop_table("methods")
    op.drop_table("instruments")
