"""The alert outbox worker: one thread per alert and target, paced, retried, never dropped.

Webhooks only write to the store (`submit`); this worker turns stored deliveries into thread roots,
root updates and replies through whichever platform a target is on, so Slack or Teams outages
delay alerts instead of losing them, and pending deliveries resume after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from agent.base import ChatMessage
from bot.alerts.delivery import AlertSink, DeliveryError
from bot.alerts.model import Alert, AlertSource, AlertView
from bot.alerts.routes import Router
from bot.background import BackgroundLoop
from bot.handler import ConversationHandler
from bot.models import Incoming, Platform
from bot.store.base import AlertStore, AlertThread, Change, Delivery, Fence
from bot.targets import ChannelTarget, parse_target

log = logging.getLogger(__name__)

Enricher = Callable[[Alert], Awaitable[Alert]]
DIGEST_KEY = "digest"
STORM_WINDOW_S = 60.0


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class AlertDispatcher(BackgroundLoop):
    def __init__(self, *, alerts: AlertStore, handler: ConversationHandler, router: Router,
                 sinks: dict[Platform, AlertSink], enrich: Enricher | None = None, pace_s: float = 1.0,
                 storm_threshold: int = 10, max_attempts: int = 15, backoff_base_s: float = 2.0,
                 backoff_max_s: float = 300.0) -> None:
        self.alerts = alerts
        self.handler = handler
        self.router = router
        self.sinks = sinks
        self.enrich = enrich
        self.pace_s = pace_s
        self.storm_threshold = storm_threshold
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._wake = asyncio.Event()
        self._last_post: dict[str, float] = {}
        self.received = 0
        self.last_counts: dict[str, int] = {"pending": 0, "delivered": 0, "failed": 0}  # for /metrics scrapes

    # -- intake -----------------------------------------------------------------------------

    def _targets(self, alert: Alert) -> list[tuple[str, bool]]:
        route = self.router.route(alert)
        if not route.targets:
            log.warning("alert %r matched no route and HEALTHBOT_ALERT_CHANNELS is empty: not delivered", alert.name)
        return [(str(target), route.investigate) for target in route.targets]

    async def submit(self, alert: Alert) -> int:
        """Store the alert and one delivery per routed target; returns how many targets.

        A SQL alert's state is recorded as observed too, so the poller (HEALTHBOT_ALERT_PULL) does not
        post the same state again when it lists the alert."""
        targets = self._targets(alert)
        if targets:
            observed = alert.state if alert.source == AlertSource.SQL_ALERT else None
            await self.alerts.enqueue(alert.key, alert.model_dump(mode="json"), targets, observed=observed)
            self._wake.set()
        self.received += 1
        return len(targets)

    async def observe(self, changes: list[Change], *, fence: Fence, alert: Alert | None = None) -> bool:
        """The poller's intake: its observations and the alert's deliveries in one transaction, so a
        crash can neither lose a change it recorded nor post one twice. False: someone else changed
        one of the keys first (nothing written)."""
        targets = self._targets(alert) if alert is not None else []
        outbox = (alert.key, alert.model_dump(mode="json"), targets) if alert is not None and targets else None
        if not await self.alerts.observe(changes, fence=fence, outbox=outbox):
            return False
        if alert is not None:
            self.received += 1
        if outbox is not None:
            self._wake.set()
        return True

    # -- worker -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                self._wake.clear()  # before looking: a submit from here on wakes the wait below
                due = await self.alerts.lease_due()
                for delivery in due:
                    await self._deliver(delivery)
                self.last_counts = await self.alerts.counts()
                if due:
                    continue
                next_at = await self.alerts.next_due_at()
                wait = 30.0 if next_at is None else max(0.0, min(30.0, next_at - time.time()))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must outlive any single bad delivery
                log.exception("alert worker iteration failed")
                await asyncio.sleep(1.0)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until nothing is pending (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while (await self.alerts.counts())["pending"] and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.02)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            target = parse_target(delivery.target)
        except ValueError as exc:
            await self.alerts.failed(delivery.id, str(exc))
            return
        sink = self.sinks.get(target.platform)
        if sink is None:
            await self.alerts.failed(delivery.id, f"{target.platform.value} is not configured in healthbot")
            return
        wait = self._last_post.get(delivery.target, 0.0) + self.pace_s - time.monotonic()
        if wait > 0:  # Slack allows ~1 message per second per channel: pace, never drop
            await self.alerts.postpone(delivery.id, time.time() + wait)
            return
        self._last_post[delivery.target] = time.monotonic()
        alert = Alert.model_validate(delivery.alert)
        try:
            if self.enrich is not None and alert.source == AlertSource.JOB:
                alert = await self.enrich(alert)
            await self._apply(sink, target, alert, delivery.investigate)
        except DeliveryError as exc:
            if exc.permanent or delivery.attempts + 1 >= self.max_attempts:
                log.error("alert %s to %s failed for good: %s", alert.key, delivery.target, exc.reason)
                await self.alerts.failed(delivery.id, exc.reason)
                return
            await self._retry(delivery, exc.reason, exc.retry_after)
            return
        except Exception as exc:  # an outage we have no words for yet: retry it
            log.warning("alert %s to %s: %s, will retry", alert.key, delivery.target, exc)
            await self._retry(delivery, f"{type(exc).__name__}: {exc}", None)
            return
        await self.alerts.delivered(delivery.id)

    async def _retry(self, delivery: Delivery, reason: str, retry_after: float | None) -> None:
        delay = retry_after or min(self.backoff_max_s, self.backoff_base_s * 2 ** delivery.attempts) * random.uniform(0.5, 1.0)
        await self.alerts.retry_later(delivery.id, reason, time.time() + delay)

    # -- one alert, one thread --------------------------------------------------------------

    async def _apply(self, sink: AlertSink, target: ChannelTarget, alert: Alert, investigate: bool) -> None:
        now = time.time()
        thread = await self.alerts.thread(alert.key, str(target))
        if thread is None:
            await self._open(sink, target, alert, investigate, now)
            return
        thread.last_seen = now
        if alert.state == thread.state:
            thread.count += 1  # the same state again: no new message, the root shows count and time
        else:
            previous, since = thread.state, thread.state_since
            thread.state, thread.state_since = alert.state, now
            await sink.reply(target.channel, thread.thread_ref, self._transition(alert, previous, now - since))
        thread.alert = alert.model_dump(mode="json")
        if not thread.digest:
            await sink.update_root(target.channel, thread.thread_ref, self._view(thread))
        await self.alerts.save_thread(thread)

    async def _open(self, sink: AlertSink, target: ChannelTarget, alert: Alert, investigate: bool, now: float) -> None:
        if await self.alerts.new_roots_since(str(target), now - STORM_WINDOW_S) >= self.storm_threshold:
            await self._into_digest(sink, target, alert, now)
            return
        thread = AlertThread(alert.key, str(target), {}, alert.state, now, now, now, 1, "", False, alert.model_dump(mode="json"))
        thread.thread_ref = await sink.post_root(target.channel, self._view(thread))
        await self.alerts.save_thread(thread)
        key = sink.thread_key(target.channel, thread.thread_ref)
        session = await self.handler.store.session_for(key)
        await self.handler.store.append_message(session.session_id, ChatMessage("system", alert.context_text()))
        if investigate:
            await self.investigate(sink, target, thread, user_id="healthbot-alerts")

    async def _into_digest(self, sink: AlertSink, target: ChannelTarget, alert: Alert, now: float) -> None:
        """A storm: one digest thread per channel and minute instead of a root per alert."""
        digest = await self.alerts.thread(DIGEST_KEY, str(target))
        line = f"{alert.name}: {alert.state}"
        if digest is None or digest.first_seen < now - STORM_WINDOW_S:
            summary = Alert(source=AlertSource.HEALTHBOT, key=DIGEST_KEY, name="Alert storm: grouping new alerts",
                            state="TRIGGERED", severity="high", description=line)
            digest = AlertThread(DIGEST_KEY, str(target), {}, "TRIGGERED", now, now, now, 1, "", True,
                                 summary.model_dump(mode="json"))
            digest.thread_ref = await sink.post_root(target.channel, self._view(digest))
        else:
            digest.count += 1
            digest.last_seen = now
            summary = Alert.model_validate(digest.alert)
            summary.description = (summary.description + "\n" + line)[-2500:]
            digest.alert = summary.model_dump(mode="json")
            await sink.update_root(target.channel, digest.thread_ref, self._view(digest))
        await self.alerts.save_thread(digest)
        await self.alerts.save_thread(AlertThread(alert.key, str(target), digest.thread_ref, alert.state, now, now, now, 1, "",
                                            True, alert.model_dump(mode="json")))

    @staticmethod
    def _transition(alert: Alert, previous: str, seconds: float) -> str:
        minutes = max(1, round(seconds / 60))
        if alert.clear and alert.source == AlertSource.JOB and alert.run_id:
            return f"✅ {alert.name} recovered: {alert.description} (failing for {minutes} min)."
        if alert.clear:
            return f"✅ {alert.name} is {alert.state} (resolved after {minutes} min)."
        return f"🔔 {alert.name} is {alert.state} again (was {previous} for {minutes} min)."

    @staticmethod
    def _view(thread: AlertThread) -> AlertView:
        alert = Alert.model_validate(thread.alert)
        resolved = thread.last_seen - thread.first_seen if alert.clear else None
        return AlertView(alert=alert, count=thread.count, first_seen=_at(thread.first_seen), last_seen=_at(thread.last_seen),
                         acknowledged_by=thread.acknowledged_by, resolved_after_s=resolved)

    # -- buttons ----------------------------------------------------------------------------

    async def acknowledge(self, target: ChannelTarget, alert_key: str, user: str) -> bool:
        thread = await self.alerts.thread(alert_key, str(target))
        sink = self.sinks.get(target.platform)
        if thread is None or sink is None:
            return False
        thread.acknowledged_by = user
        await self.alerts.save_thread(thread)
        await sink.update_root(target.channel, thread.thread_ref, self._view(thread))
        return True

    async def investigate(self, sink: AlertSink, target: ChannelTarget, thread: AlertThread, *, user_id: str) -> None:
        alert = Alert.model_validate(thread.alert)
        question = f"Why did the alert \"{alert.name}\" fire, and what should we do about it?"
        message = Incoming(key=sink.thread_key(target.channel, thread.thread_ref), user_id=user_id, text=question,
                           event_id=f"investigate:{alert.key}:{target}:{time.time()}")
        await sink.ask_in_thread(target.channel, thread.thread_ref, message)

    async def investigate_key(self, target: ChannelTarget, alert_key: str, user_id: str) -> bool:
        thread = await self.alerts.thread(alert_key, str(target))
        sink = self.sinks.get(target.platform)
        if thread is None or sink is None:
            return False
        await self.investigate(sink, target, thread, user_id=user_id)
        return True

    async def view_for(self, target: ChannelTarget, alert_key: str) -> AlertView | None:
        thread = await self.alerts.thread(alert_key, str(target))
        return self._view(thread) if thread is not None else None

    async def status(self) -> dict[str, Any]:
        counts = await self.alerts.counts()
        self.last_counts = counts
        return {**counts, "recent_failures": await self.alerts.recent_failures()}
