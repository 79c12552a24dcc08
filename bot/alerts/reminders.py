"""Reminders for alerts nobody acted on: a TRIGGERED (or failed) alert that nobody acknowledged or
snoozed gets a reply in its thread after HEALTHBOT_ALERT_REMIND_MINUTES, and again after twice and
three times that, at most 3, naming the route's `oncall:` people. One replica sends them (a lease); the
count is a stored observation written with the reminder's outbox row, so each goes out once, across
replicas and restarts. A re-trigger starts the count again; a snooze that ran out is a quiet root update.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from bot.alerts import care
from bot.alerts.dispatch import AlertDispatcher
from bot.alerts.model import Alert
from bot.background import LeasedPoller
from bot.store.base import AlertThread, Change, LeaseLost
from bot.targets import parse_target

log = logging.getLogger(__name__)

LEASE_NAME = "alert-remind"
LOOK_BACK_S = 30 * 86400.0  # open threads seen in the last month are looked at


class AlertReminders(LeasedPoller):
    what = "alert reminders"

    def __init__(self, *, dispatcher: AlertDispatcher, remind_after_s: float, holder: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.dispatcher, self.remind_after_s, self.clock = dispatcher, remind_after_s, clock
        self.interval_s = max(0.05, min(60.0, remind_after_s / 4))
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leases = dispatcher.alerts
        self.sent = 0

    async def poll_once(self) -> None:
        fence = await self.leases.take_lease(LEASE_NAME, self.holder, self.interval_s * 3)
        self.fence = fence
        if fence is None:
            return
        now = self.clock()
        observed = await self.dispatcher.alerts.observed("remind:")
        for thread in await self.dispatcher.alerts.threads_seen_since(now - LOOK_BACK_S, states=care.OPEN_STATES):
            if "snooze" in thread.care and not care.snoozed(thread, now):
                await self.dispatcher.threads.refresh(thread)  # the snooze ran out: a quiet root update
            if not care.wants_reminder(thread, now):
                continue
            key = f"remind:{thread.alert_key}:{thread.target}"
            stored = observed.get(key)
            since, _, count = (stored[0] if stored else "").partition("|")
            sent = int(count) if since == repr(thread.state_since) and count.isdigit() else 0
            if sent >= care.MAX_REMINDERS or now < thread.state_since + (sent + 1) * self.remind_after_s:
                continue
            try:
                await self._remind(thread, key, stored[0] if stored else None, sent + 1, fence)
            except LeaseLost:
                self.fence = None
                return

    async def _remind(self, thread: AlertThread, key: str, expected: str | None, number: int, fence: object) -> None:
        alert = Alert.model_validate(thread.alert)
        target = parse_target(thread.target)
        reminder = alert.model_copy(update={"reminder": number,
                                            "oncall": self.dispatcher.router.oncall(alert, target)})
        change = Change(key, expected, f"{thread.state_since!r}|{number}", self.clock())
        if await self.dispatcher.observe([change], fence=fence, alert=reminder,  # type: ignore[arg-type]
                                         targets=[(thread.target, False)]):
            self.sent += 1
            log.info("reminder %d for %s in %s", number, alert.name, thread.target)
