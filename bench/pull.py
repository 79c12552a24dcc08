"""CPU and wall time of one alert poll cycle over a large fake workspace, against bare SDK listing.

The fake workspace (2,000 SQL alerts, 10,000 job runs over the last 24 h, 5 % of alerts
TRIGGERED, 10 % of runs FAILED) runs in a child process, so only healthbot's side is measured.
The baseline is the same databricks-sdk listing with nothing done with the results (the floor any
poller pays); healthbot's cycle adds comparing, storing and enqueueing. Three cases:
- steady: nothing changed since the last poll (the cycle that runs every minute);
- first: the first poll of a new deployment (every alert seen for the first time);
- catch-up: the first poll after a day's outage (all 10,000 runs in the window and new), and the
  poll after it. A run active all day (a streaming job) is in the workspace throughout: it is
  tracked by id, so it does not hold the window open.
Target: the steady cycle at the default 60 s interval costs <= 1 % of one core.
Run: python -m bench.pull [--alerts N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import child_server

DAY_MS = 24 * 3600 * 1000


def _child(port: int, alerts: int, runs: int) -> None:
    from aiohttp import web

    from tests.fakes.workspace import FakeWorkspace, alert_v2, job_run

    rng = random.Random(7)
    now = int(time.time() * 1000)
    fake = FakeWorkspace(alerts_page_max=100)
    fake.alerts = [alert_v2(f"{i:016x}", f"Alert {i}", "TRIGGERED" if rng.random() < 0.05 else "OK") for i in range(alerts)]
    fake.job_runs = [job_run(1000 + rng.randrange(200), 10**6 + i, name=f"job_{i % 200}",
                             result="FAILED" if rng.random() < 0.10 else "SUCCESS",
                             start_ms=now - rng.randrange(DAY_MS) - 60_000) for i in range(runs)]
    fake.job_runs.append(job_run(999, 1, name="streaming_ingest", result=None, start_ms=now - DAY_MS + 600_000))
    app = web.Application()
    fake.build(app)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _measure(label: str, started: tuple[float, float]) -> tuple[float, float]:
    cpu, wall = time.process_time() - started[0], time.perf_counter() - started[1]
    return cpu * 1000, wall * 1000


def _clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


async def _bare_listing(workspace: Any, since_ms: int) -> None:
    def listing(client: Any) -> None:
        for _ in client.alerts_v2.list_alerts(page_size=100):
            pass
        for _ in client.jobs.list_runs(completed_only=True, start_time_from=since_ms):
            pass
        for _ in client.jobs.list_runs(active_only=True):
            pass

    await workspace.call(listing)


async def main(alerts: int, runs: int) -> None:
    from agent.databricks_config import databricks_config
    from bot.alerts.dispatch import AlertDispatcher
    from bot.alerts.pull import AlertPuller
    from bot.alerts.pull_sources import JOBS_CURSOR, SKEW_MARGIN_S
    from bot.alerts.routes import load_router
    from bot.handler import ConversationHandler, HandlerOptions
    from bot.store import SqliteStore
    from bot.targets import parse_targets
    from bot.workspace import Workspace
    from bench.handler import InstantEngine

    async with child_server("bench.pull", "workspace", "--alerts", str(alerts), "--runs", str(runs)) as port:
        url = f"http://127.0.0.1:{port}"
        workspace = Workspace(lambda: databricks_config(host=url, token="test-token"))
        await workspace.call(lambda client: client.config.host)  # build the client once, outside the figures
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteStore(Path(tmp) / "bench.db")
            handler = ConversationHandler(store=store, engine=InstantEngine(), options=HandlerOptions())
            dispatcher = AlertDispatcher(alerts=store.alerts, handler=handler, sinks={},
                                         router=load_router(None, parse_targets(["slack:C0BENCH"])))
            puller = AlertPuller(dispatcher=dispatcher, workspace=workspace, sources=["sql_alerts", "jobs"], interval_s=60)
            figures: dict[str, tuple[float, float]] = {}

            now_ms = int(time.time() * 1000)
            started = _clock()
            await _bare_listing(workspace, now_ms - int(SKEW_MARGIN_S * 1000))
            figures["bare listing, steady window"] = _measure("bare", started)
            started = _clock()
            await _bare_listing(workspace, now_ms - DAY_MS)
            figures["bare listing, 24 h window"] = _measure("bare24", started)

            started = _clock()
            await puller.poll_once()  # first poll: 2,000 alerts seen for the first time; jobs start now
            figures["healthbot first poll"] = _measure("first", started)
            started = _clock()
            await puller.poll_once()
            figures["healthbot steady poll"] = _measure("steady", started)

            fence = puller.fence
            assert fence is not None
            await store.alerts.remember([(JOBS_CURSOR, repr(time.time() - 24 * 3600), time.time())], fence=fence)
            for source in puller.sources:
                await source.load()
            started = _clock()
            await puller.poll_once()  # every run in the window is new
            figures["healthbot catch-up poll (10,000 new runs)"] = _measure("catch-up", started)
            started = _clock()
            await puller.poll_once()
            figures["healthbot poll after the catch-up"] = _measure("after", started)
            counts = await store.alerts.counts()
            await store.close()

    steady_bare = figures["bare listing, steady window"][0]
    day_bare = figures["bare listing, 24 h window"][0]
    print(f"fake workspace: {alerts} alerts, {runs} runs; alert deliveries queued: {counts['pending']}")
    for label, (cpu, wall) in figures.items():
        base = day_bare if "10,000" in label or "24 h" in label else steady_bare
        print(f"{label:42s} CPU {cpu:8.1f} ms  wall {wall:8.1f} ms  CPU = {cpu / base:5.2f} x bare listing")
    steady_cpu = figures["healthbot steady poll"][0]
    print(f"steady poll every 60 s: {steady_cpu / 600:.3f} % of one core (target <= 1 %)")
    after_cpu = figures["healthbot poll after the catch-up"][0]
    print(f"the poll after a catch-up: {after_cpu / 600:.3f} % of one core at 60 s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--child", choices=["workspace"])
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.child:
        _child(args.port, args.alerts, args.runs)
        sys.exit(0)
    asyncio.run(main(args.alerts, args.runs))
