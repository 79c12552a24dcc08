"""The per-message statements of the PostgreSQL store, folded into as few round trips as possible.

A message costs three round trips on a thread that already has a session: `open_turn` (claim the
event, touch the session, read the history), `add_question` (append the question and count it
against the fleet-wide limits) and `record_answer`. Each round trip to a nearby server is most of a
message's cost (bench/handler.py), so each of these is one statement.

Limits are exact across replicas: one row per admitted request in `rate_admissions`, counted in
the SQL function `healthbot_admit` under an advisory lock per key (bot/store/postgres_schema.py), so at
most N are admitted in any 60 s whichever replica takes them. A request over the limit is not counted.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent.base import ChatMessage
from bot.ids import new_session_id
from bot.models import ThreadKey
from bot.store.base import EVENT_TTL_S, Limits, Session, Turn

if TYPE_CHECKING:
    from bot.store.postgres import PostgresStore

WINDOW_S = 60
OVERALL_KEY = "all"

OPEN_TURN = """
WITH claim AS (
    INSERT INTO processed_events (event_id, expires_at) SELECT $1, $2 WHERE $1 <> ''
    ON CONFLICT (event_id) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE processed_events.expires_at < $3
    RETURNING 1),
go AS (SELECT $1 = '' OR EXISTS (SELECT 1 FROM claim) AS claimed),
touched AS (
    UPDATE sessions SET last_active = $3
    WHERE thread_key = $4 AND ($5::float8 IS NULL OR $3 - last_active <= $5) AND (SELECT claimed FROM go)
    RETURNING session_id),
created AS (
    INSERT INTO sessions (thread_key, session_id, created_at, last_active)
    SELECT $4, $7, $3, $3 WHERE (SELECT claimed FROM go) AND NOT EXISTS (SELECT 1 FROM touched)
    ON CONFLICT (thread_key) DO UPDATE SET session_id = EXCLUDED.session_id, created_at = EXCLUDED.created_at,
        last_active = EXCLUDED.last_active
    WHERE $5::float8 IS NOT NULL AND $3 - sessions.last_active > $5
    RETURNING session_id)
SELECT (SELECT claimed FROM go) AS claimed, coalesce((SELECT session_id FROM touched), (SELECT session_id FROM created))
       AS session_id, EXISTS (SELECT 1 FROM created) AS created,
       ARRAY(SELECT ROW(h.role, h.content) FROM (
           SELECT id, role, content FROM messages WHERE session_id = (SELECT session_id FROM touched)
           ORDER BY id DESC LIMIT $6) h ORDER BY h.id) AS history
"""

ADD_QUESTION = f"""
WITH question AS (
    INSERT INTO messages (session_id, role, content, request_id, created_at)
    SELECT $1, $2, $3, $4, $5 WHERE $3::text IS NOT NULL)
SELECT CASE WHEN cardinality($6::text[]) = 0 THEN 0 ELSE healthbot_admit($6, $7, {WINDOW_S}) END AS wait
"""
TAKE_SLOT = f"SELECT healthbot_admit($1, $2, {WINDOW_S}) AS wait"


class PostgresTurns:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def open_turn(self, key: ThreadKey, *, event_id: str, idle_after_s: float | None,
                        history_limit: int) -> Turn | None:
        """Claim, touch or start the session, and read its history: one statement, so the claim and the
        session are made together or not at all (a retry after a failure cannot lose the message)."""
        pool = await self.store.pool()
        now = time.time()
        row = await pool.fetchrow(OPEN_TURN, event_id, now + EVENT_TTL_S, now, key.as_text(), idle_after_s,
                                  history_limit, new_session_id())
        if not row["claimed"]:
            return None
        if row["session_id"] is not None:
            history = [ChatMessage(role, content) for role, content in row["history"]]
            return Turn(Session(row["session_id"], created=row["created"]), history)
        # Another replica started this thread's session between our look and our insert: use theirs.
        session = await self.store.session_for(key, idle_after_s=idle_after_s)
        return Turn(session, await self.store.recent_messages(session.session_id, history_limit))

    async def add_question(self, session_id: str, message: ChatMessage | None, *, request_id: str,
                           limits: Limits | None) -> float:
        """Append the question and take its place in the limits: one statement, one round trip."""
        pool = await self.store.pool()
        keys, caps = _keys(limits)
        wait = await pool.fetchval(ADD_QUESTION, session_id, message.role if message else None,
                                   message.content if message else None, request_id, time.time(), keys, caps)
        return float(wait or 0.0)

    async def take_slot(self, limits: Limits) -> float:
        """Count one request that is not a question (a refusal) against the same limits."""
        pool = await self.store.pool()
        return float(await pool.fetchval(TAKE_SLOT, *_keys(limits)) or 0.0)


def _keys(limits: Limits | None) -> tuple[list[str], list[int]]:
    if limits is None:
        return [], []
    return [limits.user_key, OVERALL_KEY], [limits.per_user, limits.overall]
