"""Charts as PNG, drawn with matplotlib's Agg backend (no display, no public image host needed).

One chart answers one question: a title that states it, labelled axes with units, the threshold drawn
as a line, the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies), readable
at phone width (8 × 4.5 in at 100 dpi = 800 × 450 px). Drawing happens in a worker thread (`render`),
so the event loop never waits; a chart that cannot be drawn raises ChartError and the message goes out
without it.

Spec (what `custom_outputs.charts` carries, and what healthbot builds for alerts):
`{"type": "line"|"bar", "title": str, "x": [...], "series": [{"name": str, "values": [...]}], "unit": str}`
plus, healthbot's own, an optional `"threshold": number` and `"colors": [...]` (one per bar).
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MAX_POINTS = 500
MAX_SERIES = 6
MAX_CHARTS = 3  # per message
_LOCK = threading.Lock()  # pyplot's state is global: one chart at a time


class ChartError(ValueError):
    """A chart that cannot be drawn (empty, not numbers, too big): said once, then left out."""


@dataclass(slots=True)
class ChartSpec:
    """One chart, checked and bounded. Not frozen: a frozen dataclass sets each of its ten fields through
    object.__setattr__, four times the cost of the rest of parse_spec, and one is made per charted answer."""

    kind: str
    title: str
    x: list[str]
    series: list[tuple[str, list[float]]]
    unit: str = ""
    threshold: float | None = None  # finite, or None
    colors: list[str] = field(default_factory=list)
    x_label: str = ""
    threshold_label: str = "threshold"
    gaps: bool = False  # some value is missing (NaN): native charts cannot show a gap, a PNG can

    def series_with_threshold(self) -> list[tuple[str, list[float]]]:
        """The series and the threshold as one more ("average Monday" at every point): native charts
        (Slack's data_visualization, Teams' Chart.*) draw no line across a chart."""
        if self.threshold is None:
            return list(self.series)
        return [*self.series, (self.threshold_label, [self.threshold] * len(self.x))]


def _number(value: Any) -> float:
    """A JSON number as a float; one too big for a float (a 400-digit integer) is infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChartError(f"not a number: {str(value)[:20]!r}")
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _values(raw: Any, count: int) -> list[float]:
    """A series' values as floats, NaN (a gap) for the infinite and missing ones. Per point, so kept
    lean: a chart is parsed on every answer that carries one."""
    if not isinstance(raw, list) or len(raw) != count:
        raise ChartError("each series needs as many values as x")
    out = []
    for value in raw:
        number = value if type(value) is float else _number(value)
        out.append(number if number - number == 0.0 else math.nan)  # inf - inf and nan - nan are NaN
    return out


def parse_spec(data: Any) -> ChartSpec:
    """A chart spec from JSON, bounded; NaN and infinite values become gaps, a threshold that is not a
    finite number is left off (JSON as Python reads it has NaN and Infinity; Slack's and the Bot
    Framework's has not). ChartError otherwise."""
    if not isinstance(data, dict):
        raise ChartError("a chart must be an object")
    kind = data.get("type")
    if kind not in ("line", "bar"):
        raise ChartError(f"unknown chart type {str(kind)[:20]!r}")
    x = data.get("x")
    series = data.get("series")
    if not isinstance(x, list) or not x or not isinstance(series, list) or not series:
        raise ChartError("a chart needs x values and at least one series")
    count = len(x)
    if count > MAX_POINTS or len(series) > MAX_SERIES:
        raise ChartError(f"too big: at most {MAX_POINTS} points and {MAX_SERIES} series")
    parsed = []
    gaps = drawn = False
    for item in series:
        values = _values(item.get("values") if isinstance(item, dict) else None, count)
        missing = values.count(math.nan)  # list.count matches by identity first: each gap is math.nan itself
        gaps, drawn = gaps or missing > 0, drawn or missing < count
        parsed.append((str(item.get("name") or "")[:40], values))
    if not drawn:
        raise ChartError("no value to draw")
    threshold = data.get("threshold")
    if threshold is not None:
        threshold = _number(threshold)
        threshold = threshold if math.isfinite(threshold) else None
    labels = list(map(str, x))
    if max(map(len, labels)) > 24:
        labels = [label[:24] for label in labels]
    colors = data.get("colors")
    colors = [str(c) for c in colors][:count] if isinstance(colors, list) else []
    title, unit = str(data.get("title") or "")[:100], str(data.get("unit") or "")[:20]
    x_label, threshold_label = str(data.get("x_label") or "")[:30], str(data.get("threshold_label") or "threshold")[:40]
    # positional: half the cost of ten keywords, on every charted answer
    return ChartSpec(str(kind), title, labels, parsed, unit, threshold, colors, x_label, threshold_label, gaps)


