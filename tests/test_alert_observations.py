"""The poller's store primitives on both stores: fenced leases and compare-and-set observations."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import SqliteStore
from bot.store.base import AlertStore, Change, LeaseLost
from bot.store.postgres import PostgresStore
from tests.conftest import POSTGRES_DSN, postgres_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def alerts(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AlertStore]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "postgres":
            schema = await stack.enter_async_context(postgres_schema())
            store: SqliteStore | PostgresStore = PostgresStore(POSTGRES_DSN, schema=schema)
        else:
            store = SqliteStore(tmp_path / "bot.db")
        yield store.alerts
        await store.close()


async def test_one_holder_at_a_time_and_a_new_holder_fences_the_old(alerts: AlertStore) -> None:
    first = await alerts.take_lease("alert-pull", "a", ttl_s=0.3)
    assert first is not None and await alerts.take_lease("alert-pull", "b", ttl_s=0.3) is None
    renewed = await alerts.take_lease("alert-pull", "a", ttl_s=0.3)
    assert renewed == first  # renewing keeps the token
    time.sleep(0.4)  # the holder stalls past its lease
    second = await alerts.take_lease("alert-pull", "b", ttl_s=5)
    assert second is not None and second.token == first.token + 1
    with pytest.raises(LeaseLost):
        await alerts.observe([Change("sql:x", None, "TRIGGERED")], fence=first,
                             outbox=("sql:x", {"name": "x"}, [("slack:C1", False)]))
    with pytest.raises(LeaseLost):
        await alerts.remember([("cursor:jobs", "1", 1.0)], fence=first)
    assert await alerts.observed("") == {} and (await alerts.counts())["pending"] == 0
    assert await alerts.take_lease("alert-pull", "a", ttl_s=5) is None
    await alerts.release_lease(second)
    assert await alerts.take_lease("alert-pull", "a", ttl_s=5) is not None


async def test_compare_and_set_writes_all_or_nothing(alerts: AlertStore) -> None:
    fence = await alerts.take_lease("alert-pull", "a", ttl_s=30)
    assert fence is not None
    assert await alerts.observe([Change("job:1", None, "failed", 5.0), Change("run:9", None, "FAILED", 5.0)], fence=fence,
                                outbox=("job:1", {"name": "etl"}, [("slack:C1", False), ("slack:C2", True)]))
    assert (await alerts.counts())["pending"] == 2
    # a stale expectation on one key: nothing of the batch is written, no outbox row
    assert not await alerts.observe([Change("run:10", None, "FAILED"), Change("job:1", None, "failed")], fence=fence,
                                    outbox=("job:1", {"name": "etl"}, [("slack:C1", False)]))
    assert "run:10" not in await alerts.observed("run:") and (await alerts.counts())["pending"] == 2
    assert await alerts.observe([Change("job:1", "failed", None)], fence=fence)
    assert await alerts.observed("job:") == {}
    assert not await alerts.observe([Change("job:1", "failed", "failed")], fence=fence)
    await alerts.remember([("run:1", "SUCCESS", 10.0), ("run:2", "SUCCESS", 20.0)], fence=fence)
    assert await alerts.forget_before("run:", 15.0, fence=fence) == 2  # run:9 (5.0) and run:1 (10.0)
    assert set(await alerts.observed("run:")) == {"run:2"}


async def test_a_webhook_records_what_it_reported(alerts: AlertStore) -> None:
    fence = await alerts.take_lease("alert-pull", "a", ttl_s=30)
    assert fence is not None
    await alerts.enqueue("sql:7", {"name": "x"}, [("slack:C1", False)], observed="TRIGGERED")
    assert await alerts.observed("sql:7") == {"sql:7": ("TRIGGERED", pytest.approx(time.time(), abs=5))}
    assert not await alerts.observe([Change("sql:7", None, "TRIGGERED")], fence=fence)


async def test_postgres_lease_expiry_follows_the_database_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica whose clock runs an hour ahead must not take a lease that is still running."""
    async with postgres_schema() as schema:
        store = PostgresStore(POSTGRES_DSN, schema=schema)
        try:
            assert await store.alerts.take_lease("alert-pull", "a", ttl_s=30) is not None
            skewed = time.time() + 3600
            monkeypatch.setattr(time, "time", lambda: skewed)
            assert await store.alerts.take_lease("alert-pull", "b", ttl_s=30) is None
        finally:
            monkeypatch.undo()
            await store.close()
