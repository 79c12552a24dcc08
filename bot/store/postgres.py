"""The shared store for several replicas: PostgreSQL or Databricks Lakebase, through asyncpg.

Same interface and tables as the SQLite store. What changes is that other processes write too:
event claims, session creation and outbox leases are single atomic statements (ON CONFLICT,
FOR UPDATE SKIP LOCKED), so every event is answered once and every alert posted once, whichever
replica took it; migrations run under an advisory lock so replicas starting together do not race.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agent.base import ChatMessage
from bot.ids import new_session_id
from bot.models import ThreadKey
from bot.store.base import (
    EVENT_TTL_S,
    Limits,
    RequestLogRow,
    Session,
    Turn,
)
from bot.store.deploys import PostgresDeploys
from bot.store.identity import PostgresIdentities
from bot.store.postgres_schema import MIGRATION_LOCK, MIGRATIONS
from bot.store.postgres_turns import PostgresTurns
from bot.store.retention import BATCH, COUNTED, PURGES, purge_statement

if TYPE_CHECKING:
    from bot.store.postgres_alerts import PostgresAlertStore

LOG_COLUMNS = ("request_id, ts, platform, workspace, channel, thread, session_id, user_id, question, answer, sources, "
               "confidence, domains, latency_ms, endpoint_latency_ms, error, cached, trace_id, first_text_ms, served_version")
PURGE_EVERY_S = 60.0
_PARAMS = "WITH p AS (SELECT $1::float8 AS before, $2::float8 AS now, $3::int AS lim) "
_NUMBERED = {"before": "(SELECT before FROM p)", "now": "(SELECT now FROM p)", "limit": "(SELECT lim FROM p)"}


def _row_values(row: RequestLogRow) -> tuple[Any, ...]:
    return (row.request_id, row.ts, row.platform, row.workspace, row.channel, row.thread, row.session_id, row.user_id,
            row.question, row.answer, json.dumps(row.sources), row.confidence, json.dumps(row.domains), row.latency_ms,
            row.endpoint_latency_ms, row.error, row.cached, row.trace_id, row.first_text_ms, row.served_version)


def _row_from(record: Any) -> RequestLogRow:
    data = dict(record)
    data["sources"] = json.loads(data["sources"])
    data["domains"] = json.loads(data["domains"])
    return RequestLogRow(**data)


async def _keep_session(connection: Any) -> None:
    """asyncpg resets a connection (RESET ALL, UNLISTEN…) every time it returns to the pool: one more
    round trip per statement. healthbot sets no session state, so there is nothing to reset."""


class PostgresStore:
    shared_limits = True  # replicas share one database: request limits hold across the fleet
    def __init__(self, dsn: str, *, schema: str | None = None, min_size: int = 1, max_size: int = 10,
                 password: Callable[[], Awaitable[str]] | None = None, sslmode: str | None = None,
                 connect_to: Callable[[], Awaitable[dict[str, str]]] | None = None) -> None:
        self.dsn = dsn
        self.connect_to = connect_to  # Lakebase Autoscaling: host and user read from the endpoint at first use
        self.schema = schema
        self.password = password  # Lakebase: asyncpg calls it for every new connection
        self.sslmode = sslmode
        self._sizes = (min_size, max_size)
        self._pool: Any = None
        self._lock: asyncio.Lock | None = None
        self._next_purge = 0.0
        self._turns = PostgresTurns(self)

    async def pool(self) -> Any:
        """Connect (and migrate) on first use: the store is built before the event loop runs."""
        if self._pool is not None:
            return self._pool
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._pool is None:
                import asyncpg

                settings = {"search_path": self.schema} if self.schema else None
                extra: dict[str, Any] = {"password": self.password} if self.password is not None else {}
                if self.sslmode:
                    extra["ssl"] = self.sslmode
                if self.connect_to is not None:
                    extra.update(await self.connect_to())
                pool = await asyncpg.create_pool(self.dsn, min_size=self._sizes[0], max_size=self._sizes[1],
                                                 server_settings=settings, reset=_keep_session, **extra)
                await self._migrate(pool)
                self._pool = pool
        return self._pool

    async def _migrate(self, pool: Any) -> None:
        async with pool.acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await db.execute("CREATE TABLE IF NOT EXISTS healthbot_schema (version INTEGER NOT NULL)")
            current = await db.fetchval("SELECT max(version) FROM healthbot_schema") or 0
            if current > len(MIGRATIONS):
                raise RuntimeError(f"database schema version {current} is newer than this healthbot; upgrade healthbot")
            for version in range(current, len(MIGRATIONS)):
                await db.execute(MIGRATIONS[version])
                await db.execute("INSERT INTO healthbot_schema (version) VALUES ($1)", version + 1)

    @property
    def alerts(self) -> PostgresAlertStore:
        from bot.store.postgres_alerts import PostgresAlertStore

        return PostgresAlertStore(self)

    @property
    def deploys(self) -> PostgresDeploys:
        return PostgresDeploys(self)

    @property
    def identities(self) -> PostgresIdentities:
        return PostgresIdentities(self)

    # -- conversations ----------------------------------------------------------------------

    async def claim_event(self, event_id: str, *, ttl_s: float = EVENT_TTL_S) -> bool:
        pool = await self.pool()
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_S
            await pool.execute("DELETE FROM processed_events WHERE expires_at < $1", now)
        status = await pool.execute(
            "INSERT INTO processed_events (event_id, expires_at) VALUES ($1, $2) ON CONFLICT (event_id) DO UPDATE "
            "SET expires_at = EXCLUDED.expires_at WHERE processed_events.expires_at < $3", event_id, now + ttl_s, now)
        return bool(status.endswith(" 1"))

    async def session_for(self, key: ThreadKey, *, idle_after_s: float | None = None) -> Session:
        pool = await self.pool()
        now, thread_key = time.time(), key.as_text()
        touched = await pool.fetchval(  # the common case, one round trip: a live session is touched
            "UPDATE sessions SET last_active = $2 WHERE thread_key = $1 AND ($3::float8 IS NULL OR $2 - last_active <= $3) "
            "RETURNING session_id", thread_key, now, idle_after_s)
        if touched is not None:
            return Session(touched, created=False)
        for _ in range(3):  # another replica may create or renew the session between two statements
            found = await pool.fetchrow("SELECT session_id, last_active FROM sessions WHERE thread_key = $1", thread_key)
            if found is not None and (idle_after_s is None or now - found["last_active"] <= idle_after_s):
                return Session(found["session_id"], created=False)
            fresh = new_session_id()
            if found is None:
                made = await pool.fetchval(
                    "INSERT INTO sessions (thread_key, session_id, created_at, last_active) VALUES ($1, $2, $3, $3) "
                    "ON CONFLICT (thread_key) DO NOTHING RETURNING session_id", thread_key, fresh, now)
            else:
                made = await pool.fetchval(
                    "UPDATE sessions SET session_id = $2, created_at = $3, last_active = $3 "
                    "WHERE thread_key = $1 AND session_id = $4 RETURNING session_id",
                    thread_key, fresh, now, found["session_id"])
            if made is not None:
                return Session(made, created=True)
        raise RuntimeError(f"could not settle the session of {thread_key}")

    async def new_session(self, key: ThreadKey) -> Session:
        pool = await self.pool()
        now, fresh = time.time(), new_session_id()
        await pool.execute(
            "INSERT INTO sessions (thread_key, session_id, created_at, last_active) VALUES ($1, $2, $3, $3) "
            "ON CONFLICT (thread_key) DO UPDATE SET session_id = EXCLUDED.session_id, created_at = EXCLUDED.created_at, "
            "last_active = EXCLUDED.last_active", key.as_text(), fresh, now)
        return Session(fresh, created=True)

    async def open_turn(self, key: ThreadKey, *, event_id: str, idle_after_s: float | None,
                        history_limit: int) -> Turn | None:
        return await self._turns.open_turn(key, event_id=event_id, idle_after_s=idle_after_s, history_limit=history_limit)

    async def add_question(self, session_id: str, message: ChatMessage | None, *, request_id: str,
                           limits: Limits | None) -> float:
        return await self._turns.add_question(session_id, message, request_id=request_id, limits=limits)

    async def take_slot(self, limits: Limits) -> float:
        return await self._turns.take_slot(limits)

    async def has_session(self, key: ThreadKey) -> bool:
        pool = await self.pool()
        return await pool.fetchval("SELECT 1 FROM sessions WHERE thread_key = $1", key.as_text()) is not None

    async def append_message(self, session_id: str, message: ChatMessage, *, request_id: str = "") -> None:
        pool = await self.pool()
        await pool.execute("INSERT INTO messages (session_id, role, content, request_id, created_at) VALUES ($1, $2, $3, $4, $5)",
                           session_id, message.role, message.content, request_id, time.time())

    async def recent_messages(self, session_id: str, limit: int) -> list[ChatMessage]:
        pool = await self.pool()
        rows = await pool.fetch("SELECT role, content FROM messages WHERE session_id = $1 ORDER BY id DESC LIMIT $2",
                                session_id, limit)
        return [ChatMessage(row["role"], row["content"]) for row in reversed(rows)]

    async def log_request(self, row: RequestLogRow) -> None:
        pool = await self.pool()
        await pool.execute(self._insert_log_sql(), *_row_values(row))

    @staticmethod
    def _insert_log_sql() -> str:
        """Idempotent: a retry after a commit whose reply was lost (a dropped connection) finds the row."""
        return (f"INSERT INTO request_log ({LOG_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 21))}) "
                "ON CONFLICT (request_id) DO NOTHING")

    async def record_answer(self, session_id: str, message: ChatMessage, row: RequestLogRow) -> None:
        pool = await self.pool()
        # One statement, so one round trip and atomic without an explicit transaction; the message is
        # written only with a new log row, so a retried call records the answer once.
        await pool.execute(
            f"WITH logged AS ({self._insert_log_sql()} RETURNING request_id) "
            "INSERT INTO messages (session_id, role, content, request_id, created_at) "
            "SELECT $21, $22, $23, $1, $24 WHERE EXISTS (SELECT 1 FROM logged)",
            *_row_values(row), session_id, message.role, message.content, time.time())

    async def get_request(self, request_id: str) -> RequestLogRow | None:
        pool = await self.pool()
        found = await pool.fetchrow(f"SELECT {LOG_COLUMNS} FROM request_log WHERE request_id = $1", request_id)
        return _row_from(found) if found is not None else None

    async def record_feedback(self, request_id: str, *, user_id: str, value: int, comment: str = "") -> bool:
        pool = await self.pool()
        status = await pool.execute(
            "INSERT INTO feedback (request_id, user_id, value, comment, ts) "
            "SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM request_log WHERE request_id = $1) "
            "ON CONFLICT (request_id, user_id) DO UPDATE SET value = EXCLUDED.value, comment = EXCLUDED.comment, ts = EXCLUDED.ts",
            request_id, user_id, 1 if value > 0 else -1, comment, time.time())
        return bool(status.endswith(" 1"))

    async def requests_since(self, since_ts: float) -> list[RequestLogRow]:
        pool = await self.pool()
        rows = await pool.fetch(f"SELECT {LOG_COLUMNS} FROM request_log WHERE ts >= $1 ORDER BY ts", since_ts)
        return [_row_from(row) for row in rows]

    async def feedback_since(self, since_ts: float) -> list[tuple[str, int]]:
        pool = await self.pool()
        rows = await pool.fetch("SELECT f.request_id, f.value FROM feedback f JOIN request_log r "
                                "ON r.request_id = f.request_id WHERE r.ts >= $1", since_ts)
        return [(str(row["request_id"]), int(row["value"])) for row in rows]

    async def save_reference(self, platform: str, channel: str, reference: dict[str, Any]) -> bool:
        pool = await self.pool()
        status = await pool.execute(
            "INSERT INTO conversation_refs (platform, channel, reference, updated_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (platform, channel) DO UPDATE SET reference = EXCLUDED.reference, updated_at = EXCLUDED.updated_at "
            "WHERE conversation_refs.reference <> EXCLUDED.reference",
            platform, channel, json.dumps(reference, sort_keys=True), time.time())
        return bool(status.endswith(" 1"))

    async def get_reference(self, platform: str, channel: str) -> dict[str, Any] | None:
        pool = await self.pool()
        found = await pool.fetchval("SELECT reference FROM conversation_refs WHERE platform = $1 AND channel = $2",
                                    platform, channel)
        return json.loads(found) if found is not None else None

    async def purge(self, before: float, *, batch: int = BATCH) -> dict[str, int]:
        """One batch per table (the caller repeats while anything was deleted)."""
        pool = await self.pool()
        deleted = {}
        for purge in PURGES:
            status = await pool.execute(purge_statement(purge, _NUMBERED, _PARAMS), before, time.time(), batch)
            deleted[purge.table] = int(status.split()[-1])
        return deleted

    async def table_stats(self) -> dict[str, tuple[int, float | None]]:
        pool = await self.pool()
        stats = {}
        for table, column in COUNTED.items():
            row = await pool.fetchrow(f"SELECT count(*) AS n, min({column}) AS oldest FROM {table}")
            stats[table] = (int(row["n"]), row["oldest"])
        return stats

    async def ping(self) -> None:
        pool = await self.pool()
        if await pool.fetchval("SELECT pg_is_in_recovery()"):
            raise RuntimeError("connected to a read-only replica")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
