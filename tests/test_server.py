"""`healthbot serve`'s app over real HTTP: /health healthy and degraded."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from agent.demo import DemoEngine
from bot.config import load_settings
from adapters.host.server import create_app
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.serving import FakeServing


async def get_health(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as resp:
        return resp.status, await resp.json()


async def test_healthy_on_the_demo_engine(tmp_path: Path, demo_data_dir: Path) -> None:
    runner, url = await serve(create_app(load_settings(), store=SqliteStore(tmp_path / "b.db"),
                                         engine=DemoEngine(data_dir=demo_data_dir)))
    try:
        status, body = await get_health(url)
    finally:
        await runner.cleanup()
    assert status == 200 and body["status"] == "healthy"


async def test_degraded_while_the_endpoint_is_not_ready_and_cached(tmp_path: Path, fake_serving: FakeServing) -> None:
    fake_serving.states.extend(["NOT_READY", "READY"])
    runner, url = await serve(create_app(load_settings(), store=SqliteStore(tmp_path / "b.db"), engine=make_client(fake_serving)))
    try:
        first = await get_health(url)
        second = await get_health(url)
    finally:
        await runner.cleanup()
    assert first[0] == 503 and first[1]["status"] == "degraded"
    assert first[1]["checks"]["endpoint"] == {"ok": False, "detail": "endpoint state NOT_READY (IN_PROGRESS)"}
    assert second == first  # cached: probes do not hammer the workspace
    assert len(fake_serving.requests_to("/api/2.0/serving-endpoints/health_monitor_orchestrator")) == 1


async def test_degraded_when_the_store_is_not_writable(tmp_path: Path, demo_data_dir: Path) -> None:
    store = SqliteStore(tmp_path / "b.db")
    store._db.execute("PRAGMA query_only = ON")  # what a read-only volume looks like to SQLite
    runner, url = await serve(create_app(load_settings(), store=store, engine=DemoEngine(data_dir=demo_data_dir)))
    try:
        status, body = await get_health(url)
    finally:
        await runner.cleanup()
    assert status == 503 and not body["checks"]["store"]["ok"]
    assert body["checks"]["store"]["detail"].startswith("store not writable")
