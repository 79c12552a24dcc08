"""The rollout watcher: one per fleet (the `deploy-watch` lease, as the alert poller has its own),
polling the serving endpoint every HEALTHBOT_DEPLOY_POLL_S and announcing config updates.

Its cursor (what it last saw, bot.deploy.rollout.Seen) and the comparisons it still owes are stored
observations, written in the same transaction as the rollout alert's outbox rows: a restart or a
takeover neither re-posts nor misses an update, and the first look at an endpoint posts nothing. The
alert outbox then delivers with its usual exactly-once, pacing and retry rules. Each poll also hands
the config to the serving client, so answers are labelled with the version that served them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from agent.endpoint_config import EndpointView
from bot.alerts.dispatch import AlertDispatcher
from bot.background import LeasedPoller
from bot.deploy import rollout
from bot.deploy.workspace_calls import DeployCalls, DeployError
from bot.ops.health import Check
from bot.ops.stats import by_version, figures_of
from bot.store.base import Change, Fence, LeaseLost, Store
from bot.targets import ChannelTarget

log = logging.getLogger(__name__)

LEASE_NAME = "deploy-watch"
MAX_BACKOFF_S = 900.0
OLD_WINDOW_S = 7 * 86400.0  # the version before is judged on its answers of the week before the rollout


class DeployWatcher(LeasedPoller):
    what = "deployment watch"

    def __init__(self, *, calls: DeployCalls, dispatcher: AlertDispatcher, store: Store, targets: list[ChannelTarget],
                 interval_s: float, engine: Any = None, holder: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.calls, self.dispatcher, self.store, self.engine = calls, dispatcher, store, engine
        self.targets = [(str(target), False) for target in targets]
        self.interval_s, self.clock = interval_s, clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.fence: Fence | None = None
        self.leases = dispatcher.alerts
        self.polls = self.errors = self.consecutive_errors = 0
        self.last_error, self.last_success = "", 0.0
        self.last_view: EndpointView | None = None
        self._retry_at = 0.0
        self.seen_key = f"deploy:{calls.endpoint_name}"
        self.compare_key = f"deploy-compare:{calls.endpoint_name}"

    async def poll_once(self) -> None:
        fence = await self.dispatcher.alerts.take_lease(LEASE_NAME, self.holder, self.interval_s * 1.5)
        if fence is None:
            self.fence = None
            return
        if fence != self.fence:
            log.info("holding the deployment watch lease (token %d): watching %s", fence.token, self.calls.endpoint_name)
        self.fence = fence
        if self._retry_at > self.clock():
            return
        self.polls += 1
        try:
            view = await self.calls.endpoint()
        except DeployError as exc:
            self._failed(exc)
            return
        self.consecutive_errors, self.last_error, self.last_success, self.last_view = 0, "", self.clock(), view
        remember = getattr(self.engine, "remember_config", None)
        if remember is not None:
            remember(view)
        try:
            await self._announce(view, fence)
            await self._compare(fence)
        except LeaseLost:
            log.info("deployment watch lease lost during a poll: nothing written")
            self.fence = None

    async def _announce(self, view: EndpointView, fence: Fence) -> None:
        stored = (await self.dispatcher.alerts.observed(self.seen_key)).get(self.seen_key)
        before_text = stored[0] if stored else None
        before = rollout.Seen.loads(before_text)
        now = self.clock()
        seen, alert = rollout.rollout_change(self.calls.endpoint_name, before, view, now)
        if seen.dumps() == before_text:
            return
        changes = [Change(self.seen_key, before_text, seen.dumps(), now)]
        if alert is not None and alert.state == "SERVING" and before is not None and before.version and seen.version \
                and before.version != seen.version:
            owed = rollout.Comparison(old=before.version, new=seen.version, since=now, key=alert.key)
            stored_compare = (await self.dispatcher.alerts.observed(self.compare_key)).get(self.compare_key)
            changes.append(Change(self.compare_key, stored_compare[0] if stored_compare else None, owed.dumps(), now))
        if alert is not None:
            log.info("rollout of %s: %s is %s", self.calls.endpoint_name, alert.name, alert.state)
        await self.dispatcher.observe(changes, fence=fence, alert=alert, targets=self.targets if alert else None)

    async def _compare(self, fence: Fence) -> None:
        """The before / after reply, once the new version has answered enough (or long enough)."""
        stored = (await self.dispatcher.alerts.observed(self.compare_key)).get(self.compare_key)
        owed = rollout.Comparison.loads(stored[0] if stored else None)
        if owed is None or stored is None:
            return
        now = self.clock()
        rows = await self.store.requests_since(owed.since - OLD_WINDOW_S)
        votes = dict(await self.store.feedback_since(owed.since - OLD_WINDOW_S))
        new = figures_of(owed.new, [r for r in rows if r.served_version == owed.new and r.ts >= owed.since], votes)
        if not rollout.due(new, owed.since, now):
            return
        old = by_version([r for r in rows if r.ts < owed.since], votes).get(owed.old) or figures_of(owed.old, [], votes)
        reasons = rollout.verdict(old, new)
        alert = rollout.rollout_alert_note(self.calls.endpoint_name, owed, rollout.comparison_markdown(old, new, reasons),
                                           rollback_to=owed.old if reasons else "",
                                           chart=rollout.comparison_chart(old, new))
        await self.dispatcher.observe([Change(self.compare_key, stored[0], "done", now)], fence=fence, alert=alert,
                                      targets=self.targets)

    def _failed(self, exc: DeployError) -> None:
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = str(exc)
        delay = min(MAX_BACKOFF_S, self.interval_s * 2 ** (self.consecutive_errors - 1))
        self._retry_at = self.clock() + delay
        log.warning("deployment watch: %s; next try in %.0f s", exc, delay)

    async def check(self) -> Check:
        """For /health: degraded while the endpoint cannot be read, naming the permission."""
        if self.fence is None:
            return Check(True, "standby: another replica watches the endpoint")
        if self.last_error:
            return Check(False, self.last_error)
        if not self.last_success:
            return Check(True, "first look under way")
        view = self.last_view
        serving = f"serving {view.config.split()}" if view is not None else ""
        return Check(True, f"{self.calls.endpoint_name} {serving}, looked {self.clock() - self.last_success:.0f} s ago")
