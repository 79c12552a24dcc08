"""`healthbot stats`: the Health Monitor dashboard figures, from the bot's own request log.

Definitions follow the Health Monitor's inference-table queries: success rate =
(requests − errors) / requests; p95 is Databricks SQL's `percentile(latency, 0.95)`, the exact
percentile with linear interpolation between the two nearest ranks. Throttled messages (the bot's
own rate limit) count as requests and as errors, as they reached the bot and got no answer.
Refusals by the access rules count as requests, not errors (the bot did what it was told), and are
reported on their own, per reason.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from bot.store.base import RequestLogRow, Store


def percentile(values: list[float], q: float) -> float | None:
    """Databricks SQL / Spark `percentile`: linear interpolation at position q * (n - 1)."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class HourFigures:
    hour: str
    requests: int
    errors: int
    success_rate: float
    avg_latency_ms: float
    p95_latency_ms: float | None
    avg_confidence: float | None


@dataclass
class VersionFigures:
    """One served version's answers: what the rollout comparison and `stats --by-version` show."""

    version: str
    requests: int
    errors: int
    error_rate: float
    p95_latency_ms: float | None
    avg_confidence: float | None
    feedback_up: int
    feedback_down: int

    @property
    def feedback_up_rate(self) -> float | None:
        total = self.feedback_up + self.feedback_down
        return self.feedback_up / total if total else None


def figures_of(version: str, rows: list[RequestLogRow], votes: dict[str, int]) -> VersionFigures:
    """Refusals are not the version's doing: they count neither as its requests nor its errors."""
    rows = [r for r in rows if not r.refused]
    errors = sum(1 for r in rows if r.failed)
    confidences = [r.confidence for r in rows if r.confidence is not None]
    mine = [votes[r.request_id] for r in rows if r.request_id in votes]
    return VersionFigures(
        version=version, requests=len(rows), errors=errors, error_rate=errors / len(rows) if rows else 0.0,
        p95_latency_ms=percentile([r.latency_ms for r in rows], 0.95),
        avg_confidence=sum(confidences) / len(confidences) if confidences else None,
        feedback_up=sum(1 for v in mine if v > 0), feedback_down=sum(1 for v in mine if v < 0),
    )


def by_version(rows: list[RequestLogRow], votes: dict[str, int]) -> dict[str, VersionFigures]:
    """Per served version; rows whose version the endpoint did not say are left out, not guessed."""
    grouped: dict[str, list[RequestLogRow]] = defaultdict(list)
    for row in rows:
        if row.served_version:
            grouped[row.served_version].append(row)
    return {v: figures_of(v, grouped[v], votes) for v in sorted(grouped, key=_version_order)}


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


@dataclass
class Stats:
    hours: int
    since: str
    requests: int
    errors: int
    success_rate: float | None
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    per_hour: list[HourFigures] = field(default_factory=list)
    domains_per_day: dict[str, dict[str, int]] = field(default_factory=dict)
    feedback_up: int = 0
    feedback_down: int = 0
    refused: int = 0  # access rules: not a member, not a Databricks user, answer withheld
    throttled: int = 0  # the per-user / overall rate limits
    refused_by_reason: dict[str, int] = field(default_factory=dict)
    first_text_p50_ms: float | None = None  # message to first visible text (a streamed piece, or the answer)
    first_text_p95_ms: float | None = None
    by_version: dict[str, VersionFigures] = field(default_factory=dict)

    @property
    def feedback_up_rate(self) -> float | None:
        total = self.feedback_up + self.feedback_down
        return self.feedback_up / total if total else None

    def as_json(self) -> str:
        data = asdict(self)
        data["feedback_up_rate"] = self.feedback_up_rate
        for version, figures in self.by_version.items():
            data["by_version"][version]["feedback_up_rate"] = figures.feedback_up_rate
        return json.dumps(data, indent=2)


