"""`GET /metrics`: Prometheus text format from one registry per app (no global state).

Message counters and latency histograms are fed by the handler's observer hook; alert figures are
read from the store at scrape time, so they are right whichever replica delivered the alerts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bot.ops.logs import outcome_of
from bot.store.base import RequestLogRow

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class AlertCollector(Collector):
    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Any]:
        counts = self.dispatcher.last_counts  # collectors are synchronous: the worker keeps these fresh
        received = CounterMetricFamily("healthbot_alerts_received", "Alert webhooks accepted by this process")
        received.add_metric([], self.dispatcher.received)
        yield received
        posted = CounterMetricFamily("healthbot_alert_deliveries", "Alert deliveries by final status", labels=["status"])
        posted.add_metric(["delivered"], counts["delivered"])
        posted.add_metric(["failed"], counts["failed"])
        yield posted
        pending = GaugeMetricFamily("healthbot_alert_deliveries_pending", "Alert deliveries waiting in the outbox")
        pending.add_metric([], counts["pending"])
        yield pending


class PullCollector(Collector):
    """The alert poller's figures per source (HEALTHBOT_ALERT_PULL)."""

    def __init__(self, puller: Any) -> None:
        self.puller = puller

    def collect(self) -> Iterator[Any]:
        polls = CounterMetricFamily("healthbot_alert_polls", "Alert polls of the workspace", labels=["source"])
        errors = CounterMetricFamily("healthbot_alert_poll_errors", "Alert polls that failed", labels=["source"])
        found = CounterMetricFamily("healthbot_alerts_pulled", "Alert changes found by polling", labels=["source"])
        age = GaugeMetricFamily("healthbot_alert_poll_age_seconds", "Seconds since the last successful poll",
                                labels=["source"])
        now = self.puller.clock()
        for name, status in self.puller.status.items():
            polls.add_metric([name], status.polls)
            errors.add_metric([name], status.errors)
            found.add_metric([name], status.found)
            if status.last_success is not None:
                age.add_metric([name], now - status.last_success)
        leader = GaugeMetricFamily("healthbot_alert_poll_leader", "1 while this replica holds the poll lease")
        leader.add_metric([], 1 if self.puller.fence is not None else 0)
        yield from (polls, errors, found, age, leader)


class TraceCollector(Collector):
    """Trace export (MLFLOW_TRACKING_URI): what was exported, dropped because the queue was full,
    failed in the exporter, and what is waiting."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    def collect(self) -> Iterator[Any]:
        for name, text, value in (
                ("healthbot_traces_exported", "Traces exported to MLflow", self.tracer.exported),
                ("healthbot_traces_dropped", "Traces dropped because the export queue was full", self.tracer.dropped),
                ("healthbot_traces_failed", "Traces the exporter could not write", self.tracer.failed)):
            family = CounterMetricFamily(name, text)
            family.add_metric([], value)
            yield family
        waiting = GaugeMetricFamily("healthbot_traces_waiting", "Traces queued for export")
        waiting.add_metric([], self.tracer.waiting)
        yield waiting


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.messages = Counter("healthbot_messages", "Messages handled", ["platform", "outcome"], registry=self.registry)
        self.latency = Histogram("healthbot_answer_latency_seconds", "Time from message to answer", ["platform"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.endpoint_latency = Histogram("healthbot_endpoint_latency_seconds", "Time the answer engine took",
                                          buckets=LATENCY_BUCKETS, registry=self.registry)
        self.endpoint_errors = Counter("healthbot_endpoint_errors", "Answer engine failures", ["kind"], registry=self.registry)
        self.cache_hits = Counter("healthbot_cache_hits", "Quick questions answered from the cache", registry=self.registry)
        self.rate_limited = Counter("healthbot_rate_limited", "Messages refused by the per-user/global limits",
                                    registry=self.registry)
        self.refused = Counter("healthbot_access_refused", "Askers refused or answers withheld by the access rules",
                               ["platform", "reason"], registry=self.registry)

    def observe(self, row: RequestLogRow) -> None:
        outcome = outcome_of(row)
        self.messages.labels(row.platform, outcome).inc()
        self.latency.labels(row.platform).observe(row.latency_ms / 1000)
        if row.endpoint_latency_ms is not None and not row.error:
            self.endpoint_latency.observe(row.endpoint_latency_ms / 1000)
        if outcome == "error":
            self.endpoint_errors.labels(row.error).inc()
        elif outcome == "cached":
            self.cache_hits.inc()
        elif outcome == "throttled":
            self.rate_limited.inc()
        elif outcome == "refused":
            self.refused.labels(row.platform, str(row.error).removeprefix("refused:")).inc()

    def watch_alerts(self, dispatcher: Any) -> None:
        self.registry.register(AlertCollector(dispatcher))

    def watch_tracer(self, tracer: Any) -> None:
        if tracer.enabled:
            self.registry.register(TraceCollector(tracer))

    def watch_puller(self, puller: Any) -> None:
        self.registry.register(PullCollector(puller))

    async def handle(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
