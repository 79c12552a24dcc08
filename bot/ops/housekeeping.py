"""Retention: a background job on one replica deletes what is older than HEALTHBOT_RETENTION_DAYS.

It runs hourly under a store lease (so one replica of a fleet does it), deletes in batches of a few
hundred rows per table and yields between them, so requests never wait behind it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from bot.background import BackgroundLoop
from bot.store import Store
from bot.store.retention import cutoff

log = logging.getLogger(__name__)

EVERY_S = 3600.0
LEASE = "retention"


class Retention(BackgroundLoop):
    def __init__(self, *, store: Store, days: float, every_s: float = EVERY_S) -> None:
        self.store = store
        self.days = days
        self.every_s = every_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:retention"

    async def run_once(self) -> dict[str, int]:
        """Delete everything past the window, batch by batch; returns rows deleted per table."""
        before, totals = cutoff(self.days), dict[str, int]()
        while True:
            deleted = await self.store.purge(before)
            for table, n in deleted.items():
                totals[table] = totals.get(table, 0) + n
            if not any(deleted.values()):
                return totals
            await asyncio.sleep(0)  # let requests in between batches

    async def _run(self) -> None:
        while True:
            try:
                fence = await self.store.alerts.take_lease(LEASE, self.holder, self.every_s / 2)
                if fence is not None:
                    started = time.monotonic()
                    totals = await self.run_once()
                    if any(totals.values()):
                        log.info("retention (%g days) deleted %s in %.1f s", self.days,
                                 ", ".join(f"{n} {table}" for table, n in totals.items() if n), time.monotonic() - started)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: try again next time
                log.warning("retention run failed: %s: %s", type(exc).__name__, str(exc)[:200])
            await asyncio.sleep(self.every_s)


def describe_stats(stats: dict[str, tuple[int, Any]]) -> str:
    """`messages 1,204 (oldest 2026-09-01)` for each table: the doctor's store line."""
    parts = []
    for table, (count, oldest) in stats.items():
        when = time.strftime("%Y-%m-%d", time.gmtime(float(oldest))) if oldest is not None else "—"
        parts.append(f"{table} {count:,} (oldest {when})")
    return "; ".join(parts)
