"""Charts posted into a thread on their own (an alert's metric, a rollout comparison, the digest): native
`data_visualization` blocks (adapters/slack/chart_blocks.py), PNG uploads where Slack will not take them.

A chart beyond Slack's documented limits, or one Slack refuses (`invalid_blocks` from a workspace or proxy
that does not know the block), takes the PNG path of before: `files_upload_v2`, with the optional
`files:write` scope. An answer carries its charts in its own message (adapters/slack/answering.py).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.chart_blocks import split_charts
from adapters.slack.client import error_code

log = logging.getLogger(__name__)


async def post_charts(client: AsyncWebClient, channel: str, thread_ts: str | None, charts: list[Any], *, what: str) -> int:
    """Post the charts into the thread, natively where Slack takes them (one message, two at most), the rest
    as images. How many arrived."""
    native, images = split_charts(charts)
    posted = 0
    if native:
        try:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, blocks=[b for _, b in native],
                                          text=" · ".join(b["title"] for _, b in native))
            posted = len(native)
        except (SlackApiError, aiohttp.ClientError, OSError, ValueError) as exc:
            reason = error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            log.warning("Slack would not take native charts for %s (%s): sending them as images", what, reason)
            images = [chart for chart, _ in native] + images
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
