"""The SQLite store: schema creation and versioning, WAL, dedupe expiry, sessions, request log."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from agent.base import ChatMessage
from bot.models import Platform, ThreadKey
from bot.store import RequestLogRow, SqliteStore, open_store
from bot.store.sqlite import MIGRATIONS

KEY = ThreadKey(platform=Platform.TEAMS, workspace="tenant", channel="19:abc@thread.tacv2", thread="19:abc@thread.tacv2;messageid=1")


async def test_created_on_first_start_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/sub/dir/bot.db")
    assert isinstance(store, SqliteStore) and store.schema_version == len(MIGRATIONS)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await store.ping()
    await store.close()


async def test_a_newer_schema_is_refused_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    raw.close()
    with pytest.raises(RuntimeError, match="upgrade healthbot"):
        SqliteStore(path)


async def test_migrations_run_from_an_older_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bot.db"
    store = SqliteStore(path)
    await store.close()
    monkeypatch.setattr("bot.store.sqlite.MIGRATIONS", [*MIGRATIONS, "ALTER TABLE request_log ADD COLUMN note TEXT"])
    upgraded = SqliteStore(path)
    assert upgraded.schema_version == len(MIGRATIONS) + 1
    assert "note" in [row[1] for row in upgraded._db.execute("PRAGMA table_info(request_log)")]
    await upgraded.close()


async def test_claims_and_sessions_survive_their_move_to_tables_keyed_by_key(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 11 rebuilds processed_events and sessions WITHOUT ROWID: a store written by the version
    before keeps its claimed events (no answer twice after an upgrade) and its conversations."""
    path = tmp_path / "bot.db"
    monkeypatch.setattr("bot.store.sqlite.MIGRATIONS", MIGRATIONS[:10])
    old = SqliteStore(path)
    assert await old.claim_event("EvBefore")
    session = await old.session_for(KEY)
    await old.append_message(session.session_id, ChatMessage("user", "why did costs spike?"))
    await old.close()
    monkeypatch.setattr("bot.store.sqlite.MIGRATIONS", MIGRATIONS)
    upgraded = SqliteStore(path)
    assert upgraded.schema_version == len(MIGRATIONS)
    assert not await upgraded.claim_event("EvBefore")
    turn = await upgraded.open_turn(KEY, event_id="EvAfter", idle_after_s=None, history_limit=10)
    assert turn is not None and turn.session.session_id == session.session_id and not turn.session.created
    assert [m.content for m in turn.history] == ["why did costs spike?"]
    tables = {name: sql for name, sql in upgraded._db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
    assert "WITHOUT ROWID" in tables["processed_events"] and "WITHOUT ROWID" in tables["sessions"]
    indexes = [row[0] for row in upgraded._db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'processed_events'")]
    assert "processed_events_expiry" in indexes
    await upgraded.close()


async def test_a_new_session_starts_with_no_history(store: SqliteStore) -> None:
    turn = await store.open_turn(KEY, event_id="Ev1", idle_after_s=None, history_limit=10)
    assert turn is not None and turn.session.created and turn.history == []
    await store.append_message(turn.session.session_id, ChatMessage("user", "q"))
    again = await store.open_turn(KEY, event_id="Ev2", idle_after_s=None, history_limit=10)
    assert again is not None and not again.session.created and [m.content for m in again.history] == ["q"]


async def test_session_ids_are_uuids_in_the_order_they_were_made(store: SqliteStore) -> None:
    """UUIDv7: a new session's messages append to the history index instead of landing on a random page."""
    made = []
    for i in range(3):
        made.append((await store.session_for(KEY.model_copy(update={"thread": f"t{i}"}))).session_id)
        time.sleep(0.002)  # v7 orders by the millisecond
    assert [uuid.UUID(session).version for session in made] == [7, 7, 7]
    assert made == sorted(made) and all(str(uuid.UUID(session)) == session for session in made)


async def test_event_ids_expire(store: SqliteStore) -> None:
    assert await store.claim_event("Ev1", ttl_s=0.05)
    assert not await store.claim_event("Ev1", ttl_s=0.05)
    time.sleep(0.06)
    assert await store.claim_event("Ev1", ttl_s=0.05)


async def test_history_is_per_session_and_ordered(store: SqliteStore) -> None:
    session = await store.session_for(KEY)
    assert session.created and not (await store.session_for(KEY)).created
    for i in range(5):
        await store.append_message(session.session_id, ChatMessage("user" if i % 2 == 0 else "assistant", f"m{i}"))
    assert [m.content for m in await store.recent_messages(session.session_id, 3)] == ["m2", "m3", "m4"]
    other = await store.new_session(KEY)
    assert other.session_id != session.session_id and await store.recent_messages(other.session_id, 10) == []


async def test_request_log_and_feedback(store: SqliteStore) -> None:
    row = RequestLogRow(request_id="r1", ts=time.time(), platform="teams", workspace="t", channel="c", thread="th",
                        session_id="s", user_id="u", question="q", answer="a", sources=["x"], confidence=0.5,
                        domains=["costs"], latency_ms=12.5, endpoint_latency_ms=10.0)
    await store.record_answer("s", ChatMessage("assistant", "a"), row)
    assert await store.get_request("r1") == row
    assert await store.record_feedback("r1", user_id="u", value=1)
    assert await store.record_feedback("r1", user_id="u", value=-1)  # a change of mind replaces the vote
    assert not await store.record_feedback("nope", user_id="u", value=1)
    assert [tuple(r) for r in store._db.execute("SELECT value FROM feedback")] == [(-1,)]


def test_unsupported_database_url_is_clear() -> None:
    with pytest.raises(ValueError, match="HEALTHBOT_DATABASE_URL"):
        open_store("mysql://x")


async def test_checkpoints_run_off_the_request_path(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "bot.db")
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = (tmp_path / "bot.db").stat().st_size
    store.start_checkpointing(every_s=0.3)
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for i in range(3000):  # well past the 1000 pages after which a commit would checkpoint itself
        await store.log_request(RequestLogRow(request_id=f"r{i}", ts=time.time(), platform="slack", workspace="T",
                                              channel="C", thread="t", session_id="s", user_id="u", question="q" * 200))
    assert (tmp_path / "bot.db").stat().st_size == before  # every page still only in the WAL
    await asyncio.sleep(0.8)
    assert (tmp_path / "bot.db").stat().st_size > before  # the background checkpoint copied them over
    await store.close()
