"""The weekly digest's content: a period's alerts against the period before, job failure streaks,
healthbot's own figures, and the endpoint's answer to "Platform health overview" — from the store and
the engine, as markdown (Slack's markdown block; a Teams card renders the same).

A root line states the week at a glance; the detail goes in its thread, with Snooze on the noisiest
alerts that are still open in that channel. No alerts and no questions → a "quiet week" root line; the
Health Monitor's platform overview is in the thread either way ("quiet" is about healthbot's own view).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agent.base import AgentRequest, ChatMessage, Engine
from agent.errors import EngineError, ErrorKind
from bot.alerts import care
from bot.alerts.delivery import SNOOZE, Note, NoteButton
from bot.alerts.model import CLEAR_STATES, Alert, AlertSource
from bot.alerts.schedule import Period
from bot.handler import ConversationHandler, new_request_id
from bot.models import Incoming, Reply
from bot.ops.stats import compute
from bot.quick import QUICK_QUESTIONS
from bot.store.base import AlertThread, Store
from bot.targets import ChannelTarget, parse_target
from bot.text import inert

log = logging.getLogger(__name__)

OVERVIEW_TIMEOUT_S = 60.0
NOISIEST = 5


@dataclass(slots=True)
class Digest:
    summary: str  # the root: one line
    detail: str  # the thread: markdown
    snoozable: list[tuple[str, str, str]] = field(default_factory=list)  # (alert key, name, target) still open
    quiet: bool = False
    chart: dict[str, Any] = field(default_factory=dict)

    def notes(self, target: str) -> tuple[Note, Note | None]:
        """The root and the detail for one channel: Snooze buttons only for its own alerts."""
        if not self.detail:
            return Note(self.summary, summary=self.summary), None
        buttons = tuple(NoteButton(f"Snooze {name[:40]} 1 day", f"{SNOOZE}_1d", {"key": key})
                        for key, name, where in self.snoozable if where == target)[:NOISIEST]
        return Note(self.summary, summary=self.summary), Note(self.detail, buttons, summary="Digest details")


def _fired_per_day(threads: list[AlertThread], period: Period) -> dict[str, Any]:
    """Alerts fired per day of the period (one per thread and channel it opened in)."""
    days = max(1, round((period.end - period.start) / 86400))
    labels = [datetime.fromtimestamp(period.start + 86400 * i, timezone.utc).strftime("%a %d") for i in range(days)]
    counts = [0] * days
    for thread in threads:
        if period.start <= thread.first_seen < period.end:
            counts[min(days - 1, int((thread.first_seen - period.start) // 86400))] += 1
    return {"type": "bar", "title": f"Alerts fired per day, {period.label}", "x": labels,
            "series": [{"name": "alerts fired", "values": counts}], "unit": "alerts", "x_label": "day (UTC)"}


def _minutes(values: list[float]) -> str:
    return f"{statistics.median(values) / 60:.0f} min" if values else "—"


def _events(thread: AlertThread) -> int:
    """How often the alert notified: every delivery, repeats and state changes alike."""
    events = thread.care.get("events")
    return events if isinstance(events, int) else thread.count


def _alert(thread: AlertThread) -> Alert | None:
    try:
        return Alert.model_validate(thread.alert)
    except ValueError:
        return None


def _alert_section(now_threads: list[AlertThread], before: list[AlertThread], period: Period,
                   previous_start: float) -> tuple[list[str], list[tuple[str, str, str]], int, int]:
    fired = [t for t in now_threads if period.start <= t.first_seen < period.end]
    fired_before = [t for t in before if previous_start <= t.first_seen < period.start]
    resolved = [t for t in now_threads if t.state in CLEAR_STATES and period.start <= t.state_since < period.end]
    still_open = [t for t in now_threads if t.state in care.OPEN_STATES]
    acked = [t.care["acked_at"] - t.first_seen for t in fired if isinstance(t.care.get("acked_at"), (int, float))]
    lines = [f"**Alerts**: {len(fired)} fired (the period before: {len(fired_before)}), {len(resolved)} resolved, "
             f"{len(still_open)} still open; median time to acknowledge {_minutes(acked)}, "
             f"to resolve {_minutes([t.state_since - t.first_seen for t in resolved])}."]
    noisy = sorted((t for t in now_threads if t.last_seen >= period.start), key=lambda t: -_events(t))[:NOISIEST]
    snoozable = []
    if noisy:
        lines += ["", "| noisiest | times | now |", "|---|---|---|"]
        for thread in noisy:
            alert = _alert(thread)
            name = inert((alert.name if alert else thread.alert_key)[:80])
            lines.append(f"| {name} | {_events(thread)} | {thread.state} |")
            if thread.state in care.OPEN_STATES:
                snoozable.append((thread.alert_key, name, thread.target))
    streaks = [(t, _alert(t)) for t in still_open if t.alert_key.startswith("job:") and t.count >= 2]
    if streaks:
        lines += ["", "**Job failure streaks**: " + "; ".join(
            f"{inert(alert.name if alert else t.alert_key)} failed {t.count} times in a row" for t, alert in streaks)]
    return lines, snoozable, len(fired), len(still_open)


async def build_digest(store: Store, period: Period, *, target: ChannelTarget | None = None) -> Digest:
    """The digest from the store, without the overview (`with_overview` adds it). With a `target`, only
    that channel's alert threads, rollouts and questions count (DESIGN.md "Who may see what"): a digest
    never shows one channel what happened in another."""
    length = period.end - period.start
    previous_start = period.start - length
    threads = [t for t in await store.alerts.threads_seen_since(previous_start)
               if target is None or t.target == str(target)]
    now_threads = [t for t in threads if t.last_seen >= period.start or t.state in care.OPEN_STATES]
    alert_lines, snoozable, fired, still_open = _alert_section(now_threads, threads, period, previous_start)
    rows = [r for r in await store.requests_since(period.start) if r.ts < period.end and
            (target is None or (r.platform == target.platform.value and r.channel == target.channel))]
    asked = {r.request_id for r in rows}
    votes = [(rid, vote) for rid, vote in await store.feedback_since(period.start) if rid in asked]
    stats = compute(rows, votes, hours=max(1, round(length / 3600)), since=period.start)
    domains: Counter[str] = Counter()
    for day in stats.domains_per_day.values():
        domains.update(day)
    figures = [f"{stats.requests} questions",
               "p95 " + (f"{stats.p95_latency_ms / 1000:.1f} s" if stats.p95_latency_ms is not None else "—")]
    if stats.success_rate is not None:
        figures.append(f"error rate {1 - stats.success_rate:.1%}")
    confidences = [r.confidence for r in rows if r.confidence is not None]
    if confidences:
        figures.append(f"average confidence {sum(confidences) / len(confidences):.2f}")
    if stats.feedback_up_rate is not None:
        figures.append(f"👍 rate {stats.feedback_up_rate:.0%}")
    bot_lines = ["**healthbot**: " + ", ".join(figures)]
    if domains:
        bot_lines.append("Top domains: " + ", ".join(f"{d} {n}" for d, n in domains.most_common(3)) + ".")
    if stats.by_version:  # compute() already split the rows per served version
        bot_lines.append("Per served version: " + "; ".join(
            f"v{inert(v)}: {f.requests} answers, error rate {f.error_rate:.0%}" for v, f in stats.by_version.items()) + ".")
    if not fired and not still_open and not stats.requests:
        digest = Digest(summary=f"🌙 Quiet {period.label}: no alerts fired, none open, no questions asked.",
                        detail="", quiet=True, chart=_fired_per_day(threads, period))
    else:
        summary = (f"📊 healthbot digest, {period.label}: {fired} alerts fired, {still_open} still open, "
                   f"{stats.requests} questions answered.")
        digest = Digest(summary=summary, detail="\n".join(alert_lines + [""] + bot_lines)[:11_000],
                        snoozable=snoozable, chart=_fired_per_day(threads, period))
    return digest


async def channel_digest(store: Store, period: Period, target: str, overview: str) -> Digest:
    """What the scheduled and the posted digest send one channel: its own threads and figures, and the
    overview healthbot asked once for all of them."""
    return with_overview(await build_digest(store, period, target=parse_target(target)), overview)


async def digest_overview(engine: Engine, period: Period) -> str:
    """The scheduled digest's overview: asked by healthbot itself, for the channels it is configured for."""
    request = AgentRequest([ChatMessage("user", QUICK_QUESTIONS["health"])], user_id="healthbot-digest",
                           session_id=f"digest-{period.key}")
    try:
        answer = await asyncio.wait_for(engine.answer(request), OVERVIEW_TIMEOUT_S)
    except (asyncio.TimeoutError, EngineError) as exc:
        log.warning("the digest's overview question was not answered: %s", getattr(exc, "kind", type(exc).__name__))
        return "_(the Health Monitor did not answer this time)_"
    return answer.content


