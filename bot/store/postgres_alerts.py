"""Alert persistence on PostgreSQL / Lakebase: the outbox, alert threads, and the poller's state.

Other replicas write the same rows, so every read-decide-write is one atomic statement or one
transaction: outbox leases with FOR UPDATE SKIP LOCKED, observations with compare-and-set, and
every write made under the poller's lease re-checks its fencing token (FOR SHARE) in the same
transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from bot.store.base import LEASE_S, AlertThread, Change, Delivery, Fence, LeaseLost, Outbox

if TYPE_CHECKING:
    from bot.store.postgres import PostgresStore

ASK_AGAIN_S = 0.01  # a slot freed between taking and reading it: ask again at once
DB_NOW = "extract(epoch from clock_timestamp())::float8"  # lease expiry on the database's clock, not a replica's
UPSERT_OBSERVED = ("INSERT INTO alert_observations (key, state, at) VALUES ($1, $2, $3) "
                   "ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, at = EXCLUDED.at")


THREAD_COLUMNS = ("alert_key, target, thread_ref, state, state_since, first_seen, last_seen, count, acknowledged_by, "
                  "digest, alert, care")


def _thread(row: Any) -> AlertThread:
    return AlertThread(row["alert_key"], row["target"], json.loads(row["thread_ref"]), row["state"], row["state_since"],
                       row["first_seen"], row["last_seen"], row["count"], row["acknowledged_by"], row["digest"],
                       json.loads(row["alert"]), json.loads(row["care"] or "{}"))


class _Conflict(Exception):
    """A compare-and-set found another state: roll back, report False."""


class PostgresAlertStore:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    @staticmethod
    async def _insert_outbox(db: Any, alert_key: str, alert: dict[str, Any], targets: list[tuple[str, bool]],
                             now: float) -> int:
        event_id = await db.fetchval("INSERT INTO alert_events (alert_key, alert, received_at) VALUES ($1, $2, $3) "
                                     "RETURNING id", alert_key, json.dumps(alert, default=str), now)
        await db.executemany(
            "INSERT INTO alert_outbox (event_id, alert_key, target, investigate, next_attempt_at, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $5)", [(event_id, alert_key, target, investigate, now) for target, investigate in targets])
        return int(event_id)

    async def enqueue(self, alert_key: str, alert: dict[str, Any], targets: list[tuple[str, bool]], *,
                      observed: str | None = None) -> int:
        pool = await self.store.pool()
        now = time.time()
        async with pool.acquire() as db, db.transaction():
            event_id = await self._insert_outbox(db, alert_key, alert, targets, now)
            if observed is not None:
                await db.execute(UPSERT_OBSERVED, alert_key, observed, now)
        return event_id

    async def lease_due(self, limit: int = 50) -> list[Delivery]:
        """Leased with FOR UPDATE SKIP LOCKED: replicas polling together never take the same row."""
        pool = await self.store.pool()
        now, token = time.time(), uuid.uuid4().hex
        rows = await pool.fetch(
            "WITH due AS (SELECT o.id FROM alert_outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= $1 "
            "  AND o.lease_until <= $1 AND o.id = (SELECT min(p.id) FROM alert_outbox p WHERE p.alert_key = o.alert_key "
            "  AND p.target = o.target AND p.status = 'pending') ORDER BY o.id LIMIT $2 FOR UPDATE SKIP LOCKED) "
            "UPDATE alert_outbox u SET lease_until = $3, lease_token = $4 FROM due, alert_events e "
            "WHERE u.id = due.id AND e.id = u.event_id "
            "RETURNING u.id, u.event_id, u.alert_key, u.target, u.investigate, u.attempts, e.alert",
            now, limit, now + LEASE_S, token)
        return [Delivery(r["id"], r["event_id"], r["alert_key"], r["target"], r["investigate"], r["attempts"],
                         json.loads(r["alert"]), token) for r in sorted(rows, key=lambda r: r["id"])]

    async def next_due_at(self) -> float | None:
        pool = await self.store.pool()
        value = await pool.fetchval("SELECT min(greatest(next_attempt_at, lease_until)) FROM alert_outbox WHERE status = 'pending'")
        return float(value) if value is not None else None

    async def _fenced(self, delivery: Delivery, assignments: str, *values: object) -> bool:
        """One update of a leased row, applied only while the lease is still the caller's."""
        pool = await self.store.pool()
        n = len(values)
        status = await pool.execute(
            f"UPDATE alert_outbox SET {assignments} WHERE id = ${n + 1} AND lease_token = ${n + 2} AND status = 'pending'",
            *values, delivery.id, delivery.token)
        return bool(status.endswith(" 1"))

    async def renew(self, delivery: Delivery) -> bool:
        return await self._fenced(delivery, "lease_until = $1", time.time() + LEASE_S)

    async def delivered(self, delivery: Delivery) -> bool:
        return await self._fenced(delivery, "status = 'delivered', done_at = $1, lease_until = 0", time.time())

    async def retry_later(self, delivery: Delivery, error: str, at: float) -> bool:
        return await self._fenced(delivery, "attempts = attempts + 1, last_error = $1, next_attempt_at = $2, lease_until = 0",
                                  error[:500], at)

    async def postpone(self, delivery: Delivery, at: float) -> bool:
        return await self._fenced(delivery, "next_attempt_at = $1, lease_until = 0", at)

    async def failed(self, delivery: Delivery, error: str) -> bool:
        return await self._fenced(delivery, "status = 'failed', attempts = attempts + 1, last_error = $1, done_at = $2, "
                                            "lease_until = 0", error[:500], time.time())

    async def take_post_slot(self, target: str, pace_s: float) -> float:
        """On the database's clock, so replicas with skewed clocks share one pace. The row lock orders
        concurrent callers, each sees the slot as the other left it, and only the one whose statement
        wrote the row gets a row back: an exact answer even when two replicas ask in the same
        microsecond (telling by comparing the times the row holds let both through then)."""
        pool = await self.store.pool()
        held = pace_s + LEASE_S  # until release_post_slot, or a crashed poster's lease would have run out
        taken = await pool.fetchval(
            f"WITH now AS (SELECT {DB_NOW} AS t) "
            "INSERT INTO channel_pacing (target, next_at) SELECT $1, t + $2 FROM now ON CONFLICT (target) DO UPDATE "
            "SET next_at = EXCLUDED.next_at WHERE channel_pacing.next_at <= EXCLUDED.next_at - $2 RETURNING true",
            target, held)
        if taken:
            return 0.0
        # Not taken, even if the hold has run out since: 0 would mean "post now" without holding the slot
        left = await pool.fetchval(f"SELECT next_at - {DB_NOW} FROM channel_pacing WHERE target = $1", target)
        return min(pace_s, max(ASK_AGAIN_S, float(left or 0.0)))

    async def hold_post_slot(self, target: str, pace_s: float) -> None:
        pool = await self.store.pool()
        await pool.execute(f"UPDATE channel_pacing SET next_at = greatest(next_at, {DB_NOW} + $2) WHERE target = $1",
                           target, pace_s + LEASE_S)

    async def release_post_slot(self, target: str, pace_s: float) -> None:
        pool = await self.store.pool()
        await pool.execute(f"UPDATE channel_pacing SET next_at = {DB_NOW} + $2 WHERE target = $1", target, pace_s)

    async def counts(self) -> dict[str, int]:
        pool = await self.store.pool()
        counts = {"pending": 0, "delivered": 0, "failed": 0}
        for row in await pool.fetch("SELECT status, count(*) AS n FROM alert_outbox GROUP BY status"):
            counts[row["status"]] = int(row["n"])
        return counts

    async def recent_failures(self, limit: int = 3, *, since: float = 0.0) -> list[tuple[str, str]]:
        pool = await self.store.pool()
        rows = await pool.fetch("SELECT target, last_error FROM alert_outbox WHERE status = 'failed' AND done_at >= $1 "
                                "ORDER BY done_at DESC LIMIT $2", since, limit)
        return [(row["target"], row["last_error"]) for row in rows]

    async def thread(self, alert_key: str, target: str) -> AlertThread | None:
        pool = await self.store.pool()
        row = await pool.fetchrow(f"SELECT {THREAD_COLUMNS} FROM alert_threads WHERE alert_key = $1 AND target = $2",
                                  alert_key, target)
        return _thread(row) if row is not None else None

    async def threads_seen_since(self, since: float, *, states: tuple[str, ...] = ()) -> list[AlertThread]:
        pool = await self.store.pool()
        state = " AND state = ANY($2::text[])" if states else ""
        rows = await pool.fetch(f"SELECT {THREAD_COLUMNS} FROM alert_threads WHERE last_seen >= $1 AND NOT digest"
                                f"{state} ORDER BY first_seen", since, *([list(states)] if states else []))
        return [_thread(row) for row in rows]

    async def save_thread(self, thread: AlertThread) -> None:
        pool = await self.store.pool()
        await pool.execute(
            f"INSERT INTO alert_threads ({THREAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
            "ON CONFLICT (alert_key, target) DO UPDATE SET thread_ref = EXCLUDED.thread_ref, state = EXCLUDED.state, "
            "state_since = EXCLUDED.state_since, last_seen = EXCLUDED.last_seen, count = EXCLUDED.count, "
            "acknowledged_by = EXCLUDED.acknowledged_by, digest = EXCLUDED.digest, alert = EXCLUDED.alert, "
            "care = EXCLUDED.care",
            thread.alert_key, thread.target, json.dumps(thread.thread_ref), thread.state, thread.state_since,
            thread.first_seen, thread.last_seen, thread.count, thread.acknowledged_by, thread.digest,
            json.dumps(thread.alert, default=str), json.dumps(thread.care))

    async def new_roots_since(self, target: str, since: float) -> int:
        pool = await self.store.pool()
        return int(await pool.fetchval("SELECT count(*) FROM alert_threads WHERE target = $1 AND first_seen >= $2 "
                                       "AND NOT digest", target, since))

    # -- pulled alerts ----------------------------------------------------------------------

    async def take_lease(self, name: str, holder: str, ttl_s: float) -> Fence | None:
        pool = await self.store.pool()
        token = await pool.fetchval(
            f"INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, $2, 1, {DB_NOW} + $3) "
            "ON CONFLICT (name) DO UPDATE SET token = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.token "
            "ELSE leases.token + 1 END, holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at "
            f"WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < {DB_NOW} RETURNING token",
            name, holder, ttl_s)
        return Fence(name, holder, int(token)) if token is not None else None

    async def release_lease(self, fence: Fence) -> None:
        pool = await self.store.pool()
        await pool.execute("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND token = $3",
                           fence.name, fence.holder, fence.token)

    async def observed(self, prefix: str) -> dict[str, tuple[str, float]]:
        pool = await self.store.pool()
        rows = await pool.fetch("SELECT key, state, at FROM alert_observations WHERE starts_with(key, $1)", prefix)
        return {row["key"]: (row["state"], row["at"]) for row in rows}

    @staticmethod
    async def _check_fence(db: Any, fence: Fence) -> None:
        """FOR SHARE: a takeover (which updates the lease row) waits until this transaction ends."""
        held = await db.fetchval("SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND token = $3 FOR SHARE",
                                 fence.name, fence.holder, fence.token)
        if held is None:
            raise LeaseLost(f"lease {fence.name} is no longer held by {fence.holder}")

    async def observe(self, changes: list[Change], *, fence: Fence, outbox: Outbox | None = None) -> bool:
        pool = await self.store.pool()
        try:
            async with pool.acquire() as db, db.transaction():
                await self._check_fence(db, fence)
                for change in changes:
                    await self._compare_and_set(db, change)
                if outbox is not None:
                    await self._insert_outbox(db, *outbox, time.time())
        except _Conflict:
            return False
        return True

    @staticmethod
    async def _compare_and_set(db: Any, change: Change) -> None:
        if change.expected is None and change.state is not None:
            status = await db.execute("INSERT INTO alert_observations (key, state, at) VALUES ($1, $2, $3) "
                                      "ON CONFLICT (key) DO NOTHING", change.key, change.state, change.at)
        elif change.expected is None:
            found = await db.fetchval("SELECT 1 FROM alert_observations WHERE key = $1", change.key)
            status = "SELECT 1" if found is None else "SELECT 0"
        elif change.state is None:
            status = await db.execute("DELETE FROM alert_observations WHERE key = $1 AND state = $2",
                                      change.key, change.expected)
        else:
            status = await db.execute("UPDATE alert_observations SET state = $3, at = $4 WHERE key = $1 AND state = $2",
                                      change.key, change.expected, change.state, change.at)
        if not status.endswith(" 1"):
            raise _Conflict(change.key)

    async def remember(self, items: list[tuple[str, str, float]], *, fence: Fence) -> None:
        pool = await self.store.pool()
        async with pool.acquire() as db, db.transaction():
            await self._check_fence(db, fence)
            await db.executemany(UPSERT_OBSERVED, items)

    async def forget_before(self, prefix: str, before: float, *, fence: Fence) -> int:
        pool = await self.store.pool()
        async with pool.acquire() as db, db.transaction():
            await self._check_fence(db, fence)
            status = await db.execute("DELETE FROM alert_observations WHERE starts_with(key, $1) AND at < $2",
                                      prefix, before)
        return int(status.split()[-1])
