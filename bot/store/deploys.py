"""Rollbacks asked for in the chat: the record is the audit trail (who asked, from → to, when, how it
ended) and the guard that makes a confirmation count once.

Two steps, one person: `request` stores a pending rollback; `claim` moves it on only for the asker,
only while pending and unexpired, in one conditional UPDATE — a double click, a replayed payload or a
second replica's click finds it no longer pending. The update is marked `sending` before the workspace
call and `sent` / `failed` after it, so a crash in between is reported after restart, never re-sent.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.store.postgres import PostgresStore

PENDING, SENDING, SENT, FAILED, CANCELED, INTERRUPTED = "pending", "sending", "sent", "failed", "canceled", "interrupted"
CONFIRM_WITHIN_S = 600.0
COLUMNS = "id, endpoint, asker, asker_name, from_version, to_version, status, detail, place, created_at, expires_at, updated_at"


@dataclass(frozen=True, slots=True)
class Rollback:
    id: str
    endpoint: str
    asker: str  # platform:user id — the only person who may confirm
    asker_name: str  # for the thread and the audit ("ana@example.com")
    from_version: str
    to_version: str
    status: str
    detail: str
    place: str  # JSON: where to report progress (platform, channel, thread)
    created_at: float
    expires_at: float
    updated_at: float

    def values(self) -> tuple[Any, ...]:
        return (self.id, self.endpoint, self.asker, self.asker_name, self.from_version, self.to_version, self.status,
                self.detail, self.place, self.created_at, self.expires_at, self.updated_at)


def claim_refusal(found: Rollback | None, asker: str, now: float) -> str:
    """Why a claim did not take, in words for the person who clicked."""
    if found is None:
        return "That rollback request is unknown here."
    if found.asker != asker:
        return f"Only {found.asker_name} can confirm or cancel the rollback they asked for."
    if found.status != PENDING:
        return f"That rollback was already {found.status}."
    if found.expires_at <= now:
        return "That confirmation expired (10 minutes): ask again with rollback."
    return "That rollback could not be confirmed."


class SqliteDeploys:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def create_rollback(self, record: Rollback) -> None:
        self._db.execute(f"INSERT INTO rollbacks ({COLUMNS}) VALUES ({', '.join('?' * 12)})", record.values())

    async def rollback(self, rollback_id: str) -> Rollback | None:
        row = self._db.execute(f"SELECT {COLUMNS} FROM rollbacks WHERE id = ?", (rollback_id,)).fetchone()
        return Rollback(*row) if row is not None else None

    async def claim_rollback(self, rollback_id: str, asker: str, status: str) -> Rollback | str:
        now = time.time()
        cursor = self._db.execute("UPDATE rollbacks SET status = ?, updated_at = ? WHERE id = ? AND asker = ? AND "
                                  "status = ? AND expires_at > ?", (status, now, rollback_id, asker, PENDING, now))
        found = await self.rollback(rollback_id)
        return found if cursor.rowcount == 1 and found is not None else claim_refusal(found, asker, now)

    async def finish_rollback(self, rollback_id: str, status: str, detail: str) -> None:
        self._db.execute("UPDATE rollbacks SET status = ?, detail = ?, updated_at = ? WHERE id = ?",
                         (status, detail[:2000], time.time(), rollback_id))

    async def rollbacks_in(self, status: str) -> list[Rollback]:
        rows = self._db.execute(f"SELECT {COLUMNS} FROM rollbacks WHERE status = ? ORDER BY created_at", (status,))
        return [Rollback(*row) for row in rows.fetchall()]


class PostgresDeploys:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def create_rollback(self, record: Rollback) -> None:
        pool = await self.store.pool()
        await pool.execute(f"INSERT INTO rollbacks ({COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 13))})",
                           *record.values())

    async def rollback(self, rollback_id: str) -> Rollback | None:
        pool = await self.store.pool()
        row = await pool.fetchrow(f"SELECT {COLUMNS} FROM rollbacks WHERE id = $1", rollback_id)
        return Rollback(*row.values()) if row is not None else None

    async def claim_rollback(self, rollback_id: str, asker: str, status: str) -> Rollback | str:
        pool = await self.store.pool()
        now = time.time()
        row = await pool.fetchrow(f"UPDATE rollbacks SET status = $1, updated_at = $2 WHERE id = $3 AND asker = $4 AND "
                                  f"status = $5 AND expires_at > $2 RETURNING {COLUMNS}",
                                  status, now, rollback_id, asker, PENDING)
        if row is not None:
            return Rollback(*row.values())
        return claim_refusal(await self.rollback(rollback_id), asker, now)

    async def finish_rollback(self, rollback_id: str, status: str, detail: str) -> None:
        pool = await self.store.pool()
        await pool.execute("UPDATE rollbacks SET status = $1, detail = $2, updated_at = $3 WHERE id = $4",
                           status, detail[:2000], time.time(), rollback_id)

    async def rollbacks_in(self, status: str) -> list[Rollback]:
        pool = await self.store.pool()
        rows = await pool.fetch(f"SELECT {COLUMNS} FROM rollbacks WHERE status = $1 ORDER BY created_at", status)
        return [Rollback(*row.values()) for row in rows]
