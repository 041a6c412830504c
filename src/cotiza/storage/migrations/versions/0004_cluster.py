"""Cluster mode: the leader lease and the control plane's desired state.

Revision ID: 0004
Revises: 0003
Create Date: 2026-03-01

Both tables are created on SQLite too, where nothing uses them: one schema for both
dialects keeps the migrations and the metadata comparison simple.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # One row per lease name; ``epoch`` grows by one on every new term and is the fencing
    # token; times are the database's clock, never a node's.
    op.create_table(
        "cluster_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("holder_url", sa.String(256), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
    )
    # One row per kind of desired state ('feed', 'pairs'); ``version`` grows on every write.
    op.create_table(
        "cluster_control",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(16), nullable=True),
        sa.Column("instruments", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cluster_control")
    op.drop_table("cluster_leases")
