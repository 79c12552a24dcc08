"""When the digest goes out: HEALTHBOT_DIGEST = "<day> <HH:MM>" (`mon 09:00`, or `daily 09:00`) in
HEALTHBOT_DIGEST_TZ, to HEALTHBOT_DIGEST_CHANNELS.

A schedule is a stored record of periods done plus a lease (as cron should have been): whoever holds
the `digest` lease posts the latest period not yet done — once, through the outbox, its "done" mark
written in the same transaction — and only if it is less than 6 hours late; an older one is skipped,
never posted twice.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from bot.alerts.digest import channel_digest, digest_alert, digest_overview
from bot.alerts.schedule import Schedule
from bot.alerts.dispatch import AlertDispatcher
from bot.background import LeasedPoller
from bot.store.base import Change, LeaseLost, Store

log = logging.getLogger(__name__)

LATE_BY_AT_MOST_S = 6 * 3600.0
CHECK_EVERY_S = 60.0
LEASE_NAME = "digest"


class DigestScheduler(LeasedPoller):
    what = "weekly digest"

    def __init__(self, *, dispatcher: AlertDispatcher, store: Store, engine: Any, schedule: Schedule,
                 targets: list[str], holder: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.dispatcher, self.store, self.engine, self.schedule, self.clock = dispatcher, store, engine, schedule, clock
        self.targets = [(target, False) for target in targets]
        self.interval_s = CHECK_EVERY_S
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leases = dispatcher.alerts
        self.posted: list[str] = []

    async def poll_once(self) -> None:
        self.fence = await self.leases.take_lease(LEASE_NAME, self.holder, self.interval_s * 3)
        if self.fence is None or not self.targets:
            return
        now = self.clock()
        period = self.schedule.latest(now)
        key = f"digest:{period.key}"
        observed = await self.dispatcher.alerts.observed(key)
        if observed.get(key) is not None:
            return  # done (by this replica or another, before or after a restart)
        due = [(target, investigate) for target, investigate in self.targets if f"{key}:{target}" not in observed]
        if not due:
            return
        if now - period.end > LATE_BY_AT_MOST_S:
            log.info("the %s digest was missed by more than 6 h: skipped", period.key)
            await self.dispatcher.alerts.remember([(key, "skipped", now)], fence=self.fence)
            return
        overview = await digest_overview(self.engine, period) if self.engine is not None else ""
        for target, investigate in due:  # each channel its own threads and figures, each posted once
            digest = await channel_digest(self.store, period, target, overview)
            try:
                if not await self.dispatcher.observe([Change(f"{key}:{target}", None, "posted", now)], fence=self.fence,
                                                     alert=digest_alert(period, digest), targets=[(target, investigate)]):
                    return
            except LeaseLost:
                self.fence = None
                return
        self.posted.append(period.key)
        log.info("digest %s posted to %d channels", period.key, len(due))
