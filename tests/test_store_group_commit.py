"""The embedded store's group commit (bot/store/sqlite_batch.py): conversations answered at the same
time share one commit, and still each get their own outcome."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from agent.base import ChatMessage
from bot.models import Platform, ThreadKey
from bot.store import RequestLogRow, SqliteStore


def key(i: int) -> ThreadKey:
    return ThreadKey(platform=Platform.SLACK, workspace="T0001", channel="C0001", thread=f"1712345678.{i:06d}")


def row(request_id: str, session_id: str = "s") -> RequestLogRow:
    return RequestLogRow(request_id=request_id, ts=time.time(), platform="slack", workspace="T0001", channel="C0001",
                         thread="1712345678.000001", session_id=session_id, user_id="U1", question="why?")


def commits(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


async def test_messages_answered_together_share_one_commit(store: SqliteStore) -> None:
    seen = commits(store)
    turns = await asyncio.gather(*(store.open_turn(key(i), event_id=f"Ev{i}", idle_after_s=None, history_limit=10)
                                   for i in range(20)))
    assert len(seen) == 1
    sessions = [turn.session.session_id for turn in turns if turn is not None]
    assert len(set(sessions)) == 20
    seen.clear()
    await asyncio.gather(*(store.record_answer(session, ChatMessage("assistant", f"answer {i}"), row(f"r{i}", session))
                           for i, session in enumerate(sessions)))
    assert len(seen) == 1
    for i, session in enumerate(sessions):  # committed: another connection reads every one
        with sqlite3.connect(store.path) as other:
            assert other.execute("SELECT content FROM messages WHERE session_id = ?", (session,)).fetchall() == [
                (f"answer {i}",)]
    assert all([await store.get_request(f"r{i}") for i in range(20)])


async def test_a_redelivery_in_the_same_batch_is_still_a_redelivery(store: SqliteStore) -> None:
    first, again = await asyncio.gather(
        store.open_turn(key(1), event_id="EvSame", idle_after_s=None, history_limit=10),
        store.open_turn(key(1), event_id="EvSame", idle_after_s=None, history_limit=10))
    assert (first is None) != (again is None)


async def test_a_write_that_fails_fails_alone(store: SqliteStore) -> None:
    await store.log_request(row("taken"))
    seen = commits(store)
    outcomes = await asyncio.gather(
        *(store.record_answer("s", ChatMessage("assistant", f"answer {i}"), row(f"ok{i}")) for i in range(3)),
        store.record_answer("s", ChatMessage("assistant", "the duplicate's"), row("taken")),
        return_exceptions=True)
    assert outcomes[:3] == [None, None, None]
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    assert all([await store.get_request(f"ok{i}") for i in range(3)])
    contents = [m.content for m in await store.recent_messages("s", 10)]
    assert contents == ["answer 0", "answer 1", "answer 2"]  # the failed answer's message went with its row
    assert len(seen) == 1  # the batch again without the write that failed


async def test_a_locked_file_fails_every_waiting_write_and_the_next_ones_go_through(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "bot.db")
    store._db.execute("PRAGMA busy_timeout = 50")
    holder = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # `healthbot` elsewhere holding the write lock
    outcomes = await asyncio.gather(*(store.log_request(row(f"r{i}")) for i in range(3)), return_exceptions=True)
    assert all(isinstance(outcome, sqlite3.OperationalError) and "locked" in str(outcome) for outcome in outcomes)
    holder.execute("ROLLBACK")
    holder.close()
    await asyncio.gather(*(store.log_request(row(f"r{i}")) for i in range(3)))
    assert all([await store.get_request(f"r{i}") for i in range(3)])
    await store.close()


async def test_a_write_whose_caller_is_gone_still_lands(store: SqliteStore) -> None:
    waiting = asyncio.create_task(store.log_request(row("r-cancelled")))
    await asyncio.sleep(0)  # the write has joined this turn's batch
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await store.get_request("r-cancelled") is not None
