"""Charts as Slack's native `data_visualization` blocks (Block Kit, changelog 2026-06-16): pure, so the
answer's own message can carry them (no extra call) and the alert path can post them alone.

Native charts are sharper, themeable and accessible, and need no upload scope; Slack documents their
limits, checked here before sending: a title of at most 50 characters, at most 2 per message, 1–6 series
of at most 20 points, labels and series names of at most 20 characters. A chart beyond them (a 30-day
line) takes the PNG path (adapters/slack/charts.py). The threshold is a series of its own ("average
Monday" at every point).
"""

from __future__ import annotations

from typing import Any

from bot.charts import ChartError, ChartSpec, parse_spec, shown

TITLE_MAX, LABEL_MAX, SERIES_MAX, POINTS_MAX, PER_MESSAGE = 50, 20, 6, 20, 2


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _labels(values: list[str], limit: int) -> list[str]:
    """Shortened to `limit` characters and still distinct (Slack matches points to categories by label)."""
    if len(set(values)) == len(values) and "" not in values and max(map(len, values)) <= limit:
        return values  # the usual case: as they are
    out: list[str] = []
    for value in values:
        label = _short(value or "—", limit)
        n = 2
        while label in out:
            suffix = f" {n}"
            label, n = _short(value, limit - len(suffix)) + suffix, n + 1
        out.append(label)
    return out


def native_block(spec: ChartSpec) -> dict[str, Any] | None:
    """The chart as a data_visualization block, or None when it is beyond Slack's documented limits or has
    a gap. Built on every answer that carries a chart, so in one pass, the threshold rounded once."""
    count = len(spec.series) + (spec.threshold is not None)
    if spec.gaps or len(spec.x) > POINTS_MAX or count > SERIES_MAX:
        return None
    categories = _labels(spec.x, LABEL_MAX)
    unit = spec.unit or "value"
    names = [name or unit for name, _ in spec.series]
    if spec.threshold is not None:
        names.append(spec.threshold_label)
    names = _labels(names, LABEL_MAX)
    series = [{"name": name, "data": [{"label": c, "value": shown(v)} for c, v in zip(categories, values)]}
              for name, (_, values) in zip(names, spec.series)]
    if spec.threshold is not None:
        line = shown(spec.threshold)
        series.append({"name": names[-1], "data": [{"label": c, "value": line} for c in categories]})
    axis: dict[str, Any] = {"categories": categories, "y_label": _short(unit, TITLE_MAX)}
    if spec.x_label:
        axis["x_label"] = _short(spec.x_label, TITLE_MAX)
    return {"type": "data_visualization", "title": _short(spec.title or "Chart", TITLE_MAX),
            "chart": {"type": spec.kind, "series": series, "axis_config": axis}}


def split_charts(charts: list[Any]) -> tuple[list[tuple[Any, dict[str, Any]]], list[Any]]:
    """(chart, block) for the first charts that can be native (at most PER_MESSAGE), and the rest: charts
    for the PNG path (beyond the limits, past the second, or not drawable: render_all says why)."""
    native: list[tuple[Any, dict[str, Any]]] = []
    images: list[Any] = []
    for chart in charts:
        try:
            block = native_block(parse_spec(chart)) if len(native) < PER_MESSAGE else None
        except ChartError:
            block = None
        if block is None:
            images.append(chart)
        else:
            native.append((chart, block))
    return native, images


def without_charts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The blocks without their charts (for a workspace that refuses them); None if there were none."""
    kept = [block for block in blocks if block.get("type") != "data_visualization"]
    return kept if len(kept) < len(blocks) else None
