"""Main-thread load of the web page under a fast feed, against the previous page as baseline.

For each feed rate the service runs as a subprocess (simulated feed, ticks not stored) and
Debian's Chromium opens /dashboard; after a warm-up the renderer's main-thread busy time is
read from the DevTools protocol (``Performance.getMetrics`` TaskDuration over the window),
with long tasks (> 50 ms) and the WebSocket frames the page received. The baseline is the
same measurement of the page at ``--baseline-ref`` (by default the last commit of the first
dashboard), served from a ``git archive`` of that commit.

    .venv/bin/python bench/page_cpu.py --rates 20 500 --window 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.async_api import Browser, async_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
BASELINE_REF = "3dd723a"
LONG_TASKS = """() => {
  window.longTasks = 0;
  new PerformanceObserver((list) => { window.longTasks += list.getEntries().length; })
    .observe({ type: "longtask", buffered: false });
}"""


@dataclass
class Figures:
    page: str
    rate: int
    frames: float
    busy: float
    long_tasks: int
    heap_mb: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def checkout(ref: str, into: Path) -> Path:
    """``main.py`` and ``src/`` of ``ref``, unpacked under ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "src.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), ref, "main.py", "src"],
        cwd=ROOT,
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


@contextlib.contextmanager
def service(tree: Path, rate: int, workdir: Path) -> Iterator[int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"PORT", "HOST"}}
    env.update(
        PYTHONPATH=str(tree / "src"),
        DATABASE_URL=f"sqlite:///{workdir}/bench-{port}.db",
        MARKET_HOURS="always",
        SIM_TICKS_PER_SECOND=str(rate),
        STORE_TICKS="false",
        LOG_LEVEL="WARNING",
    )
    command = [sys.executable, str(tree / "main.py"), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/cotizaciones/health", timeout=1).is_success:
                    break
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)


async def measure(browser: Browser, port: int, page_name: str, rate: int, window: float) -> Figures:
    context = await browser.new_context(viewport={"width": 1366, "height": 800})
    page = await context.new_page()
    frames = 0

    def count(_: object) -> None:
        nonlocal frames
        frames += 1

    page.on("websocket", lambda ws: ws.on("framereceived", count))
    await page.goto(f"http://127.0.0.1:{port}/dashboard")
    await page.wait_for_selector('[data-testid="quote-row"]', timeout=30_000)
    await page.wait_for_timeout(3000)  # warm-up: first paint, history, dashboard
    await page.evaluate(LONG_TASKS)
    cdp = await context.new_cdp_session(page)
    await cdp.send("Performance.enable")

    async def metrics() -> dict[str, float]:
        answer = await cdp.send("Performance.getMetrics")
        return {m["name"]: m["value"] for m in answer["metrics"]}

    before, frames_before = await metrics(), frames
    await asyncio.sleep(window)
    after = await metrics()
    elapsed = after["Timestamp"] - before["Timestamp"]
    figures = Figures(
        page=page_name,
        rate=rate,
        frames=(frames - frames_before) / elapsed,
        busy=(after["TaskDuration"] - before["TaskDuration"]) / elapsed,
        long_tasks=int(await page.evaluate("window.longTasks")),
        heap_mb=after["JSHeapUsedSize"] / 2**20,
    )
    await context.close()
    return figures


async def run(rates: list[int], window: float, ref: str) -> list[Figures]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trees = {"baseline " + ref: checkout(ref, work / "baseline"), "current": ROOT}
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            for rate in rates:
                for name, tree in trees.items():
                    with service(tree, rate, work) as port:
                        results.append(await measure(browser, port, name, rate, window))
            await browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[20, 500])
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    args = parser.parse_args()
    results = asyncio.run(run(args.rates, args.window, args.baseline_ref))
    columns = ("ticks/s", "frames/s", "main thread", "long tasks", "heap")
    print(f"{'page':<18} " + " ".join(f"{c:>11}" for c in columns))
    for f in results:
        print(
            f"{f.page:<18} {f.rate:>11} {f.frames:>11.0f} {f.busy:>11.1%} "
            f"{f.long_tasks:>11} {f.heap_mb:>8.1f} MB"
        )
    for rate in args.rates:
        pair = [f for f in results if f.rate == rate]
        if len(pair) == 2 and pair[0].busy > 0:
            print(f"at {rate} ticks/s: current / baseline busy = {pair[1].busy / pair[0].busy:.2f}")


if __name__ == "__main__":
    main()
