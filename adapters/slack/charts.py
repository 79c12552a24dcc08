"""Charts in a Slack thread: native `data_visualization` blocks, PNG uploads where Slack will not take them.

Native charts (Block Kit, changelog 2026-06-16) are sharper, themeable and accessible, and need no
upload scope; Slack documents their limits, checked here before sending: a title of at most 50
characters, at most 2 per message, 1–6 series of at most 20 points, labels and series names of at
most 20 characters. A chart beyond them (a 30-day line) or a refusal (`invalid_blocks` from a workspace
or proxy that does not know the block) takes the PNG path of before: `files_upload_v2`, with the
optional `files:write` scope. The threshold is a series of its own ("average Monday" at every point).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import error_code
from bot.charts import ChartError, ChartSpec, parse_spec

log = logging.getLogger(__name__)

TITLE_MAX, LABEL_MAX, SERIES_MAX, POINTS_MAX, PER_MESSAGE = 50, 20, 6, 20, 2


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _labels(values: list[str], limit: int) -> list[str]:
    """Shortened to `limit` characters and still distinct (Slack matches points to categories by label)."""
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
    """The chart as a data_visualization block, or None when it is beyond Slack's documented limits."""
    named = [(name, values) for name, values in spec.series]
    if spec.threshold is not None:
        named.append((spec.threshold_label, [spec.threshold] * len(spec.x)))
    if len(spec.x) > POINTS_MAX or len(named) > SERIES_MAX or any(math.isnan(v) for _, vs in named for v in vs):
        return None
    categories = _labels(spec.x, LABEL_MAX)
    names = _labels([name or spec.unit or "value" for name, _ in named], LABEL_MAX)
    axis: dict[str, Any] = {"categories": categories, "y_label": _short(spec.unit or "value", TITLE_MAX)}
    if spec.x_label:
        axis["x_label"] = _short(spec.x_label, TITLE_MAX)
    series = [{"name": name, "data": [{"label": c, "value": round(v, 2)} for c, v in zip(categories, values)]}
              for name, (_, values) in zip(names, named)]
    return {"type": "data_visualization", "title": _short(spec.title or "Chart", TITLE_MAX),
            "chart": {"type": spec.kind, "series": series, "axis_config": axis}}


async def post_charts(client: AsyncWebClient, channel: str, thread_ts: str | None, charts: list[Any], *, what: str) -> int:
    """Post the charts into the thread, natively where Slack takes them, else as images. How many arrived."""
    native: list[tuple[Any, dict[str, Any]]] = []
    images: list[Any] = []
    for chart in charts:
        try:
            block = native_block(parse_spec(chart))
        except ChartError:
            block = None  # render_all says why, once, on the image path
        if block is None:
            images.append(chart)
        else:
            native.append((chart, block))
    posted = 0
    for start in range(0, len(native), PER_MESSAGE):
        batch = native[start:start + PER_MESSAGE]
        try:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, blocks=[b for _, b in batch],
                                          text=" · ".join(b["title"] for _, b in batch))
            posted += len(batch)
        except (SlackApiError, aiohttp.ClientError, OSError, ValueError) as exc:
            reason = error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            log.warning("Slack would not take native charts for %s (%s): sending them as images", what, reason)
            images = [chart for chart, _ in native[start:]] + images
            break
    return posted + (await upload_charts(client, channel, thread_ts, images, what=what) if images else 0)


async def upload_charts(client: AsyncWebClient, channel: str, thread_ts: str | None, charts: list[Any], *,
                        what: str) -> int:
    """Draw the charts and upload each into the thread (`files_upload_v2`: files.getUploadURLExternal, the
    upload, files.completeUploadExternal; scope files:write). A refusal is one log line saying why."""
    from bot.charts import render_all

    uploaded = 0
    for title, png in await render_all(charts, what=what):
        try:
            await client.files_upload_v2(channel=channel, thread_ts=thread_ts, file=png, filename="chart.png",
                                         title=title, alt_txt=title)
            uploaded += 1
        except SlackApiError as exc:
            needed = exc.response.get("needed") if isinstance(exc.response.data, dict) else None
            log.warning("Slack refused the chart upload for %s: %s%s", what, error_code(exc),
                        f" (the app needs the {needed} scope)" if needed else "")
            return uploaded
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.warning("the chart upload for %s failed: %s", what, type(exc).__name__)
            return uploaded
    return uploaded


