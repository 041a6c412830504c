"""Field names the contract (docs/contract.md, sections 4 and 5) promises to clients."""

from __future__ import annotations

TICK_FIELDS = frozenset(
    {"symbol", "bid", "bid_size", "offer", "offer_size", "last", "last_size", "cl", "op", "ts_ms"}
)
RATIO_FIELDS = frozenset(
    {"base", "quote", "client_id", "asof", "bid_ratio", "ask_ratio", "mid_ratio", "last_ratio"}
)
INDICATOR_FIELDS = frozenset(
    {
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
    }
)
DASHBOARD_ROW_FIELDS = frozenset(
    {
        "par",
        "client_id",
        "ultimo_ratio_operado",
        "ultimo_timestamp",
        "promedio_rueda",
        "promedio_dia_anterior",
        "promedio_1semana",
        "promedio_1mes",
        "minimo_mensual",
        "maximo_mensual",
        "dif_rueda_pct",
        "dif_dia_anterior_pct",
        "dif_1semana_pct",
        "dif_1mes_pct",
        "dif_minimo_pct",
        "dif_maximo_pct",
        "client_id_result",  # the prototype's name for client_id (issue 9)
    }
)