def digest_alert(period: Period, digest: Digest) -> Alert:
    """The digest as the outbox carries it: one thread per period and channel."""
    return Alert(source=AlertSource.DIGEST, key=f"digest:{period.key}", name=digest.summary, state="OK",
                 severity="info", note=digest.detail, description=digest.summary,
                 time=datetime.fromtimestamp(period.end, timezone.utc), snoozable=digest.snoozable, chart=digest.chart)


def digest_of(alert: Alert) -> Digest:
    return Digest(summary=alert.description, detail=alert.note, snoozable=list(alert.snoozable), quiet=not alert.note)


def with_overview(digest: Digest, overview: str) -> Digest:
    """The digest with the Health Monitor's overview (or the line that stands in for it) appended."""
    if not overview:
        return digest
    section = "**Platform health overview** (the Health Monitor's answer):\n\n" + overview[:4000]
    detail = f"{digest.detail}\n\n{section}" if digest.detail else section
    return Digest(summary=digest.summary, detail=detail[:11_000], snoozable=digest.snoozable, quiet=digest.quiet,
                  chart=digest.chart)


@dataclass(frozen=True, slots=True)
class OnDemand:
    """`/healthbot digest` for one person: the digest to post, or the reply that stands instead (a
    connect prompt in user mode); neither when the request was dropped (a redelivery, a flood)."""

    digest: Digest | None = None
    instead: Reply | None = None


async def digest_for(handler: ConversationHandler, asker: Incoming, period: Period) -> OnDemand:
    """The digest as `asker` may see it, posted where they asked: the channel's own threads and
    figures, and the overview asked as them through the same path as any question (their access
    rules, their token in user mode, their rate limit), so a withheld domain stays withheld here."""
    target = ChannelTarget(asker.platform, asker.key.channel)
    digest = await build_digest(handler.store, period, target=target)
    key = asker.key.model_copy(update={"thread": f"digest:{new_request_id()}"})  # its own session, never a thread's
    reply = await handler.handle(asker.model_copy(update={"key": key, "text": QUICK_QUESTIONS["health"], "event_id": ""}))
    if reply is None:
        return OnDemand()
    if reply.connect:
        return OnDemand(instead=reply)
    if reply.error is ErrorKind.REFUSED:
        return OnDemand(with_overview(digest, f"_{reply.content}_"))
    if reply.error is not None:
        return OnDemand(with_overview(digest, "_(the Health Monitor did not answer this time)_"))
    return OnDemand(with_overview(digest, reply.content))