def shown(value: float) -> float:
    """A value as a native chart carries it: to the cent from 1 up (1331.67), to three significant digits
    below, where cents would make 0.0012 a 0. Short JSON and a readable tooltip. floor(x·100 + ½) / 100
    is a third of round(x, 2)'s cost (which goes through a decimal string) and differs from it only at
    an exact half-cent, by that cent; beyond ±1e13 there are no cents to show."""
    if -1.0 < value < 1.0:
        return float(f"{value:.3g}")
    return math.floor(value * 100 + 0.5) / 100 if -1e13 < value < 1e13 else value


def draw(spec: ChartSpec, *, width_in: float = 8.0, dpi: int = 100) -> bytes:
    """The PNG (blocking: call `render` from async code)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with _LOCK:
        figure = Figure(figsize=(width_in, width_in * 0.5625), dpi=dpi)
        axes = figure.subplots()
        positions = list(range(len(spec.x)))
        width = 0.8 / len(spec.series)
        for index, (name, values) in enumerate(spec.series):
            color = OKABE_ITO[index % len(OKABE_ITO)]
            if spec.kind == "bar":
                colors = spec.colors if spec.colors and len(spec.series) == 1 else [color]
                offset = (index - (len(spec.series) - 1) / 2) * width
                axes.bar([p + offset for p in positions], values, width=width, label=name or None, color=colors)
            else:
                axes.plot(positions, values, marker="o", markersize=3, linewidth=2, label=name or None, color=color)
        if spec.threshold is not None:
            axes.axhline(spec.threshold, color=OKABE_ITO[3], linestyle="--", linewidth=1.5,
                         label=f"{spec.threshold_label} {spec.threshold:g}{' ' + spec.unit if spec.unit else ''}")
        axes.set_title(spec.title, fontsize=13, loc="left")
        axes.set_ylabel(spec.unit or "value")
        if spec.x_label:
            axes.set_xlabel(spec.x_label)
        step = max(1, len(positions) // 8)  # at most ~8 labels: readable on a phone
        axes.set_xticks(positions[::step], spec.x[::step], rotation=30, ha="right", fontsize=8)
        axes.grid(axis="y", alpha=0.3)
        if any(name for name, _ in spec.series) or spec.threshold is not None:
            axes.legend(fontsize=8, frameon=False)
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png")
        return out.getvalue()


async def render(data: Any, *, width_in: float = 8.0, dpi: int = 100) -> bytes:
    spec = parse_spec(data)
    return await asyncio.to_thread(draw, spec, width_in=width_in, dpi=dpi)


async def render_all(charts: list[Any], *, what: str, width_in: float = 8.0, dpi: int = 100) -> list[tuple[str, bytes]]:
    """(title, PNG) for each chart that can be drawn; one log line for each that cannot."""
    drawn = []
    for data in charts[:MAX_CHARTS]:
        try:
            png = await render(data, width_in=width_in, dpi=dpi)
        except ChartError as exc:
            log.warning("a chart of %s was left out: %s", what, exc)
            continue
        except Exception as exc:  # matplotlib itself: never cost the message
            log.warning("a chart of %s could not be drawn: %s: %s", what, type(exc).__name__, str(exc)[:200])
            continue
        drawn.append((str(data.get("title") or "chart") if isinstance(data, dict) else "chart", png))
    return drawn
