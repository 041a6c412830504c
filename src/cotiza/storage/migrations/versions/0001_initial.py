"""Initial schema: ratio pairs, samples, minute and hour aggregates, ticks.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of the ratio columns as of this revision; later revisions must not import
# the live table definitions.
_RATIO_FIELDS = (
    "bid_ratio",
    "ask_ratio",
    "mid_ratio",
    "last_ratio",
    "sma180_mid",
    "sma180_bid",
    "sma180_ask",
    "std60_mid",
    "std180_mid",
    "band_upper",
    "band_lower",
    "z_bid",
    "z_ask",
    "vol_ratio",
    "ratio_spread",
)


def _big_id() -> sa.Column[int]:
    # INTEGER PRIMARY KEY is SQLite's rowid alias; BIGINT would not autoincrement there.
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def _aggregate_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column(
            "pair_id",
            sa.Integer(),
            sa.ForeignKey("ratio_pairs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("bucket", sa.BigInteger(), primary_key=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("minimum", sa.Float(), nullable=False),
        sa.Column("maximum", sa.Float(), nullable=False),
    )
    op.create_index(f"ix_{name}_bucket", name, ["bucket"])


def upgrade() -> None:
    op.create_table(
        "ratio_pairs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("base", sa.String(128), nullable=False),
        sa.Column("quote", sa.String(128), nullable=False),
        sa.Column("factor", sa.Float(), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("base", "quote", "client_id", name="uq_ratio_pairs_base_quote_client"),
    )
    op.create_table(
        "ratio_samples",
        _big_id(),
        sa.Column(
            "pair_id",
            sa.Integer(),
            sa.ForeignKey("ratio_pairs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("asof", sa.Float(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in _RATIO_FIELDS),
    )
    op.create_index("ix_ratio_samples_pair_asof", "ratio_samples", ["pair_id", "asof"])
    _aggregate_table("ratio_minutes")
    _aggregate_table("ratio_hours")
    op.create_table(
        "ticks",
        _big_id(),
        sa.Column("symbol", sa.String(128), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("recv_ts", sa.Float(), nullable=False),
        *(
            sa.Column(name, sa.Float(), nullable=True)
            for name in ("bid", "bid_size", "offer", "offer_size", "last", "last_size", "cl", "op")
        ),
    )
    op.create_index("ix_ticks_symbol_ts", "ticks", ["symbol", "ts_ms"])


def downgrade() -> None:
    op.drop_index("ix_ticks_symbol_ts", table_name="ticks")
    op.drop_table("ticks")
    for name in ("ratio_hours", "ratio_minutes"):
        op.drop_index(f"ix_{name}_bucket", table_name=name)
        op.drop_table(name)
    op.drop_index("ix_ratio_samples_pair_asof", table_name="ratio_samples")
    op.drop_table("ratio_samples")
    op.drop_table("ratio_pairs")
