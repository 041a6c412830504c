"""Slow consumers: do stalled clients delay the others, and are their sockets released?

    .venv/bin/python bench/slow_consumer.py [--clients 200] [--stalled 3] [--rate 200]

Runs the same load twice against fresh servers: all clients reading (the baseline), then
with some clients that subscribe and never read again. Prints the readers' p99 in both
runs, and for each stalled client the time from the server judging it slow to its socket
disappearing from the server's established connections.
Targets: p99 rises by <= 10 ms; sockets gone within 5 s.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import uvloop
from loadgen import cotiza_server, swarm

from cotiza.feeds.sim import SimFeed
from cotiza.settings import Settings

SYMBOLS = SimFeed(Settings()).catalogue()
SUBSCRIBE = {"type": "subscribe", "instruments": SYMBOLS}


def stalled_socket(port: int) -> socket.socket:
    """A raw client that handshakes, subscribes to everything and never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/cotizaciones HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    payload = json.dumps(SUBSCRIBE).encode()
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + mask
    sock.sendall(frame + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--stalled", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cotiza-bench-"))
    env = {"SIM_TICKS_PER_SECOND": str(args.rate), "WEBSOCKET_TIMEOUT": "2"}

    with cotiza_server(tmp, **env) as server:
        url = f"ws://127.0.0.1:{server.port}/ws/cotizaciones"
        base = uvloop.run(swarm(url, args.clients, args.duration, SUBSCRIBE))

    with cotiza_server(tmp, **env) as server:
        url = f"ws://127.0.0.1:{server.port}/ws/cotizaciones"
        socks = [stalled_socket(server.port) for _ in range(args.stalled)]
        start = time.time()
        judged: list[float] = []
        client_ports = {sock.getsockname()[1] for sock in socks}
        gone: dict[int, float] = {}

        def server_side_ports() -> set[int]:
            """Remote ports of the server's established sockets (the server's view)."""
            ports = set()
            for proc in server.tree():
                for conn in proc.net_connections(kind="tcp"):
                    if conn.raddr and conn.status == psutil.CONN_ESTABLISHED:
                        ports.add(conn.raddr.port)
            return ports

        def poll() -> None:
            """Note when the server judges a client slow and when its socket disappears."""
            seen = 0
            deadline = time.monotonic() + args.duration + 30
            while len(gone) < len(client_ports) and time.monotonic() < deadline:
                status = httpx.get(
                    f"http://127.0.0.1:{server.port}/cotizaciones/websocket_status", timeout=5
                ).json()
                now = time.time()
                count = status["stats"]["slow_consumers"]
                judged.extend([now] * (count - seen))
                seen = max(seen, count)
                alive = server_side_ports()
                for port in client_ports - alive - set(gone):
                    gone[port] = now
                time.sleep(0.05)

        poller = threading.Thread(target=poll)
        poller.start()
        with_stalled = uvloop.run(swarm(url, args.clients - args.stalled, args.duration, SUBSCRIBE))
        poller.join()
        for sock in socks:
            sock.close()

    print(f"{args.clients} clients, feed {args.rate:g} ticks/s, {args.duration:g} s")
    print(f"  baseline (all reading):     p50 {base.p(50):6.2f} ms  p99 {base.p(99):6.2f} ms")
    print(
        f"  with {args.stalled} stalled:           p50 {with_stalled.p(50):6.2f} ms  "
        f"p99 {with_stalled.p(99):6.2f} ms"
    )
    delta = with_stalled.p(99) - base.p(99)
    print(f"  p99 change: {delta:+.2f} ms (target <= +10 ms)")
    print(f"  stalled clients judged slow: {len(judged)} of {args.stalled}")
    for i, (when, closed) in enumerate(zip(sorted(judged), sorted(gone.values()), strict=False)):
        print(
            f"  stalled #{i + 1}: judged {when - start:5.1f} s after the run began; "
            f"server socket gone {closed - when:.2f} s after the judgement (target <= 5 s)"
        )
    if len(gone) < args.stalled:
        print(f"  {args.stalled - len(gone)} stalled socket(s) still open at the end")


if __name__ == "__main__":
    main()
