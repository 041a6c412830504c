"""Database schema (SQLAlchemy Core). Alembic migrations must match these tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ratio_pairs = Table(
    "ratio_pairs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("base", String(128), nullable=False),
    Column("quote", String(128), nullable=False),
    Column("factor", Float, nullable=False, default=1.0),
    Column("client_id", String(64), nullable=False, default="default"),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("base", "quote", "client_id", name="uq_ratio_pairs_base_quote_client"),
)

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

ratio_samples = Table(
    "ratio_samples",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("pair_id", Integer, ForeignKey("ratio_pairs.id", ondelete="CASCADE"), nullable=False),
    Column("asof", Float, nullable=False),
    *(Column(name, Float, nullable=True) for name in _RATIO_FIELDS),
    Index("ix_ratio_samples_pair_asof", "pair_id", "asof"),
)


def _aggregate_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column(
            "pair_id", Integer, ForeignKey("ratio_pairs.id", ondelete="CASCADE"), primary_key=True
        ),
        Column("bucket", BigInteger, primary_key=True),
        Column("n", Integer, nullable=False),
        Column("total", Float, nullable=False),
        Column("minimum", Float, nullable=False),
        Column("maximum", Float, nullable=False),
        Index(f"ix_{name}_bucket", "bucket"),
    )


# Per-minute, per-hour and per-day (UTC) aggregates of the dashboard ratio field, kept up
# to date as samples are written so that a 30-day dashboard never scans raw samples.
# ``bucket`` is the epoch second at which the bucket starts.
ratio_minutes = _aggregate_table("ratio_minutes")
ratio_hours = _aggregate_table("ratio_hours")
ratio_days = _aggregate_table("ratio_days")

ticks = Table(
    "ticks",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("symbol", String(128), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("recv_ts", Float, nullable=False),
    Column("bid", Float),
    Column("bid_size", Float),
    Column("offer", Float),
    Column("offer_size", Float),
    Column("last", Float),
    Column("last_size", Float),
    Column("cl", Float),
    Column("op", Float),
    Index("ix_ticks_symbol_ts", "symbol", "ts_ms"),
)

# Market alerts: rules (with their evaluator state, so a restart neither re-fires a rule
# that already fired nor forgets its cooldown) and the history of firings. A firing keeps
# a copy of what it fired on, so it outlives the deletion of its rule or pair.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pair_id", Integer, ForeignKey("ratio_pairs.id", ondelete="CASCADE"), nullable=False),
    Column("field", String(32), nullable=False),
    Column("op", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("hysteresis", Float, nullable=False),
    Column("cooldown_s", Float, nullable=False),
    Column("channels", String(64), nullable=False),  # comma-separated channel names
    Column("active", Boolean, nullable=False),
    Column("note", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("last_fired_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_alert_rules_pair", "pair_id"),
)

alert_firings = Table(
    "alert_firings",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="SET NULL"), nullable=True),
    Column("pair_id", Integer, nullable=False),
    Column("par", String(64), nullable=False),
    Column("field", String(32), nullable=False),
    Column("op", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("observed", Float, nullable=False),
    Column("previous", Float, nullable=True),
    Column("fired_at", Float, nullable=False),
    Column("deliveries", Text, nullable=False),  # JSON: channel -> result
    Index("ix_alert_firings_fired_at", "fired_at"),
    Index("ix_alert_firings_rule", "rule_id"),
)

# Cluster mode (cotiza.cluster): the leader lease, fenced by its epoch, and the desired
# state of the feed and of the pairs that any node may write and the leader applies.
cluster_leases = Table(
    "cluster_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=True),
    Column("holder_url", String(256), nullable=True),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=True),
    Column("renewed_at", DateTime(timezone=True), nullable=True),
)

cluster_control = Table(
    "cluster_control",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("action", String(16), nullable=True),
    Column("instruments", Text, nullable=True),
    Column("updated_by", String(128), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

RATIO_FIELDS = _RATIO_FIELDS
SCHEMA_REVISION = "0004"
