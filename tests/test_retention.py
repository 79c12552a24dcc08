"""Bounded storage (issue 10): retention deletes exactly what is older than the window, on both
stores, and the SQLite WAL stays under its limit under steady traffic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.base import ChatMessage
from bench.handler import InstantEngine, incoming
from bot.handler import ConversationHandler, HandlerOptions
from bot.ops.housekeeping import Retention
from bot.models import Platform, ThreadKey
from bot.store import RequestLogRow, SqliteStore
from bot.store.base import AlertThread
from bot.store.postgres import PostgresStore
from tests.conftest import POSTGRES_DSN, postgres_schema

DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "postgres":
            schema = await stack.enter_async_context(postgres_schema())
            s: Any = PostgresStore(POSTGRES_DSN, schema=schema)
        else:
            s = SqliteStore(tmp_path / "bot.db")
        yield s
        await s.close()


async def sql(store: Any, statement: str, *args: Any) -> None:
    """Backdate rows the store wrote (the store itself always writes `now`)."""
    if isinstance(store, SqliteStore):
        store._db.execute(statement.replace("$1", "?").replace("$2", "?"), args)
    else:
        await (await store.pool()).execute(statement, *args)


async def count(store: Any, table: str) -> int:
    stats = await store.table_stats()
    return int(stats[table][0])


async def test_retention_deletes_exactly_what_is_older_than_the_window(store: Any) -> None:
    old, now = time.time() - 91 * DAY, time.time()
    for age, name in ((old, "old"), (now, "new")):
        key = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread=name)
        session = await store.session_for(key)
        await store.append_message(session.session_id, ChatMessage("user", f"{name} question"))
        row = RequestLogRow(request_id=name, ts=age, platform="slack", workspace="T1", channel="C1", thread=name,
                            session_id=session.session_id, user_id="U1", question="q")
        await store.record_answer(session.session_id, ChatMessage("assistant", "a"), row)
        await store.record_feedback(name, user_id="U1", value=1)
        await sql(store, "UPDATE messages SET created_at = $1 WHERE session_id = $2", age, session.session_id)
        await sql(store, "UPDATE sessions SET last_active = $1 WHERE session_id = $2", age, session.session_id)
        await sql(store, "UPDATE feedback SET ts = $1 WHERE request_id = $2", age, name)
    alerts = store.alerts
    for key, state in (("old-resolved", "OK"), ("old-open", "TRIGGERED"), ("new-resolved", "OK")):
        seen = old if key.startswith("old") else now
        await alerts.save_thread(AlertThread(key, "slack:C1", {"ts": "1.0"}, state, seen, seen, seen, 1, "", False, {}))
    await alerts.enqueue("done", {"name": "x"}, [("slack:C1", False)])
    await alerts.enqueue("waiting", {"name": "y"}, [("slack:C1", False)])
    [done, _] = await alerts.lease_due()
    assert await alerts.delivered(done)
    await sql(store, "UPDATE alert_outbox SET done_at = $1 WHERE alert_key = $2", old, "done")
    await sql(store, "UPDATE alert_events SET received_at = $1", old)

    totals = await Retention(store=store, days=90).run_once()

    assert totals["messages"] == 2 and totals["sessions"] == 1 and totals["request_log"] == 1 and totals["feedback"] == 1
    assert totals["alert_threads"] == 1 and totals["alert_outbox"] == 1 and totals["alert_events"] == 1
    assert await count(store, "messages") == 2 and await count(store, "request_log") == 1
    assert await store.get_request("new") is not None and await store.get_request("old") is None
    assert await alerts.thread("old-open", "slack:C1") is not None  # open threads are kept whatever their age
    assert await alerts.thread("old-resolved", "slack:C1") is None
    assert await alerts.thread("new-resolved", "slack:C1") is not None
    assert (await alerts.counts())["pending"] == 1  # the waiting delivery and its event stay
    assert await count(store, "alert_events") == 1


async def test_retention_works_in_small_batches(store: Any) -> None:
    key = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread="t")
    session = await store.session_for(key)
    for i in range(25):
        await store.append_message(session.session_id, ChatMessage("user", f"q{i}"))
    await sql(store, "UPDATE messages SET created_at = $1 WHERE session_id = $2", time.time() - 100 * DAY,
              session.session_id)
    batches = []
    original = store.purge

    async def recorded(before: float, *, batch: int = 500) -> dict[str, int]:
        deleted = await original(before, batch=10)
        batches.append(deleted["messages"])
        return dict(deleted)

    store.purge = recorded
    await Retention(store=store, days=90).run_once()
    assert batches == [10, 10, 5, 0]


async def test_the_wal_stays_under_its_limit_under_steady_traffic(tmp_path: Path) -> None:
    """5,000 messages at ~1,500/s (30 × the load that grew the WAL to 154 MB). Each message appends
    ~70 KB of pages to the WAL, so the file is bounded by the limit plus what one checkpoint interval
    adds (here 0.05 s; 5 s in production, against a 64 MB limit)."""
    limit, interval = 4 * 1024 * 1024, 0.05
    store = SqliteStore(tmp_path / "bot.db")
    store.start_checkpointing(interval, wal_limit_bytes=limit)
    handler = ConversationHandler(store=store, engine=InstantEngine(), options=HandlerOptions(
        user_rate_per_min=10**9, global_rate_per_min=10**9))
    wal, largest = tmp_path / "bot.db-wal", 0
    for i in range(5000):
        await handler.handle(incoming(i, 100))
        if i % 10 == 0:
            await asyncio.sleep(0.005)  # a steady stream, not one burst
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
    await asyncio.sleep(4 * interval)  # idle now: the next checkpoint empties the WAL
    idle_size = wal.stat().st_size if wal.exists() else 0
    await store.close()
    assert largest <= 4 * limit, largest  # before: it only ever grew (~350 MB for this run)
    assert idle_size == 0
