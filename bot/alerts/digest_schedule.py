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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.alerts.digest import Period, build_digest, digest_alert, digest_overview, with_overview
from bot.alerts.dispatch import AlertDispatcher
from bot.background import LeasedPoller
from bot.store.base import Change, LeaseLost, Store
from bot.targets import parse_target

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LATE_BY_AT_MOST_S = 6 * 3600.0
CHECK_EVERY_S = 60.0
LEASE_NAME = "digest"


@dataclass(frozen=True, slots=True)
class Schedule:
    day: int | None  # 0 = Monday; None: daily
    hour: int
    minute: int
    tz: ZoneInfo

    @staticmethod
    def parse(text: str, tz: str = "UTC") -> Schedule:
        """ValueError naming what is wrong."""
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"HEALTHBOT_DIGEST_TZ: {tz!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        parts = text.strip().lower().split()
        if len(parts) != 2 or (parts[0] not in DAYS and parts[0] != "daily"):
            raise ValueError(f"HEALTHBOT_DIGEST: expected '<day> <HH:MM>' like 'mon 09:00' or 'daily 09:00', not {text!r}")
        hour, _, minute = parts[1].partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            raise ValueError(f"HEALTHBOT_DIGEST: {parts[1]!r} is not a time like 09:00")
        return Schedule(None if parts[0] == "daily" else DAYS.index(parts[0]), int(hour), int(minute), zone)

    def until_now(self, now: float) -> Period:
        """The period that ends now (`healthbot digest`, `/healthbot digest`): the last week, or day."""
        length = timedelta(days=1 if self.day is None else 7)
        end = datetime.fromtimestamp(now, self.tz)
        start = end - length
        kind = "day" if self.day is None else "week"
        return Period(f"now-{int(now)}", start.timestamp(), now, f"{kind} {start:%d %b} – {end:%d %b %Y}")

    def latest(self, now: float) -> Period:
        """The period whose digest is due most recently at or before `now`."""
        local = datetime.fromtimestamp(now, self.tz)
        due = local.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if self.day is None:
            if due > local:
                due -= timedelta(days=1)
            start = due - timedelta(days=1)
            return Period(f"{due:%Y-%m-%d}", start.timestamp(), due.timestamp(), f"day {start:%d %b} – {due:%d %b %Y}")
        due -= timedelta(days=(due.weekday() - self.day) % 7)
        if due > local:
            due -= timedelta(days=7)
        start = due - timedelta(days=7)
        year, week, _ = due.isocalendar()
        return Period(f"{year}-W{week:02d}", start.timestamp(), due.timestamp(), f"week {start:%d %b} – {due:%d %b %Y}")


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
            digest = with_overview(await build_digest(self.store, None, period, target=parse_target(target)), overview)
            try:
                if not await self.dispatcher.observe([Change(f"{key}:{target}", None, "posted", now)], fence=self.fence,
                                                     alert=digest_alert(period, digest), targets=[(target, investigate)]):
                    return
            except LeaseLost:
                self.fence = None
                return
        self.posted.append(period.key)
        log.info("digest %s posted to %d channels", period.key, len(due))
