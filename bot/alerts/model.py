"""The normalized alert every webhook format becomes, and what an alert thread shows."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class AlertSource(StrEnum):
    SQL_ALERT = "sql_alert"  # Databricks SQL alerts (current Alerts API)
    SQL_ALERT_LEGACY = "sql_alert_legacy"
    JOB = "job"  # Databricks Jobs notifications
    GENERIC = "generic"  # the documented generic JSON shape
    HEALTHBOT = "healthbot"  # the bot's own self-monitoring rules
    DEPLOYMENT = "deployment"  # a config update of the served agent (bot/deploy): a rollout thread
    DIGEST = "digest"  # the weekly digest (bot/alerts/digest.py): a root line, the detail in its thread


# States: SQL alerts use TRIGGERED / OK / UNKNOWN / ERROR; job runs started / succeeded / failed / warning.
# Rollouts: IN_PROGRESS, then SERVING, UPDATE_FAILED or UPDATE_CANCELED.
STATE_MARKS = {"TRIGGERED": "🔴", "ERROR": "🔴", "failed": "🔴", "warning": "🟠", "OK": "✅", "succeeded": "✅",
               "started": "▶️", "UNKNOWN": "⚪", "IN_PROGRESS": "🚀", "SERVING": "✅", "UPDATE_FAILED": "🔴",
               "UPDATE_CANCELED": "⚪"}
CLEAR_STATES = frozenset({"OK", "succeeded", "SERVING"})


class Alert(BaseModel):
    source: AlertSource
    key: str  # one thread per key and target: alert id, or job id + run id
    name: str
    state: str
    severity: str = "medium"
    domain: str = ""
    value: str = ""
    operator: str = ""
    threshold: str = ""
    query: str = ""
    description: str = ""
    links: dict[str, str] = Field(default_factory=dict)
    workspace: str = ""
    detail: str = ""  # enrichment: the run's state message, failed tasks…
    run_id: str = ""  # job alerts: the run to enrich from (pulled job threads are keyed by job, not run)
    note: str = ""  # rollouts: a comparison to post in the thread instead of a state change (markdown)
    rollback_to: str = ""  # with a note: the version its Roll back button offers
    reminder: int = 0  # a reminder (1..3) to post in the thread instead of a state change
    oncall: list[str] = Field(default_factory=list)  # who a reminder names
    snoozable: list[tuple[str, str, str]] = Field(default_factory=list)  # a digest's open alerts: key, name, target
    chart: dict[str, Any] = Field(default_factory=dict)  # its own metric's chart (bot/alerts/alert_charts.py)
    time: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def mark(self) -> str:
        return STATE_MARKS.get(self.state, "🔔")

    @property
    def clear(self) -> bool:
        return self.state in CLEAR_STATES

    @property
    def rollout(self) -> bool:
        """A served agent's config update (a rollout thread), not an alert about the platform."""
        return self.source is AlertSource.DEPLOYMENT

    @property
    def investigable(self) -> bool:
        """Investigate / Acknowledge make sense: an alert about the platform, not healthbot's own or a rollout."""
        return self.source not in (AlertSource.HEALTHBOT, AlertSource.DEPLOYMENT)

    @property
    def snoozable_now(self) -> bool:
        return not self.rollout and not self.clear

    def context_text(self) -> str:
        """The alert as plain words for the endpoint: a thread's session starts with it."""
        lines = [f"Alert context: {self.source.value} alert \"{self.name}\" is {self.state} (severity {self.severity}"
                 + (f", domain {self.domain}" if self.domain else "") + ")."]
        if self.value or self.threshold:
            lines.append(f"Value {self.value or '?'} {self.operator or 'vs'} threshold {self.threshold or '?'}.")
        if self.description:
            lines.append(f"Description: {self.description}")
        if self.query:
            lines.append(f"Query: {self.query}")
        if self.detail:
            lines.append(f"Details: {self.detail}")
        for label, url in self.links.items():
            lines.append(f"{label}: {url}")
        return "\n".join(lines)


class AlertView(BaseModel):
    """What a thread root shows; each adapter renders it (untrusted text stays plain text)."""

    alert: Alert
    count: int = 1
    first_seen: datetime
    last_seen: datetime
    acknowledged_by: str = ""
    resolved_after_s: float | None = None
    snoozed: str = ""  # "Snoozed by ana until 2026-12-03 14:00 UTC"
    flapping: bool = False
