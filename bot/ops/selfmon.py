"""Self-monitoring: the Health Monitor's two alert rules, evaluated on the bot's own request log.

Every minute while `healthbot serve` runs: error rate over 10 % in the last hour, p95 latency over
10 s in the last hour. A breach goes through the same alert path and channels as Databricks
alerts (its own thread), and is resolved in that thread when it clears: one post per transition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.alerts.dispatch import AlertDispatcher
from bot.alerts.alert_charts import hourly_chart
from bot.alerts.model import Alert, AlertSource
from bot.background import BackgroundLoop
from bot.ops.stats import percentile
from bot.store import Store

log = logging.getLogger(__name__)

WINDOW_S = 3600.0


@dataclass(frozen=True)
class Thresholds:
    error_rate: float = 0.10
    p95_latency_ms: float = 10_000.0
    min_requests: int = 5  # fewer requests than this in an hour say nothing about a rate


class SelfMonitor(BackgroundLoop):
    def __init__(self, *, store: Store, dispatcher: AlertDispatcher, thresholds: Thresholds | None = None,
                 every_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.thresholds = thresholds or Thresholds()
        self.every_s = every_s
        self.clock = clock
        self._last: dict[str, str] = {}

    async def evaluate(self) -> list[Alert]:
        """Check both rules now; returns the alerts submitted (only on a change of state)."""
        rows = [r for r in await self.store.requests_since(self.clock() - WINDOW_S) if r.ts <= self.clock()]
        submitted = []
        enough = len(rows) >= self.thresholds.min_requests
        error_rate = sum(1 for r in rows if r.failed) / len(rows) if rows else 0.0
        p95 = percentile([r.latency_ms for r in rows], 0.95) or 0.0
        checks = [
            ("error_rate", "healthbot: High Error Rate", enough and error_rate > self.thresholds.error_rate,
             f"{error_rate:.1%}", f"{self.thresholds.error_rate:.0%}", "performance"),
            ("p95_latency", "healthbot: High Latency", enough and p95 > self.thresholds.p95_latency_ms,
             f"{p95 / 1000:.1f} s", f"{self.thresholds.p95_latency_ms / 1000:.0f} s", "performance"),
        ]
        for rule, name, breached, value, threshold, domain in checks:
            state = "TRIGGERED" if breached else "OK"
            previous = self._last[rule] if rule in self._last else await self._stored_state(rule)
            if state == previous or (previous is None and state == "OK"):
                self._last[rule] = state
                continue
            day = await self.store.requests_since(self.clock() - 86400)
            chart = hourly_chart(f"{name}: hourly, the last 24 h", day,
                                 self.thresholds.error_rate if rule == "error_rate" else self.thresholds.p95_latency_ms / 1000,
                                 rate=rule == "error_rate", now=self.clock())
            alert = Alert(source=AlertSource.HEALTHBOT, key=f"healthbot:{rule}", name=name, state=state,
                          severity="high" if breached else "info", domain=domain, value=value, operator=">",
                          threshold=threshold, description=f"Over the last hour: {len(rows)} requests on the bot's "
                                                           f"own request log.", chart=chart or {})
            await self.dispatcher.submit(alert)
            submitted.append(alert)
            self._last[rule] = state
        return submitted

    async def _stored_state(self, rule: str) -> str | None:
        """After a restart: the state of the rule's thread, so a breach still open is resolved later."""
        for target in self.dispatcher.router.all_targets:
            thread = await self.dispatcher.alerts.thread(f"healthbot:{rule}", str(target))
            if thread is not None:
                return thread.state
        return None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.evaluate()
            except Exception:
                log.exception("self-monitoring evaluation failed")
