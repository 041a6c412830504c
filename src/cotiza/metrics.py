"""Prometheus exposition, read from the components' own counters at scrape time.

Hot paths only bump plain integers; nothing here runs per tick.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cotiza.cluster.health import cluster_metrics

if TYPE_CHECKING:
    from cotiza.service import Services


class ServiceCollector(Collector):
    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        s = self.services
        hub = s.hub.stats

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"cotiza_{name}", doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"cotiza_{name}", doc, value=value)

        yield gauge("websocket_connections", "Open WebSocket connections", len(s.hub.connections))
        yield gauge("dashboard_subscribers", "Dashboard subscribers", s.dashboard.subscribers)
        yield counter("websocket_accepted", "WebSocket connections accepted", hub.accepted)
        yield counter("websocket_rejected", "WebSocket connections rejected", hub.rejected)
        yield counter("websocket_messages_sent", "Frames sent to clients", hub.messages_sent)
        writes = CounterMetricFamily(
            "cotiza_websocket_writes",
            "Frames written to clients, by write path (direct to the transport, or ASGI send)",
            labels=["path"],
        )
        writes.add_metric(["direct"], hub.writes_direct)
        writes.add_metric(["asgi"], hub.writes_asgi)
        yield writes
        yield counter(
            "websocket_messages_coalesced",
            "Frames replaced by a newer value while a client was backed up",
            hub.messages_coalesced,
        )
        yield counter(
            "websocket_messages_dropped", "Frames dropped on queue overflow", hub.messages_dropped
        )
        yield counter(
            "websocket_slow_consumers", "Clients disconnected as slow consumers", hub.slow_consumers
        )
        yield counter("ticks", "Quotes applied to the cache", s.cache.updates)
        yield gauge("tick_rate", "Quotes received in the last complete second", s.cache.tick_rate())
        yield counter("ratio_samples", "Ratio samples taken", s.ratios.samples_taken)
        yield counter("ratio_publishes", "Live ratio pushes computed", s.ratios.publishes)
        w = s.writer.stats
        yield gauge("write_queue_depth", "Writes waiting for the database", w.pending)
        yield counter("writes_failed", "Failed database write attempts", w.failures)
        yield counter(
            "ticks_dropped", "Ticks not stored because the queue was full", w.dropped_ticks
        )
        yield counter("samples_written", "Ratio samples stored", w.written_samples)
        yield gauge("event_loop_lag_seconds", "Worst recent event-loop lag", s.lag.current())
        yield gauge("feed_up", "1 while the feed runs", 1.0 if s.feed.running else 0.0)
        feed = s.feed.feed
        if feed is not None:
            connected = 1.0 if feed.state.value == "connected" else 0.0
            yield gauge("feed_connected", "1 while the feed is connected upstream", connected)
            stats = feed.stats
            yield counter("feed_frames", "Raw frames received from the feed", stats.frames)
            yield counter("feed_quotes", "Quotes the feed delivered", stats.quotes)
            yield counter("feed_errors", "Error frames, bad frames and losses", stats.errors)
            yield counter("feed_reconnects", "Reconnection attempts of the feed", stats.reconnects)
        last = s.cache.last_update_at
        if last is not None:
            yield gauge(
                "feed_last_tick_timestamp_seconds", "Receive time of the newest quote", last
            )
        yield gauge(
            "dashboard_worker_running", "1 while the worker runs", float(s.dashboard.running)
        )
        yield gauge("process_rss_bytes", "Resident memory", s.process.memory_mb() * 1_048_576)
        yield from cluster_metrics(s.cluster)


def render_metrics(services: Services) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(services))
    return generate_latest(registry)
