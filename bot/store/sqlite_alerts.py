"""Alert persistence on the SQLite file: the outbox that makes "nothing lost" true.

An accepted webhook is one transaction (the event and one outbox row per target) committed before
the HTTP 200; the delivery worker leases due rows, so a row being delivered is not picked twice,
and a row whose worker died is picked again when its lease runs out.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

from bot.store.base import LEASE_S, AlertThread, Change, Delivery, Fence, LeaseLost, Outbox

UPSERT_OBSERVED = ("INSERT INTO alert_observations (key, state, at) VALUES (?, ?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET state = excluded.state, at = excluded.at")


THREAD_COLUMNS = ("alert_key, target, thread_ref, state, state_since, first_seen, last_seen, count, acknowledged_by, "
                  "digest, alert, care")


def _thread(row: Any) -> AlertThread:
    return AlertThread(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6], row[7], row[8],
                       bool(row[9]), json.loads(row[10]), json.loads(row[11] or "{}"))


class _Conflict(Exception):
    """A compare-and-set found another state: roll back, report False."""


class SqliteAlertStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @contextlib.contextmanager
    def _transaction(self, fence: Fence | None = None) -> Iterator[None]:
        """BEGIN IMMEDIATE takes the write lock at once: other processes on the file wait, so the
        fence check and the writes that follow it cannot interleave with a lease takeover."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if fence is not None and self._db.execute(
                    "SELECT 1 FROM leases WHERE name = ? AND holder = ? AND token = ?",
                    (fence.name, fence.holder, fence.token)).fetchone() is None:
                raise LeaseLost(f"lease {fence.name} is no longer held by {fence.holder}")
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _insert_outbox(self, alert_key: str, alert: dict[str, Any], targets: list[tuple[str, bool]], now: float) -> int:
        event_id = int(self._db.execute(
            "INSERT INTO alert_events (alert_key, alert, received_at) VALUES (?, ?, ?)",
            (alert_key, json.dumps(alert, default=str), now),
        ).lastrowid or 0)
        self._db.executemany(
            "INSERT INTO alert_outbox (event_id, alert_key, target, investigate, next_attempt_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(event_id, alert_key, target, int(investigate), now, now) for target, investigate in targets],
        )
        return event_id

    async def enqueue(self, alert_key: str, alert: dict[str, Any], targets: list[tuple[str, bool]], *,
                      observed: str | None = None) -> int:
        now = time.time()
        with self._transaction():
            event_id = self._insert_outbox(alert_key, alert, targets, now)
            if observed is not None:
                self._db.execute(UPSERT_OBSERVED, (alert_key, observed, now))
        return event_id

    # -- pulled alerts ----------------------------------------------------------------------

    async def take_lease(self, name: str, holder: str, ttl_s: float) -> Fence | None:
        now = time.time()  # one machine shares one clock: SQLite's processes all run on it
        found = self._db.execute(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES (?, ?, 1, ?) "
            "ON CONFLICT (name) DO UPDATE SET token = CASE WHEN leases.holder = excluded.holder THEN leases.token "
            "ELSE leases.token + 1 END, holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE leases.holder = excluded.holder OR leases.expires_at < ? RETURNING token",
            (name, holder, now + ttl_s, now)).fetchone()
        return Fence(name, holder, int(found[0])) if found is not None else None

    async def release_lease(self, fence: Fence) -> None:
        self._db.execute("UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ? AND token = ?",
                         (fence.name, fence.holder, fence.token))

    async def observed(self, prefix: str) -> dict[str, tuple[str, float]]:
        rows = self._db.execute("SELECT key, state, at FROM alert_observations WHERE key >= ? AND key < ?",
                                (prefix, prefix + "\uffff")).fetchall()
        return {str(key): (str(state), float(at)) for key, state, at in rows}

    async def observe(self, changes: list[Change], *, fence: Fence, outbox: Outbox | None = None) -> bool:
        try:
            with self._transaction(fence):
                for change in changes:
                    self._compare_and_set(change)
                if outbox is not None:
                    self._insert_outbox(*outbox, time.time())
        except _Conflict:
            return False
        return True

    def _compare_and_set(self, change: Change) -> None:
        if change.expected is None and change.state is not None:
            done = self._db.execute("INSERT INTO alert_observations (key, state, at) VALUES (?, ?, ?) "
                                    "ON CONFLICT (key) DO NOTHING", (change.key, change.state, change.at)).rowcount
        elif change.expected is None:
            done = int(self._db.execute("SELECT 1 FROM alert_observations WHERE key = ?", (change.key,)).fetchone() is None)
        elif change.state is None:
            done = self._db.execute("DELETE FROM alert_observations WHERE key = ? AND state = ?",
                                    (change.key, change.expected)).rowcount
        else:
            done = self._db.execute("UPDATE alert_observations SET state = ?, at = ? WHERE key = ? AND state = ?",
                                    (change.state, change.at, change.key, change.expected)).rowcount
        if not done:
            raise _Conflict(change.key)

    async def remember(self, items: list[tuple[str, str, float]], *, fence: Fence) -> None:
        with self._transaction(fence):
            self._db.executemany(UPSERT_OBSERVED, items)

    async def forget_before(self, prefix: str, before: float, *, fence: Fence) -> int:
        with self._transaction(fence):
            return int(self._db.execute("DELETE FROM alert_observations WHERE key >= ? AND key < ? AND at < ?",
                                        (prefix, prefix + "\uffff", before)).rowcount)

    async def lease_due(self, limit: int = 50) -> list[Delivery]:
        """Due rows in arrival order, leased to this worker; per alert and target only the oldest,
        so the states of one alert are delivered in the order they happened."""
        now, token = time.time(), uuid.uuid4().hex
        rows = self._db.execute(
            "SELECT o.id, o.event_id, o.alert_key, o.target, o.investigate, o.attempts, e.alert FROM alert_outbox o "
            "JOIN alert_events e ON e.id = o.event_id "
            "WHERE o.status = 'pending' AND o.next_attempt_at <= ? AND o.lease_until <= ? "
            "AND o.id = (SELECT min(p.id) FROM alert_outbox p WHERE p.alert_key = o.alert_key "
            "            AND p.target = o.target AND p.status = 'pending') "
            "ORDER BY o.id LIMIT ?",
            (now, now, limit),
        ).fetchall()
        leased = []
        for row in rows:
            taken = self._db.execute(
                "UPDATE alert_outbox SET lease_until = ?, lease_token = ? WHERE id = ? AND lease_until <= ?",
                (now + LEASE_S, token, row[0], now),
            ).rowcount
            if taken:
                leased.append(Delivery(row[0], row[1], row[2], row[3], bool(row[4]), row[5], json.loads(row[6]), token))
        return leased

    async def next_due_at(self) -> float | None:
        found = self._db.execute(
            "SELECT min(max(next_attempt_at, lease_until)) FROM alert_outbox WHERE status = 'pending'"
        ).fetchone()
        return float(found[0]) if found and found[0] is not None else None

    def _fenced(self, delivery: Delivery, assignments: str, *values: object) -> bool:
        """One update of a leased row, applied only while the lease is still the caller's."""
        return self._db.execute(
            f"UPDATE alert_outbox SET {assignments} WHERE id = ? AND lease_token = ? AND status = 'pending'",
            (*values, delivery.id, delivery.token)).rowcount == 1

    async def renew(self, delivery: Delivery) -> bool:
        return self._fenced(delivery, "lease_until = ?", time.time() + LEASE_S)

    async def delivered(self, delivery: Delivery) -> bool:
        return self._fenced(delivery, "status = 'delivered', done_at = ?, lease_until = 0", time.time())

    async def retry_later(self, delivery: Delivery, error: str, at: float) -> bool:
        return self._fenced(delivery, "attempts = attempts + 1, last_error = ?, next_attempt_at = ?, lease_until = 0",
                            error[:500], at)

    async def postpone(self, delivery: Delivery, at: float) -> bool:
        """Not a failure: pacing a busy channel."""
        return self._fenced(delivery, "next_attempt_at = ?, lease_until = 0", at)

    async def failed(self, delivery: Delivery, error: str) -> bool:
        return self._fenced(delivery, "status = 'failed', attempts = attempts + 1, last_error = ?, done_at = ?, "
                                      "lease_until = 0", error[:500], time.time())

    async def take_post_slot(self, target: str, pace_s: float) -> float:
        now = time.time()
        taken = self._db.execute(
            "INSERT INTO channel_pacing (target, next_at) VALUES (?, ?) ON CONFLICT (target) DO UPDATE "
            "SET next_at = excluded.next_at WHERE channel_pacing.next_at <= ? RETURNING next_at",
            (target, now + pace_s + LEASE_S, now)).fetchone()
        if taken is not None:
            return 0.0
        next_at = self._db.execute("SELECT next_at FROM channel_pacing WHERE target = ?", (target,)).fetchone()[0]
        return min(pace_s, max(0.0, float(next_at) - now))

    async def hold_post_slot(self, target: str, pace_s: float) -> None:
        self._db.execute("UPDATE channel_pacing SET next_at = max(next_at, ?) WHERE target = ?",
                         (time.time() + pace_s + LEASE_S, target))

    async def release_post_slot(self, target: str, pace_s: float) -> None:
        self._db.execute("UPDATE channel_pacing SET next_at = ? WHERE target = ?", (time.time() + pace_s, target))

    async def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, count(*) FROM alert_outbox GROUP BY status").fetchall()
        counts = {"pending": 0, "delivered": 0, "failed": 0}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    async def recent_failures(self, limit: int = 3, *, since: float = 0.0) -> list[tuple[str, str]]:
        rows = self._db.execute(
            "SELECT target, last_error FROM alert_outbox WHERE status = 'failed' AND done_at >= ? "
            "ORDER BY done_at DESC LIMIT ?", (since, limit),
        ).fetchall()
        return [(str(target), str(error)) for target, error in rows]

    async def thread(self, alert_key: str, target: str) -> AlertThread | None:
        row = self._db.execute(f"SELECT {THREAD_COLUMNS} FROM alert_threads WHERE alert_key = ? AND target = ?",
                               (alert_key, target)).fetchone()
        return _thread(row) if row is not None else None

    async def threads_seen_since(self, since: float, *, states: tuple[str, ...] = ()) -> list[AlertThread]:
        state = f" AND state IN ({', '.join('?' * len(states))})" if states else ""
        rows = self._db.execute(f"SELECT {THREAD_COLUMNS} FROM alert_threads WHERE last_seen >= ? AND digest = 0"
                                f"{state} ORDER BY first_seen", (since, *states)).fetchall()
        return [_thread(row) for row in rows]

    async def save_thread(self, thread: AlertThread) -> None:
        self._db.execute(
            f"INSERT INTO alert_threads ({THREAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (alert_key, target) DO UPDATE SET thread_ref = excluded.thread_ref, state = excluded.state, "
            "state_since = excluded.state_since, last_seen = excluded.last_seen, count = excluded.count, "
            "acknowledged_by = excluded.acknowledged_by, digest = excluded.digest, alert = excluded.alert, "
            "care = excluded.care",
            (thread.alert_key, thread.target, json.dumps(thread.thread_ref), thread.state, thread.state_since,
             thread.first_seen, thread.last_seen, thread.count, thread.acknowledged_by, int(thread.digest),
             json.dumps(thread.alert, default=str), json.dumps(thread.care)),
        )

    async def new_roots_since(self, target: str, since: float) -> int:
        return int(self._db.execute(
            "SELECT count(*) FROM alert_threads WHERE target = ? AND first_seen >= ? AND digest = 0", (target, since)
        ).fetchone()[0])
