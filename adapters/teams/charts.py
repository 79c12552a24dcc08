"""Charts in Teams cards: native `Chart.*` elements, each with the PNG of before as its `fallback`.

Teams draws charts in Adaptive Cards (Chart.Line, Chart.VerticalBar, Chart.VerticalBar.Grouped, …:
msteams-docs "Charts in Adaptive Cards"; the element shapes are those of Microsoft's own
microsoft-teams-cards models, which the tests validate against). Native charts are sharp, themed and
accessible, and a few hundred bytes: no size cliff. A client that does not know the element renders its
`fallback`: the first chart's PNG as today, drawn small enough that the card stays under the Bot
Framework's ~28 KB message limit (480 × 270 px, else 400 × 225), or a line naming the chart when even
that is too big. The threshold is a series of its own ("average Monday" at every point).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from bot.charts import MAX_CHARTS, ChartError, ChartSpec, parse_spec, render_all, shown

log = logging.getLogger(__name__)

MAX_PNG_BYTES = 14_000  # ~19 KB once base64-encoded, leaving room for the answer's text
SIZES = ((6.0, 80), (5.0, 80))  # (inches, dpi)
MAX_NATIVE_POINTS = 100  # beyond this, a PNG reads better than a crowded native chart


def image_blocks(images: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Charts as images in the card itself (`data:` URLs: no public image host), scaled to its width."""
    return [{"type": "Image", "url": "data:image/png;base64," + base64.b64encode(png).decode(), "altText": title,
             "size": "Stretch"} for title, png in images]


async def card_images(charts: list[Any], *, what: str) -> list[tuple[str, bytes]]:
    """The first chart as a PNG small enough for a card, or nothing (one log line)."""
    if not charts:
        return []
    for width_in, dpi in SIZES:
        drawn = await render_all(charts[:1], what=what, width_in=width_in, dpi=dpi)
        if not drawn:
            return []
        if len(drawn[0][1]) <= MAX_PNG_BYTES:
            return drawn
    log.warning("a chart of %s was left out of the Teams card: %d bytes even at %d px wide", what,
                len(drawn[0][1]), int(SIZES[-1][0] * SIZES[-1][1]))
    return []


def native_element(spec: ChartSpec) -> dict[str, Any] | None:
    """The chart as a Chart.* element (without fallback), or None when it is not one Teams draws well."""
    if spec.gaps or len(spec.x) > MAX_NATIVE_POINTS:
        return None
    named = spec.series_with_threshold()
    head: dict[str, Any] = {"title": spec.title or "Chart", "showTitle": True, "yAxisTitle": spec.unit or "value"}
    if spec.x_label:
        head["xAxisTitle"] = spec.x_label
    if spec.kind == "bar" and len(named) == 1:
        return {"type": "Chart.VerticalBar", **head, "showLegend": False,
                "data": [{"x": x, "y": shown(y)} for x, y in zip(spec.x, named[0][1])]}
    series = [{"legend": name or spec.unit or "value",
               "values": [{"x": x, "y": shown(y)} for x, y in zip(spec.x, values)]} for name, values in named]
    return {"type": "Chart.Line" if spec.kind == "line" else "Chart.VerticalBar.Grouped", **head, "data": series}


async def card_charts(charts: list[Any], *, what: str) -> list[dict[str, Any]]:
    """The card elements for an answer's (or alert's) charts: native where Teams draws them, the first
    one's PNG as fallback (or as the element itself when it has no native form)."""
    elements: list[dict[str, Any]] = []
    picture = image_blocks(await card_images(charts, what=what))  # render_all logs a chart it cannot draw
    for index, chart in enumerate(charts[:MAX_CHARTS]):
        try:
            spec = parse_spec(chart)
        except ChartError:
            continue
        element = native_element(spec)
        fallback = picture[0] if index == 0 and picture else None
        if element is None:
            elements += [fallback] if fallback else []
            continue
        element["fallback"] = fallback or {"type": "TextBlock", "wrap": True, "isSubtle": True,
                                           "text": f"📈 {spec.title}: open Teams' newest version to see this chart"}
        elements.append(element)
    return elements
