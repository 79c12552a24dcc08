"""The embedded store: one SQLite file in WAL mode, schema versioned with `PRAGMA user_version`.

Statements run on the event loop thread on purpose: each is a few microseconds on a local WAL
file, less than a hop to a worker thread (aiosqlite) would cost, and no `await` falls between the
statements of one operation, so no transaction is ever interleaved. The answer path's writes (the
claim and session, the question, the answer and its log row) are committed together with those of
every other conversation in the same loop turn (sqlite_batch.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from agent.base import ChatMessage
from bot.ids import new_session_id
from bot.models import ThreadKey
from bot.store.base import EVENT_TTL_S, Limits, RequestLogRow, Session, Turn
from bot.store.sqlite_schema import MIGRATIONS
from bot.store.retention import BATCH, COUNTED, PURGES, purge_statement
from bot.store.deploys import SqliteDeploys
from bot.store.identity import SqliteIdentities
from bot.store.sqlite_alerts import SqliteAlertStore
from bot.store.sqlite_batch import GroupCommit
from bot.store.sqlite_checkpoint import CHECKPOINT_EVERY_S, WAL_LIMIT_BYTES, WalCheckpointer

_LOG_COLUMNS = (
    "request_id, ts, platform, workspace, channel, thread, session_id, user_id, question, answer, "
    "sources, confidence, domains, latency_ms, endpoint_latency_ms, error, cached, trace_id, first_text_ms, "
    "served_version"
)
_PURGE_EVERY_S = 60.0
_NAMED = {"before": ":before", "now": ":now", "limit": ":limit"}


def _row_values(row: RequestLogRow) -> tuple[object, ...]:
    return (
        row.request_id, row.ts, row.platform, row.workspace, row.channel, row.thread, row.session_id,
        row.user_id, row.question, row.answer, json.dumps(row.sources), row.confidence,
        json.dumps(row.domains), row.latency_ms, row.endpoint_latency_ms, row.error, int(row.cached), row.trace_id,
        row.first_text_ms, row.served_version,
    )


def _row_from(values: sqlite3.Row) -> RequestLogRow:
    data = dict(values)
    data["sources"] = json.loads(data["sources"])
    data["domains"] = json.loads(data["domains"])
    data["cached"] = bool(data["cached"])
    return RequestLogRow(**data)


class SqliteStore:
    shared_limits = False
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self._db.execute("PRAGMA busy_timeout=5000")  # `healthbot stats` may read while serve writes
        self._migrate()
        self._next_purge = 0.0
        self._batch = GroupCommit(self._db)  # the answer path's writes (sqlite_batch.py)
        self._checkpointer: WalCheckpointer | None = None

    @property
    def alerts(self) -> SqliteAlertStore:
        return SqliteAlertStore(self._db)

    @property
    def deploys(self) -> SqliteDeploys:
        return SqliteDeploys(self._db)

    @property
    def identities(self) -> SqliteIdentities:
        return SqliteIdentities(self._db)

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"{self.path} has schema version {current}, newer than this healthbot ({len(MIGRATIONS)}); upgrade healthbot"
            )
        for version in range(current, len(MIGRATIONS)):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    async def claim_event(self, event_id: str, *, ttl_s: float = EVENT_TTL_S) -> bool:
        return self._claim(event_id, ttl_s)

    def _claim(self, event_id: str, ttl_s: float) -> bool:
        now = time.time()
        if now >= self._next_purge:
            self._db.execute("DELETE FROM processed_events WHERE expires_at < ?", (now,))
            self._next_purge = now + _PURGE_EVERY_S
        cursor = self._db.execute(
            "INSERT INTO processed_events (event_id, expires_at) VALUES (?, ?) "
            "ON CONFLICT (event_id) DO UPDATE SET expires_at = excluded.expires_at "
            "WHERE processed_events.expires_at < ?",
            (event_id, now + ttl_s, now),
        )
        return cursor.rowcount == 1

    async def session_for(self, key: ThreadKey, *, idle_after_s: float | None = None) -> Session:
        return self._session(key, idle_after_s)

    def _session(self, key: ThreadKey, idle_after_s: float | None) -> Session:
        now = time.time()
        thread_key = key.as_text()
        found = self._db.execute(
            "SELECT session_id, last_active FROM sessions WHERE thread_key = ?", (thread_key,)
        ).fetchone()
        if found is not None and (idle_after_s is None or now - found["last_active"] <= idle_after_s):
            self._db.execute("UPDATE sessions SET last_active = ? WHERE thread_key = ?", (now, thread_key))
            return Session(found["session_id"], created=False)
        return self._start_session(thread_key, now)

    async def new_session(self, key: ThreadKey) -> Session:
        return self._start_session(key.as_text(), time.time())

    async def open_turn(self, key: ThreadKey, *, event_id: str, idle_after_s: float | None,
                        history_limit: int) -> Turn | None:
        def claim_and_session() -> Session | None:  # together, or neither: retry-safe
            if event_id and not self._claim(event_id, EVENT_TTL_S):
                return None
            return self._session(key, idle_after_s)

        session = await self._batch.write(claim_and_session)
        if session is None:
            return None
        if session.created:  # a new session has no history: no read (most questions start a thread)
            return Turn(session, [])
        return Turn(session, await self.recent_messages(session.session_id, history_limit))

    async def take_slot(self, limits: Limits) -> float:
        return 0.0  # one process per SQLite file: its RateLimiter keeps the limits

    async def add_question(self, session_id: str, message: ChatMessage | None, *, request_id: str,
                           limits: Limits | None) -> float:
        if message is not None:
            await self._batch.write(lambda: self._insert_message(session_id, message, request_id))
        return 0.0  # one process per SQLite file: the handler's own limiter counts

    async def has_session(self, key: ThreadKey) -> bool:
        found = self._db.execute("SELECT 1 FROM sessions WHERE thread_key = ?", (key.as_text(),)).fetchone()
        return found is not None

    def _start_session(self, thread_key: str, now: float) -> Session:
        session_id = new_session_id()
        self._db.execute(
            "INSERT INTO sessions (thread_key, session_id, created_at, last_active) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (thread_key) DO UPDATE SET session_id = excluded.session_id, "
            "created_at = excluded.created_at, last_active = excluded.last_active",
            (thread_key, session_id, now, now),
        )
        return Session(session_id, created=True)

    async def append_message(self, session_id: str, message: ChatMessage, *, request_id: str = "") -> None:
        self._insert_message(session_id, message, request_id)

    def _insert_message(self, session_id: str, message: ChatMessage, request_id: str) -> None:
        self._db.execute(
            "INSERT INTO messages (session_id, role, content, request_id, created_at) VALUES (?, ?, ?, ?, ?)",
            (session_id, message.role, message.content, request_id, time.time()),
        )

    async def recent_messages(self, session_id: str, limit: int) -> list[ChatMessage]:
        rows = self._db.execute(
            "SELECT role, content FROM messages WHERE session_id = ? ORDER BY id DESC LIMIT ?",
            (session_id, limit),
        ).fetchall()
        return [ChatMessage(row["role"], row["content"]) for row in reversed(rows)]

    async def log_request(self, row: RequestLogRow) -> None:
        await self._batch.write(lambda: self._insert_log(row))

    def _insert_log(self, row: RequestLogRow) -> None:
        self._db.execute(
            f"INSERT INTO request_log ({_LOG_COLUMNS}) VALUES ({', '.join('?' * 20)})", _row_values(row)
        )

    async def record_answer(self, session_id: str, message: ChatMessage, row: RequestLogRow) -> None:
        def message_and_log() -> None:
            self._insert_message(session_id, message, row.request_id)
            self._insert_log(row)

        await self._batch.write(message_and_log)

    async def get_request(self, request_id: str) -> RequestLogRow | None:
        found = self._db.execute(
            f"SELECT {_LOG_COLUMNS} FROM request_log WHERE request_id = ?", (request_id,)
        ).fetchone()
        return _row_from(found) if found is not None else None

    async def record_feedback(self, request_id: str, *, user_id: str, value: int, comment: str = "") -> bool:
        if self._db.execute("SELECT 1 FROM request_log WHERE request_id = ?", (request_id,)).fetchone() is None:
            return False
        self._db.execute(
            "INSERT INTO feedback (request_id, user_id, value, comment, ts) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (request_id, user_id) DO UPDATE SET value = excluded.value, "
            "comment = excluded.comment, ts = excluded.ts",
            (request_id, user_id, 1 if value > 0 else -1, comment, time.time()),
        )
        return True

    async def requests_since(self, since_ts: float) -> list[RequestLogRow]:
        rows = self._db.execute(
            f"SELECT {_LOG_COLUMNS} FROM request_log WHERE ts >= ? ORDER BY ts", (since_ts,)
        ).fetchall()
        return [_row_from(row) for row in rows]

    async def save_reference(self, platform: str, channel: str, reference: dict[str, Any]) -> bool:
        text = json.dumps(reference, sort_keys=True)
        cursor = self._db.execute(
            "INSERT INTO conversation_refs (platform, channel, reference, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (platform, channel) DO UPDATE SET reference = excluded.reference, "
            "updated_at = excluded.updated_at WHERE conversation_refs.reference != excluded.reference",
            (platform, channel, text, time.time()),
        )
        return cursor.rowcount == 1

    async def get_reference(self, platform: str, channel: str) -> dict[str, Any] | None:
        found = self._db.execute(
            "SELECT reference FROM conversation_refs WHERE platform = ? AND channel = ?", (platform, channel)
        ).fetchone()
        return json.loads(found["reference"]) if found is not None else None

    async def feedback_since(self, since_ts: float) -> list[tuple[str, int]]:
        return [(str(rid), int(v)) for (rid, v) in self._db.execute(
            "SELECT f.request_id, f.value FROM feedback f JOIN request_log r ON r.request_id = f.request_id "
            "WHERE r.ts >= ?", (since_ts,))]

    async def ping(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")  # takes the write lock: proves the file is writable
        self._db.execute("ROLLBACK")

    async def purge(self, before: float, *, batch: int = BATCH) -> dict[str, int]:
        """One batch per table (the caller repeats while anything was deleted): each statement holds
        the write lock for a moment only, so requests interleave."""
        deleted = {}
        params = {"before": before, "now": time.time(), "limit": batch}
        for purge in PURGES:
            deleted[purge.table] = self._db.execute(purge_statement(purge, _NAMED), params).rowcount
        return deleted

    async def table_stats(self) -> dict[str, tuple[int, float | None]]:
        """Rows and the oldest row's time per table (`healthbot doctor`)."""
        stats = {}
        for table, column in COUNTED.items():
            count, oldest = self._db.execute(f"SELECT count(*), min({column}) FROM {table}").fetchone()
            stats[table] = (int(count), oldest)
        return stats

    def start_checkpointing(self, every_s: float = CHECKPOINT_EVERY_S, *, wal_limit_bytes: int = WAL_LIMIT_BYTES) -> None:
        """Move WAL checkpoints off the event loop (for long-running servers), and keep the WAL small.

        SQLite's automatic checkpoint runs inside whichever commit crosses 1000 WAL pages and
        fsyncs the database there: on the event loop, that stalled every request in flight for tens
        of milliseconds. Here commits never checkpoint; a worker thread does it every few seconds on
        its own connection (PASSIVE: it never blocks writers). Under steady traffic a passive
        checkpoint never reaches the end of the WAL, so the file only ever grew (2.9 MB/s at 50
        messages/s): past `wal_limit_bytes`, and whenever the bot is idle, the checkpoint is a
        TRUNCATE, which briefly waits for the writer and empties the file.
        """
        if self._checkpointer is not None or self.path == ":memory:":
            return
        self._db.execute("PRAGMA wal_autocheckpoint = 0")
        self._db.execute(f"PRAGMA journal_size_limit = {int(wal_limit_bytes)}")
        self._checkpointer = WalCheckpointer(self.path, every_s, wal_limit_bytes)
        self._checkpointer.start()

    async def close(self) -> None:
        if self._checkpointer is not None:
            await self._checkpointer.stop()
            self._checkpointer = None
        self._db.close()
