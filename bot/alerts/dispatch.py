"""The alert outbox worker: one thread per alert and target, paced, retried, never dropped or doubled.

Webhooks and the poller only write to the store (`submit`, `observe`); this worker turns stored
deliveries into thread roots, root updates and replies (bot/alerts/threads.py) through whichever
platform a target is on, so Slack or Teams outages delay alerts instead of losing them, and
pending deliveries resume after a restart.

Several replicas share one outbox. A leased row carries a token that every update checks, so a
worker that lost its lease (it stalled, or another took the row over) can neither mark nor
re-post it; leases are short (15 s) and renewed while a delivery runs, so a dead replica's rows
move on within seconds while a slow attempt keeps its own. Channels are worked in parallel, so one
slow channel does not hold up the rest of a batch; pacing per channel is kept in the store and holds
across replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.alerts.delivery import DeliveryError
from bot.ports import ThreadPoster
from bot.alerts.model import Alert, AlertSource, AlertView
from bot.alerts.routes import Router
from bot.alerts.threads import AlertThreads
from bot.background import BackgroundLoop
from bot.handler import ConversationHandler
from bot.models import Membership, Platform, Reply
from bot.store import is_transient
from bot.store.base import LEASE_S, AlertStore, Change, Delivery, Fence
from bot.targets import ChannelTarget, parse_target

log = logging.getLogger(__name__)

Enricher = Callable[[Alert], Awaitable[Alert]]
BATCH = 50
ANSWER = "answer"  # outbox rows that carry an answer instead of an alert


class AlertDispatcher(BackgroundLoop):
    def __init__(self, *, alerts: AlertStore, handler: ConversationHandler, router: Router,
                 sinks: dict[Platform, ThreadPoster], enrich: Enricher | None = None, pace_s: float = 1.0,
                 storm_threshold: int = 10, max_attempts: int = 15, backoff_base_s: float = 2.0,
                 backoff_max_s: float = 300.0) -> None:
        self.alerts = alerts
        self.handler = handler
        self.router = router
        self.sinks = sinks
        self.enrich = enrich
        self.pace_s = pace_s
        self.threads = AlertThreads(alerts=alerts, handler=handler, sinks=sinks, storm_threshold=storm_threshold)
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._wake = asyncio.Event()
        self._in_flight: dict[int, Delivery] = {}
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

    async def enqueue_answer(self, target: ChannelTarget, ref: dict[str, Any], reply: Reply) -> None:
        """An answer the platform would not take when it was ready (an outage past the SDK's retries):
        into the outbox, retried with backoff honouring Retry-After, resumed after a restart."""
        payload = {"kind": ANSWER, "ref": ref, "reply": reply.model_dump(mode="json")}
        await self.alerts.enqueue(f"{ANSWER}:{reply.request_id}", payload, [(str(target), False)])
        self._wake.set()

    async def observe(self, changes: list[Change], *, fence: Fence, alert: Alert | None = None,
                      targets: list[tuple[str, bool]] | None = None) -> bool:
        """The poller's intake: its observations and the alert's deliveries in one transaction, so a
        crash can neither lose a change it recorded nor post one twice. False: someone else changed
        one of the keys first (nothing written). `targets` replaces the routes (rollout threads go to
        HEALTHBOT_DEPLOY_CHANNELS)."""
        if targets is None:
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
                due = await self.alerts.lease_due(BATCH)
                by_target: dict[str, list[Delivery]] = {}
                for delivery in due:
                    by_target.setdefault(delivery.target, []).append(delivery)
                await asyncio.gather(*(self._deliver_in_order(rows) for rows in by_target.values()))
                self.last_counts = await self.alerts.counts()
                if due:
                    continue
                next_at = await self.alerts.next_due_at()
                wait = 30.0 if next_at is None else max(0.0, min(30.0, next_at - time.time()))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the worker must outlive any single bad delivery, and a store outage
                if is_transient(exc):
                    log.warning("alert worker: store unavailable (%s: %s); trying again", type(exc).__name__, str(exc)[:200])
                else:
                    log.exception("alert worker iteration failed")
                await asyncio.sleep(1.0)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until nothing is pending (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while (await self.alerts.counts())["pending"] and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.02)

    async def _deliver_in_order(self, deliveries: list[Delivery]) -> None:
        """One channel's deliveries, one after the other (its pace), each under a renewed lease."""
        for delivery in deliveries:
            heartbeat = asyncio.create_task(self._keep_lease(delivery))
            self._in_flight[delivery.id] = delivery
            try:
                await self._deliver(delivery)
            except Exception as exc:  # a store error: the lease runs out and the row is tried again
                if not is_transient(exc):
                    log.exception("alert delivery %s to %s failed", delivery.alert_key, delivery.target)
            finally:
                heartbeat.cancel()
                self._in_flight.pop(delivery.id, None)

    async def stop(self) -> None:
        """Shutdown: stop working and hand the rows in flight back at once (another replica, or the
        next start, takes them without waiting for their leases to run out)."""
        in_flight = list(self._in_flight.values())
        await super().stop()
        for delivery in in_flight:
            with contextlib.suppress(Exception):
                await self.alerts.postpone(delivery, time.time())

    async def _keep_lease(self, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            if not await self.alerts.renew(delivery):
                log.warning("alert %s to %s: lease taken over by another worker", delivery.alert_key, delivery.target)
                return

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            target = parse_target(delivery.target)
        except ValueError as exc:
            await self.alerts.failed(delivery, str(exc))
            return
        sink = self.sinks.get(target.platform)
        if sink is None:
            await self.alerts.failed(delivery, f"{target.platform.value} is not configured in healthbot")
            return
        answer = delivery.alert.get("kind") == ANSWER
        paced = self.pace_s > 0 and not answer  # Slack allows ~1 message per second per channel: pace, never drop
        holding: asyncio.Task[None] | None = None
        if paced:
            wait = await self.alerts.take_post_slot(delivery.target, self.pace_s)
            if wait > 0:
                await self.alerts.postpone(delivery, time.time() + wait)
                return
            holding = asyncio.create_task(self._hold_slot(delivery.target))
        try:
            await self._post(delivery, sink, target, answer)
        finally:
            if holding is not None:
                holding.cancel()
                await self.alerts.release_post_slot(delivery.target, self.pace_s)

    async def _hold_slot(self, target: str) -> None:
        """Keep the channel's slot while its post is in flight, however long that takes."""
        while True:
            await asyncio.sleep(LEASE_S / 3)
            try:
                await self.alerts.hold_post_slot(target, self.pace_s)
            except Exception as exc:  # the store is away: the hold runs out, as a crashed poster's would
                log.warning("alert pacing: could not keep %s's slot: %s", target, type(exc).__name__)

    async def _post(self, delivery: Delivery, sink: ThreadPoster, target: ChannelTarget, answer: bool) -> None:
        if not await self.alerts.renew(delivery):
            return  # taken over while this worker waited: the new holder delivers it
        try:
            if answer:
                await sink.post_answer(target.channel, delivery.alert["ref"], Reply.model_validate(delivery.alert["reply"]))
            else:
                alert = Alert.model_validate(delivery.alert)
                if self.enrich is not None and alert.source == AlertSource.JOB:
                    alert = await self.enrich(alert)
                await self.threads.apply(sink, target, alert, delivery.investigate)
        except DeliveryError as exc:
            if exc.permanent or delivery.attempts + 1 >= self.max_attempts:
                log.error("%s to %s failed for good: %s", delivery.alert_key, delivery.target, exc.reason)
                await self.alerts.failed(delivery, exc.reason)
                return
            await self._retry(delivery, exc.reason, exc.retry_after)
            return
        except Exception as exc:  # an outage we have no words for yet: retry it
            log.warning("%s to %s: %s, will retry", delivery.alert_key, delivery.target, exc)
            await self._retry(delivery, f"{type(exc).__name__}: {exc}", None)
            return
        if not await self.alerts.delivered(delivery):
            log.warning("%s to %s was delivered after its lease was taken over", delivery.alert_key, delivery.target)

    async def _retry(self, delivery: Delivery, reason: str, retry_after: float | None) -> None:
        delay = retry_after or min(self.backoff_max_s, self.backoff_base_s * 2 ** delivery.attempts) * random.uniform(0.5, 1.0)
        await self.alerts.retry_later(delivery, reason, time.time() + delay)

    # -- buttons (the adapters call these) ---------------------------------------------------

    async def acknowledge(self, target: ChannelTarget, alert_key: str, user: str) -> bool:
        return await self.threads.acknowledge(target, alert_key, user)

    async def investigate_key(self, target: ChannelTarget, alert_key: str, user_id: str,
                              membership: Membership = Membership.UNVERIFIED, email: str = "") -> bool:
        return await self.threads.investigate_key(target, alert_key, user_id, membership, email)

    async def snooze(self, target: ChannelTarget, alert_key: str, user: str, choice: str) -> AlertView | None:
        return await self.threads.snooze(target, alert_key, user, choice)

    async def view_for(self, target: ChannelTarget, alert_key: str) -> AlertView | None:
        return await self.threads.view_for(target, alert_key)

    async def status(self) -> dict[str, Any]:
        counts = await self.alerts.counts()
        self.last_counts = counts
        return {**counts, "recent_failures": await self.alerts.recent_failures()}