def _hour(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:00")


def compute(rows: list[RequestLogRow], feedback: list[tuple[str, int]], *, hours: int, since: float) -> Stats:
    by_hour: dict[str, list[RequestLogRow]] = defaultdict(list)
    domains: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        by_hour[_hour(row.ts)].append(row)
        for domain in row.domains:
            domains[_hour(row.ts)[:10]][domain] += 1
    per_hour = []
    for hour in sorted(by_hour):
        group = by_hour[hour]
        latencies = [r.latency_ms for r in group]
        confidences = [r.confidence for r in group if r.confidence is not None]
        errors = sum(1 for r in group if r.failed)
        per_hour.append(HourFigures(
            hour=hour, requests=len(group), errors=errors, success_rate=(len(group) - errors) / len(group),
            avg_latency_ms=sum(latencies) / len(latencies), p95_latency_ms=percentile(latencies, 0.95),
            avg_confidence=sum(confidences) / len(confidences) if confidences else None,
        ))
    errors = sum(1 for r in rows if r.failed)
    latencies = [r.latency_ms for r in rows]
    reasons = Counter(str(r.error).removeprefix("refused:") for r in rows if r.refused)
    first_text = [r.first_text_ms for r in rows if r.first_text_ms is not None]
    votes = dict(feedback)
    return Stats(
        hours=hours, since=datetime.fromtimestamp(since, timezone.utc).isoformat(timespec="seconds"),
        requests=len(rows), errors=errors, success_rate=(len(rows) - errors) / len(rows) if rows else None,
        avg_latency_ms=sum(latencies) / len(latencies) if latencies else None, p95_latency_ms=percentile(latencies, 0.95),
        per_hour=per_hour, domains_per_day={day: dict(counter) for day, counter in sorted(domains.items())},
        feedback_up=sum(1 for _, v in feedback if v > 0), feedback_down=sum(1 for _, v in feedback if v < 0),
        refused=sum(reasons.values()), throttled=sum(1 for r in rows if r.error == "throttled"),
        refused_by_reason=dict(reasons.most_common()),
        first_text_p50_ms=percentile(first_text, 0.5), first_text_p95_ms=percentile(first_text, 0.95),
        by_version=by_version(rows, votes),
    )


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def render(stats: Stats) -> str:
    lines = [
        f"healthbot — last {stats.hours} h (since {stats.since})",
        f"requests {stats.requests}, errors {stats.errors}, success rate {_fmt(stats.success_rate, '{:.1%}')}, "
        f"avg latency {_fmt(stats.avg_latency_ms, '{:.0f} ms')}, p95 {_fmt(stats.p95_latency_ms, '{:.0f} ms')}; "
        f"first text p50 {_fmt(stats.first_text_p50_ms, '{:.0f} ms')}, p95 {_fmt(stats.first_text_p95_ms, '{:.0f} ms')}",
        f"feedback 👍 {stats.feedback_up} / 👎 {stats.feedback_down} (up rate {_fmt(stats.feedback_up_rate, '{:.0%}')})",
        f"throttled {stats.throttled}, refused {stats.refused}"
        + (" (" + ", ".join(f"{reason} {n}" for reason, n in stats.refused_by_reason.items()) + ")"
           if stats.refused else ""),
        "",
        f"{'hour (UTC)':<17} {'requests':>8} {'errors':>6} {'success':>8} {'avg ms':>8} {'p95 ms':>8} {'confidence':>10}",
    ]
    for h in stats.per_hour:
        lines.append(f"{h.hour:<17} {h.requests:>8} {h.errors:>6} {h.success_rate:>8.1%} {h.avg_latency_ms:>8.0f} "
                     f"{_fmt(h.p95_latency_ms, '{:.0f}'):>8} {_fmt(h.avg_confidence, '{:.2f}'):>10}")
    if not stats.per_hour:
        lines.append("(no requests in this window)")
    if stats.domains_per_day:
        lines += ["", "domains per day:"]
        for day, counts in stats.domains_per_day.items():
            lines.append(f"  {day}: " + ", ".join(f"{d} {n}" for d, n in sorted(counts.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


def render_by_version(stats: Stats) -> str:
    lines = [f"healthbot per served version — last {stats.hours} h (since {stats.since})",
             f"{'version':<10} {'requests':>8} {'error rate':>10} {'p95 ms':>8} {'confidence':>10} {'👍':>4} {'👎':>4}"]
    for f in stats.by_version.values():
        lines.append(f"{'v' + f.version:<10} {f.requests:>8} {f.error_rate:>10.1%} {_fmt(f.p95_latency_ms, '{:.0f}'):>8} "
                     f"{_fmt(f.avg_confidence, '{:.2f}'):>10} {f.feedback_up:>4} {f.feedback_down:>4}")
    if not stats.by_version:
        lines.append("(no answers that named their served version: the demo engine, or an endpoint without the "
                     "served-model-name header)")
    return "\n".join(lines)


async def collect(store: Store, hours: int, *, where: Callable[[RequestLogRow], bool] | None = None) -> Stats:
    """The figures of the last `hours`; with `where`, of the requests it keeps only (one workspace's,
    one channel's: a surface shows nobody the figures of a place they are not in)."""
    since = time.time() - hours * 3600
    rows = [row for row in await store.requests_since(since) if where is None or where(row)]
    asked = {row.request_id for row in rows}
    votes = [(rid, vote) for rid, vote in await store.feedback_since(since) if rid in asked]
    return compute(rows, votes, hours=hours, since=since)
