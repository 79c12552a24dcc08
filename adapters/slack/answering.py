"""Answering a Slack question in its thread: progress while the endpoint works (a placeholder message, or
the agent view's status line), the answer streamed where Slack streams, its charts native in its message
(PNG uploads after it for the rest), and an answer Slack will not take now (an outage past slack_sdk's
retries) queued in the durable outbox."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from adapters.slack import translate as t
from adapters.slack.chart_blocks import split_charts
from adapters.slack.charts import upload_charts
from adapters.slack.client import describe, is_transient
from adapters.slack.progress import Placeholder
from adapters.slack.stream import SlackStream
from bot.models import Incoming, Platform, Reply
from bot.targets import ChannelTarget

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel

log = logging.getLogger(__name__)

_INTERNAL = ("Sorry, healthbot hit an internal error answering this. The operators have the details in the "
             "logs; please try again in a moment.")
INTERNAL_ERROR = (_INTERNAL, [{"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {_INTERNAL}"}}])
_RESTARTING = "healthbot restarted before it could answer this. Please ask again in a moment."
RESTARTING = (_RESTARTING, [{"type": "section", "text": {"type": "mrkdwn", "text": f":hourglass: {_RESTARTING}"}}])


class SlackAnswering:
    def __init__(self, channel: SlackChannel) -> None:
        self.channel = channel

    async def answer(self, message: Incoming, *, channel: str, thread_ts: str, replace_ts: str | None = None,
                     placeholder: Placeholder | None = None) -> None:
        """Ask the handler and post the answer in the thread, with progress while it works (a placeholder
        message, or in the agent view Slack's status line). An answer Slack will not take now (an outage
        past slack_sdk's retries) goes to the durable outbox."""
        message = await self.channel.identify(message)
        if placeholder is None:
            placeholder = Placeholder(self.channel.client, channel=channel, thread_ts=thread_ts or None, existing_ts=replace_ts)
        placeholder.start()
        stream = SlackStream(self.channel.client, placeholder, channel=channel, thread_ts=thread_ts or None,
                             recipient_user=message.user_id, recipient_team=message.org or message.key.workspace)
        try:
            reply = await self.channel.handler.handle(message, on_progress=placeholder.show, sink=stream)
        except asyncio.CancelledError:  # shutting down: say so rather than leave the question hanging
            shown = stream.ts or await placeholder.finish()
            await asyncio.wait_for(self.channel.post(channel, thread_ts or None, [RESTARTING], replace_ts=shown), 2.0)
            raise
        except Exception:  # a bug: say so in the thread, never a stack trace
            log.exception("answering in Slack channel %s failed", channel)
            shown = stream.ts or await placeholder.finish()
            await self.channel.post(channel, thread_ts or None, [INTERNAL_ERROR], replace_ts=shown)
            return
        if reply is None:
            await placeholder.finish()
            return  # already answered (Slack retry, or app_mention + message for one post)
        if reply.connect:  # HEALTHBOT_IDENTITY=user: the link goes to the asker alone, nothing in the thread
            await placeholder.abandon()
            await self.channel.connect.prompt(message, reply, channel=channel, thread_ts=thread_ts)
            return
        ts: str | None = stream.ts
        try:
            if await stream.finish(reply):
                sent = stream.sent_blocks
            else:
                ts = await placeholder.finish()
                sent = await self.channel.post(channel, thread_ts or None, t.reply_messages(reply), replace_ts=ts)
            self._images_of(reply, sent, channel, thread_ts)
        except Exception as exc:
            if not is_transient(exc) or self.channel.dispatcher is None:
                raise
            log.warning("Slack would not take the answer to %s now (%s): queued for delivery", reply.request_id,
                        describe(exc)[:100])
            await self.channel.dispatcher.enqueue_answer(ChannelTarget(Platform.SLACK, channel),
                                                 {"thread_ts": thread_ts, "replace_ts": ts}, reply)

    def _images_of(self, reply: Reply, sent: list[dict[str, Any]], channel: str, thread_ts: str) -> None:
        """The answer's charts its message could not carry natively (beyond Slack's limits, past the second,
        or refused), uploaded as PNGs into the thread after it: a chart never costs the message."""
        carried = sum(block.get("type") == "data_visualization" for block in sent)
        if carried == len(reply.charts):
            return  # all of them native (the usual case: no second look at the charts)
        native, images = split_charts(reply.charts)
        if native and not carried:
            images = [chart for chart, _ in native] + images
        if images:
            self.channel.spawn(upload_charts(self.channel.client, channel, thread_ts or None, images, what=reply.request_id))
