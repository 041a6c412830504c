"""Fan-out benchmark: cotiza's hub against a minimal ``websockets.broadcast`` server.

    .venv/bin/python bench/fanout.py [--clients 1000] [--rate 10] [--duration 15]
                                     [--sat-clients 100] [--sat-rate 5000]

Phase 1 (latency): N clients subscribed to every instrument, the feed at a fixed total
rate; prints delivered messages/s, publish-to-receive p50/p99 and server CPU for both.
Phase 2 (saturation): fewer clients, a feed far above what can be delivered; prints
delivered messages/s for both and the ratio ours/reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from loadgen import SwarmResult, cotiza_server, reference_server, swarm_processes

from cotiza.feeds.sim import SimFeed
from cotiza.settings import Settings

SYMBOLS = SimFeed(Settings()).catalogue()
SUBSCRIBE = {"type": "subscribe", "instruments": SYMBOLS}


def measure(
    server_ctx,
    url_path: str,
    clients: int,
    duration: float,
    subscribe,
    sample_every: int,
    processes: int,
):
    with server_ctx as server:
        url = f"ws://127.0.0.1:{server.port}{url_path}"
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        result: SwarmResult = swarm_processes(
            url, clients, duration, subscribe, processes, sample_every=sample_every
        )
        cpu = (server.cpu_seconds() - cpu0) / (time.monotonic() - t0) * 100
        rss = server.rss() / 1_048_576
    return result, cpu, rss


def line(name: str, r: SwarmResult, cpu: float, rss: float) -> str:
    return (
        f"  {name:<10} delivered {r.rate:>10,.0f} msg/s  p50 {r.p(50):7.2f} ms  "
        f"p99 {r.p(99):7.2f} ms  server CPU {cpu:5.1f} %  RSS {rss:6.1f} MiB  "
        f"disconnects {r.disconnected}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="feed ticks/s (per client)")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--sat-clients", type=int, default=100)
    parser.add_argument("--sat-rate", type=float, default=5000.0)
    parser.add_argument("--sat-duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cotiza-bench-"))
    ours_env = {"SIM_TICKS_PER_SECOND": str(args.rate)}

    print(f"phase 1: {args.clients} clients x {args.rate:g} msg/s each, {args.duration:g} s")
    ours = measure(
        cotiza_server(tmp, **ours_env),
        "/ws/cotizaciones",
        args.clients,
        args.duration,
        SUBSCRIBE,
        1,
        args.processes,
    )
    ref = measure(
        reference_server(args.rate), "/", args.clients, args.duration, None, 1, args.processes
    )
    print(line("cotiza", *ours))
    print(line("reference", *ref))
    p99_ok = ours[0].p(99) <= 50
    print(f"  target p99 <= 50 ms: {'met' if p99_ok else 'NOT met'}")

    print(
        f"phase 2: saturation, {args.sat_clients} clients, feed {args.sat_rate:g} ticks/s, "
        f"{args.sat_duration:g} s"
    )
    sat_env = {"SIM_TICKS_PER_SECOND": str(args.sat_rate)}
    ours_sat = measure(
        cotiza_server(tmp, **sat_env),
        "/ws/cotizaciones",
        args.sat_clients,
        args.sat_duration,
        SUBSCRIBE,
        10,
        args.processes,
    )
    ref_sat = measure(
        reference_server(args.sat_rate),
        "/",
        args.sat_clients,
        args.sat_duration,
        None,
        10,
        args.processes,
    )
    print(line("cotiza", *ours_sat))
    print(line("reference", *ref_sat))
    ratio = ours_sat[0].rate / ref_sat[0].rate if ref_sat[0].rate else float("nan")
    print(f"  throughput ratio ours/reference: {ratio:.2f} (target >= 0.6, stretch 0.9)")


if __name__ == "__main__":
    main()
