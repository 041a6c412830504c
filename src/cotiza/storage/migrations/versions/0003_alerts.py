"""Market alerts: rules with their evaluator state, and the history of firings.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "pair_id",
            sa.Integer(),
            sa.ForeignKey("ratio_pairs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("hysteresis", sa.Float(), nullable=False),
        sa.Column("cooldown_s", sa.Float(), nullable=False),
        sa.Column("channels", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_fired_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_alert_rules_pair", "alert_rules", ["pair_id"])
    op.create_table(
        "alert_firings",
        sa.Column(
            "id",
            # INTEGER PRIMARY KEY is SQLite's rowid alias; BIGINT would not autoincrement there.
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "rule_id",
            sa.Integer(),
            sa.ForeignKey("alert_rules.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("par", sa.String(64), nullable=False),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("previous", sa.Float(), nullable=True),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("deliveries", sa.Text(), nullable=False),
    )
    op.create_index("ix_alert_firings_fired_at", "alert_firings", ["fired_at"])
    op.create_index("ix_alert_firings_rule", "alert_firings", ["rule_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_firings_rule", table_name="alert_firings")
    op.drop_index("ix_alert_firings_fired_at", table_name="alert_firings")
    op.drop_table("alert_firings")
    op.drop_index("ix_alert_rules_pair", table_name="alert_rules")
    op.drop_table("alert_rules")
