"""Bounded storage: what `HEALTHBOT_RETENTION_DAYS` deletes, in small batches, off the request path.

Both stores run the same statements (only the placeholder style differs). Open alert threads are
kept whatever their age (a long outage is still one thread); everything else older than the window
goes: messages, idle sessions, request-log rows and their feedback, finished outbox rows and the
alert events no row points at any more, resolved alert threads, and expired housekeeping rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

BATCH = 500
# An alert thread in one of these states is closed (bot.alerts.model); a rollout thread once its update ended.
RESOLVED = ("OK", "succeeded", "SERVING", "UPDATE_FAILED", "UPDATE_CANCELED")


@dataclass(frozen=True, slots=True)
class Purge:
    table: str
    key: str  # what identifies a row (a column, or a row value of columns)
    where: str  # `{before}` is the retention cutoff, `{now}` the current time


PURGES = (
    Purge("messages", "id", "created_at < {before}"),
    Purge("sessions", "thread_key", "last_active < {before}"),
    Purge("feedback", "(request_id, user_id)", "ts < {before}"),
    Purge("request_log", "request_id", "ts < {before}"),
    Purge("processed_events", "event_id", "expires_at < {now}"),
    Purge("alert_outbox", "id", "status <> 'pending' AND done_at < {before}"),
    Purge("alert_events", "id", "received_at < {before} AND NOT EXISTS "
                                "(SELECT 1 FROM alert_outbox o WHERE o.event_id = alert_events.id)"),
    Purge("alert_threads", "(alert_key, target)",
          "last_seen < {before} AND state IN (" + ", ".join(f"'{state}'" for state in RESOLVED) + ")"),
    Purge("rate_windows", "(key, window_start)", "window_start < {now} / 60 - 2"),
    Purge("channel_pacing", "target", "next_at < {now} - 3600"),
    Purge("rollbacks", "id", "updated_at < {before}"),
    Purge("oauth_states", "state", "expires_at < {now}"),  # sign-ins never finished; connected people stay
)
COUNTED = {"messages": "created_at", "sessions": "last_active", "request_log": "ts", "alert_outbox": "created_at",
           "alert_events": "received_at", "alert_threads": "first_seen", "processed_events": "expires_at"}


def purge_statement(purge: Purge, names: dict[str, str], prefix: str = "") -> str:
    """DELETE … WHERE key IN (one batch). `names` spells the parameters `before`, `now` and `limit` in
    the driver's style; `prefix` can bind them first (PostgreSQL refuses a parameter it cannot type,
    so every statement there binds all three in a CTE)."""
    where = purge.where.format(before=names["before"], now=names["now"])
    columns = purge.key.strip("()")  # a row value `(a, b)` is compared with a subquery selecting `a, b`
    return (f"{prefix}DELETE FROM {purge.table} WHERE {purge.key} IN "
            f"(SELECT {columns} FROM {purge.table} WHERE {where} LIMIT {names['limit']})")


def cutoff(days: float, now: float | None = None) -> float:
    return (now if now is not None else time.time()) - days * 86400.0
