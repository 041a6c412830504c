"""A tiny stand-in for cotiza that misbehaves on demand, for the monitor's fault matrix.

It answers the endpoints the monitor probes (``/cotizaciones/health``, ``/health/detailed``,
``/admin/drain``) and can start slowly, never become ready, grow or spike in memory,
ignore SIGTERM, crash after a while (unless a "fixed" file exists), or answer health
with 200-unhealthy, 500, 503, garbage or not at all. With ``--cluster-role`` it also
shows a cluster block in ``/health/detailed`` and answers ``/admin/handover`` (checking
``API_TOKEN``), writing each event to ``--events-file``. ``POST /fixture/mode?m=MODE``
changes the health mode of this process only, so a restarted process is healthy again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MODES = ("ok", "degraded", "unhealthy200", "500", "503", "garbage", "timeout", "starting")


class Fixture:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "starting" if args.never_ready else args.mode
        self.ballast: list[bytes] = []
        self.spike_done = False
        self.lock = threading.Lock()
        # --cluster-role: a cluster node's block in /health/detailed, and /admin/handover.
        self.node_id = f"fixture:{args.port}"
        self.leader = args.cluster_role == "leader"
        self.leader_node: str | None = self.node_id if self.leader else "fixture-other"
        self.epoch = 7

    def record(self, event: str, **fields: object) -> None:
        """One JSON line per cluster event, for tests that check the order of things."""
        if self.args.events_file:
            line = json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **fields})
            with open(self.args.events_file, "a", encoding="utf-8") as out:
                out.write(line + "\n")

    def cluster_block(self) -> dict[str, object]:
        return {
            "role": "auto",
            "node_id": self.node_id,
            "leader": self.leader,
            "leader_node": self.leader_node,
            "epoch": self.epoch,
            "backplane": {"connected": True, "lag_ms": 0.3},
        }

    def hand_over(self) -> None:
        """Step down now; another node takes the lease after --handover-delay."""
        self.leader, self.leader_node = False, None

        def elected() -> None:
            time.sleep(self.args.handover_delay)
            self.leader_node, self.epoch = "fixture-standby", self.epoch + 1

        threading.Thread(target=elected, daemon=True).start()

    def grow(self) -> None:
        step = self.args.grow_mb / 10
        while True:
            with self.lock:
                self.ballast.append(b"x" * int(step * 1_048_576))  # touched, so resident
            time.sleep(0.1)

    def spike(self) -> None:
        time.sleep(self.args.spike_at)
        block = b"x" * int(self.args.spike_mb * 1_048_576)
        time.sleep(self.args.spike_for)
        del block
        self.spike_done = True

    def crash_later(self) -> None:
        time.sleep(self.args.crash_after)
        if self.args.fixed_file and Path(self.args.fixed_file).exists():
            return
        os._exit(3)


def make_handler(fixture: Fixture) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def reply(self, code: int, body: object, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def health(self, detailed: bool) -> None:
            mode = fixture.mode
            now = time.time()
            if mode == "timeout":
                time.sleep(60)
                return
            if mode == "garbage":
                self.reply(200, b"<html>this is not json", "text/html")
                return
            if mode in {"500", "503"}:
                self.reply(int(mode), {"status": "unhealthy", "detail": f"fixture {mode}"})
                return
            status = {"ok": "healthy", "unhealthy200": "unhealthy", "starting": "starting"}.get(
                mode, "healthy"
            )
            if mode == "starting":
                self.reply(503, {"status": status, "timestamp": now})
                return
            if mode == "degraded" and detailed:
                check = {"status": "fail", "observedValue": 99, "affects": "readiness"}
                body = {
                    "status": "degraded",
                    "timestamp": now,
                    "checks": {"feed:staleness": [check]},
                }
                self.reply(200, body)
                return
            body: dict[str, object] = {"status": status, "timestamp": now, "checks": {}}
            if detailed and fixture.args.cluster_role:
                body["cluster"] = fixture.cluster_block()
            self.reply(200, body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/cotizaciones/health":
                self.health(detailed=False)
            elif path == "/health/detailed":
                self.health(detailed=True)
            elif path == "/fixture/state":
                self.reply(
                    200,
                    {"pid": os.getpid(), "mode": fixture.mode, "spike_done": fixture.spike_done},
                )
            else:
                self.reply(200, {"pid": os.getpid()})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if url.path == "/fixture/mode":
                mode = parse_qs(url.query).get("m", ["ok"])[0]
                if mode not in MODES:
                    self.reply(400, {"detail": f"unknown mode {mode}"})
                    return
                fixture.mode = mode
                self.reply(200, {"pid": os.getpid(), "mode": mode})
            elif url.path == "/admin/drain":
                fixture.record("drain")
                self.reply(200, {"status": "success", "closed": 0})
            elif url.path == "/admin/handover" and fixture.args.cluster_role:
                token = os.environ.get("API_TOKEN")
                if token and self.headers.get("Authorization") != f"Bearer {token}":
                    fixture.record("handover_refused")
                    self.reply(401, {"detail": "missing or wrong token"})
                    return
                fixture.record("handover", leader=fixture.leader)
                if fixture.args.handover_status != 202:
                    self.reply(fixture.args.handover_status, {"detail": "fixture refuses"})
                    return
                fixture.hand_over()
                self.reply(202, {"status": "handing over"})
            else:
                self.reply(404, {"detail": "not found"})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument("--never-ready", action="store_true")
    parser.add_argument("--crash-after", type=float, default=0.0)
    parser.add_argument("--fixed-file", default=None)
    parser.add_argument("--exit-at-start", action="store_true", help="exit 3 before listening")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--grow-mb", type=float, default=0.0, help="MiB per second")
    parser.add_argument("--spike-mb", type=float, default=0.0)
    parser.add_argument("--spike-at", type=float, default=0.5)
    parser.add_argument("--spike-for", type=float, default=0.5)
    parser.add_argument("--cluster-role", choices=("leader", "follower"), default=None)
    parser.add_argument("--handover-delay", type=float, default=0.3)
    parser.add_argument("--handover-status", type=int, default=202)
    parser.add_argument("--events-file", default=None)
    args = parser.parse_args()

    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.events_file:

        def terminated(signum: int, frame: object) -> None:
            Fixture(args).record("sigterm")
            sys.exit(0)

        signal.signal(signal.SIGTERM, terminated)
    fixed = args.fixed_file is not None and Path(args.fixed_file).exists()
    if args.exit_at_start and not fixed:
        sys.exit(3)
    time.sleep(args.start_delay)
    fixture = Fixture(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(fixture))
    server.daemon_threads = True
    for wanted, target in (
        (args.grow_mb > 0, fixture.grow),
        (args.spike_mb > 0, fixture.spike),
        (args.crash_after > 0, fixture.crash_later),
    ):
        if wanted:
            threading.Thread(target=target, daemon=True).start()
    sys.stdout.write(f"fixture pid {os.getpid()} listening on {args.port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
