"""The chart an alert's thread carries, as a chart spec (bot/charts.py):
- a SQL alert (or any alert with a numeric value): the values healthbot has seen for it — webhook
  `value`s and pulled evaluations — over the last 24 h, the threshold as a line;
- a job: its last 20 runs, duration coloured by result (bot/alerts/enrich.py fetches them);
- a self-monitoring alert: the hourly figure from healthbot's own request log, with its threshold.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from bot.alerts.model import Alert
from bot.store.base import AlertThread, RequestLogRow

DAY_S = 86400.0
MAX_VALUES = 200
RESULT_COLORS = {"SUCCESS": "#009E73", "SUCCESS_WITH_FAILURES": "#E69F00"}  # others: vermillion (failed)
FAILED_COLOR = "#D55E00"


def number(text: str) -> float | None:
    """The number in a value like `0.14`, `14.2%`, `8.3 s`, `1,978`; None when there is none."""
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", text or "")
    if match is None:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


def record_value(thread: AlertThread, alert: Alert, now: float) -> None:
    """Keep the alert's value with its time (the last 24 h, at most 200)."""
    value = number(alert.value)
    if value is None:
        return
    values = [pair for pair in thread.care.get("values", []) if isinstance(pair, list) and pair[0] > now - DAY_S]
    values.append([now, value])
    thread.care["values"] = values[-MAX_VALUES:]


def values_chart(thread: AlertThread, alert: Alert) -> dict[str, Any] | None:
    values = thread.care.get("values") or []
    if len(values) < 2:
        return None  # one point says nothing a chart would add
    unit = "%" if "%" in alert.value else ("s" if alert.value.strip().endswith("s") else "")
    threshold = number(alert.threshold)
    chart: dict[str, Any] = {
        "type": "line", "title": f"{alert.name}: value over the last 24 h"[:100],
        "x": [datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M") for at, _ in values],
        "series": [{"name": "value", "values": [v for _, v in values]}], "unit": unit, "x_label": "time (UTC)"}
    if threshold is not None:
        chart["threshold"] = threshold
    return chart


def runs_chart(job_name: str, runs: list[Any]) -> dict[str, Any] | None:
    """The job's last runs (newest last): duration in minutes, coloured by result."""
    runs = [r for r in runs if getattr(r, "end_time", None) and getattr(r, "start_time", None)][:20][::-1]
    if len(runs) < 2:
        return None
    results = [(r.state.result_state.value if r.state and r.state.result_state else "") for r in runs]
    return {"type": "bar", "title": f"{job_name}: the last {len(runs)} runs"[:100],
            "x": [datetime.fromtimestamp(r.start_time / 1000, timezone.utc).strftime("%m-%d %H:%M") for r in runs],
            "series": [{"name": "duration", "values": [round((r.end_time - r.start_time) / 60000, 1) for r in runs]}],
            "unit": "min", "x_label": "run start (UTC); green succeeded, vermillion failed",
            "colors": [RESULT_COLORS.get(result, FAILED_COLOR) for result in results]}


def hourly_chart(title: str, rows: list[RequestLogRow], threshold: float, *, rate: bool,
                 now: float | None = None) -> dict[str, Any] | None:
    """A self-monitoring rule's hourly figure over 24 h: error rate (%) or p95 latency (s)."""
    from bot.ops.stats import percentile

    now = now or time.time()
    hours: list[str] = []
    values: list[float] = []
    for back in range(23, -1, -1):
        start = now - (back + 1) * 3600
        group = [r for r in rows if start <= r.ts < start + 3600 and not r.refused]
        hours.append(datetime.fromtimestamp(start + 3600, timezone.utc).strftime("%H:00"))
        if not group:
            values.append(float("nan"))
        elif rate:
            values.append(100.0 * sum(1 for r in group if r.failed) / len(group))
        else:
            values.append((percentile([r.latency_ms for r in group], 0.95) or 0.0) / 1000)
    if all(v != v for v in values):  # NaN everywhere: nothing to draw
        return None
    return {"type": "line", "title": title, "x": hours, "series": [{"name": "hourly", "values": values}],
            "unit": "%" if rate else "s", "threshold": threshold * (100 if rate else 1), "x_label": "hour (UTC)"}
