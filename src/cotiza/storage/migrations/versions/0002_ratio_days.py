"""Per-day aggregates of the dashboard ratio field, backfilled from the hour buckets.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# A day bucket starts at 00:00 UTC. Both dialects divide integers by truncation, which
# is the floor for the positive epoch seconds stored.
_BACKFILL = """
INSERT INTO ratio_days (pair_id, bucket, n, total, minimum, maximum)
SELECT pair_id, bucket / 86400 * 86400, sum(n), sum(total), min(minimum), max(maximum)
FROM ratio_hours
GROUP BY pair_id, bucket / 86400 * 86400
"""


def upgrade() -> None:
    op.create_table(
        "ratio_days",
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
    op.create_index("ix_ratio_days_bucket", "ratio_days", ["bucket"])
    # Hour buckets are never purged, so they hold the whole history the days summarise.
    op.execute(sa.text(_BACKFILL))


def downgrade() -> None:
    op.drop_index("ix_ratio_days_bucket", table_name="ratio_days")
    op.drop_table("ratio_days")
