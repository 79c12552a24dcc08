"""Deployments: the rollout watcher's cost per poll, and what labelling an answer with its version costs.

- Watcher: one `DeployWatcher.poll_once` (lease, `serving_endpoints.get` through databricks-sdk, reading
  the config, comparing with the stored cursor, the owed comparison) against a fake workspace in a child
  process whose endpoint has 3 served entities with a traffic split; healthbot's CPU per poll, and as a
  share of one core at the default 60 s interval. Baseline: the bare SDK `serving_endpoints.get` of the
  same endpoint, the floor any watcher pays. Target: <= 0.1 % of one core.
- Per answer: `ServedVersions.label(headers)` (the serving client's) with a warm version map (the header read, the
  lookup) plus the row field, per call; baseline: an empty function call. Target: <= 5 µs.
Run: python -m bench.deployments [--polls N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import timeit
from pathlib import Path

from bench.common import child_server

INTERVAL_S = 60.0


def _child(port: int) -> None:
    from aiohttp import web

    from tests.fakes.deployments import FakeDeployWorkspace, routes, served_entity

    fake = FakeDeployWorkspace()
    fake.endpoint["config"]["served_entities"] = [served_entity(6), served_entity(7), served_entity(8)]
    fake.endpoint["config"]["traffic_config"] = routes(("health_monitor_orchestrator-6", 10),
                                                       ("health_monitor_orchestrator-7", 80),
                                                       ("health_monitor_orchestrator-8", 10))
    app = web.Application()
    fake.build(app)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _watcher(port: int, polls: int) -> tuple[float, float]:
    """(bare SDK get, watcher poll): CPU ms per call in this process."""
    from agent.databricks_config import databricks_config
    from bot.alerts.dispatch import AlertDispatcher
    from bot.alerts.routes import Router
    from bot.deploy.watcher import DeployWatcher
    from bot.deploy.workspace_calls import DeployCalls
    from bot.handler import ConversationHandler
    from bot.store import SqliteStore
    from bot.targets import parse_target
    from bot.workspace import Workspace
    from agent.demo import DemoEngine

    host = f"http://127.0.0.1:{port}"
    workspace = Workspace(lambda: databricks_config(host=host, token="test-token"))
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        handler = ConversationHandler(store=store, engine=DemoEngine(data_dir=tmp))
        dispatcher = AlertDispatcher(alerts=store.alerts, handler=handler, router=Router([], []), sinks={})
        watcher = DeployWatcher(calls=DeployCalls(workspace, "health_monitor_orchestrator"), dispatcher=dispatcher,
                                store=store, targets=[parse_target("slack:C0BENCH")], interval_s=INTERVAL_S)
        await watcher.poll_once()  # the first look: builds the SDK client, stores the cursor
        bare_cpu = 0.0
        watch_cpu = 0.0
        for _ in range(polls):  # interleaved, so the machine's drift hits both alike
            started = time.process_time()
            await workspace.call(lambda c: c.serving_endpoints.get("health_monitor_orchestrator"))
            bare_cpu += time.process_time() - started
            started = time.process_time()
            await watcher.poll_once()
            watch_cpu += time.process_time() - started
        assert watcher.polls == polls + 1 and not watcher.last_error, watcher.last_error
        await store.close()
    return bare_cpu / polls * 1000, watch_cpu / polls * 1000


def _per_answer() -> tuple[float, float]:
    """(empty call, served_version + row field): µs per answer, warm map."""
    from agent.endpoint_config import read_endpoint
    from agent.serving import ServingClient
    from bot.store import RequestLogRow
    from tests.fakes.serving import fixture

    client = ServingClient(endpoint_name="health_monitor_orchestrator")
    client.remember_config(read_endpoint(fixture("serving_endpoint_get_deployed.json")))
    headers = {"Content-Type": "application/json", "served-model-name": "health_monitor_orchestrator-7",
               "Date": "Thu, 03 Dec 2026 10:00:00 GMT", "Content-Length": "120", "x-request-id": "abc"}
    row = RequestLogRow(request_id="r", ts=0.0, platform="slack", workspace="T", channel="C", thread="t",
                        session_id="s", user_id="u", question="q")
    loop = asyncio.new_event_loop()

    async def label() -> None:
        _, row.served_version = await client.versions.label(headers)

    async def empty() -> None:
        return None

    def run(coroutine_function: object, n: int) -> float:
        async def many() -> None:
            for _ in range(n):
                await coroutine_function()  # type: ignore[operator]
        return min(timeit.repeat(lambda: loop.run_until_complete(many()), number=1, repeat=5)) / n * 1e6

    n = 20_000
    baseline, labelled = run(empty, n), run(label, n)
    assert row.served_version == "7"
    loop.close()
    return baseline, labelled


async def _watch(polls: int) -> tuple[float, float]:
    async with child_server("bench.deployments", "workspace") as port:
        return await _watcher(port, polls)


def main(polls: int) -> None:
    bare, watch = asyncio.run(_watch(polls))
    share = watch / 1000 / INTERVAL_S * 100
    print(f"watcher: {watch:.2f} ms CPU per poll (bare SDK get {bare:.2f} ms, ratio {watch / bare:.2f} ×); "
          f"at one poll a minute {share:.4f} % of one core (target <= 0.1 %)")
    baseline, labelled = _per_answer()
    print(f"per answer: {labelled:.2f} µs to label it with its version (an empty call {baseline:.2f} µs; "
          f"{labelled - baseline:.2f} µs over it; target <= 5 µs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--polls", type=int, default=50)
    parser.add_argument("--child", choices=["workspace"])
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.child:
        _child(args.port)
        sys.exit(0)
    main(args.polls)
