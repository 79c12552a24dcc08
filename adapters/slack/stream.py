"""A streamed answer in a Slack thread: chat.startStream / appendStream / stopStream, or, where Slack
refuses streaming, the placeholder message updated with chat.update — both at most once a second.

Text reaches Slack only in markdown-safe pieces: never half a table (rows are held until the table
ends) and never an open code fence, so the message reads right at every moment. The final message
is today's answer: sources, confidence and 👍 / 👎 (as blocks under the streamed text), and long
answers continue in follow-up messages.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import translate as t
from adapters.slack.client import error_code, post_messages, with_feedback_fallback
from adapters.slack.progress import Placeholder
from bot.models import Reply
from bot.pacing import Pacer
from bot.text import safe_prefix

log = logging.getLogger(__name__)

EVERY_S = 1.0  # Slack sees at most one append (or update) a second per answer


class SlackStream:
    """The handler's StreamSink for one answer in a Slack thread."""

    def __init__(self, client: AsyncWebClient, placeholder: Placeholder, *, channel: str, thread_ts: str | None,
                 recipient_user: str, recipient_team: str) -> None:
        self.client, self.placeholder = client, placeholder
        self.channel, self.thread_ts = channel, thread_ts
        self.recipient_user, self.recipient_team = recipient_user, recipient_team
        self.mode = ""  # "" until text arrives; then "stream", "update" (Slack refused streaming) or "broken"
        self.ts: str | None = None  # the streamed message
        self.text_so_far = ""
        self.shown = ""  # what Slack shows
        self.pacer = Pacer(EVERY_S, lambda: self.text(""))

    async def stage(self, words: str) -> None:
        if not self.mode:  # before the first text: the placeholder says what is being done
            await self.placeholder.show_stage(words)

    async def text(self, delta: str) -> None:
        self.text_so_far += delta
        if self.mode == "broken" or len(self.shown) >= t.CHUNK:
            return
        safe = safe_prefix(self.text_so_far)[:t.CHUNK]
        if len(safe) <= len(self.shown) or not self.pacer.due():
            return
        if not self.mode:
            await self._start(safe)
        elif self.mode == "stream" and self.ts is not None:
            await self._call("chat.appendStream", self.client.chat_appendStream(
                channel=self.channel, ts=self.ts, markdown_text=safe[len(self.shown):]), safe)
        else:
            ts = await self.placeholder.ensure()
            if ts is not None:
                await self._call("chat.update", self.client.chat_update(
                    channel=self.channel, ts=ts, text=t.fallback_text(safe), blocks=[{"type": "markdown", "text": safe}]),
                    safe)

    async def _start(self, safe: str) -> None:
        if self.thread_ts is None:  # a top-level DM: Slack streams into threads only
            await self._update_instead()
            return
        try:
            started = await self.client.chat_startStream(
                channel=self.channel, thread_ts=self.thread_ts, markdown_text=safe,
                recipient_user_id=self.recipient_user, recipient_team_id=self.recipient_team)
        except SlackApiError as exc:  # an older plan, a workspace without AI features, a method error
            log.info("Slack refused chat.startStream (%s): updating a placeholder instead", error_code(exc))
            await self._update_instead()
            return
        except Exception as exc:  # the network: fall back too, the answer comes at the end anyway
            log.warning("chat.startStream failed: %s", type(exc).__name__)
            self.mode = "update"
            return
        self.mode, self.ts, self.shown = "stream", str(started["ts"]), safe
        placeholder = await self.placeholder.finish()
        if placeholder is not None:  # "Analyzing…" has done its job: the stream is the answer now
            try:
                await self.client.chat_delete(channel=self.channel, ts=placeholder)
            except SlackApiError as exc:
                log.info("could not remove the placeholder: %s", error_code(exc))

    async def _update_instead(self) -> None:
        """No stream here: the placeholder shows the text so far, now and then at most once a second."""
        self.mode = "update"
        self.pacer.now()
        await self.text("")

    async def _call(self, method: str, call: Any, shown: str) -> None:
        try:
            await call
        except Exception as exc:  # a broken stream stops growing; the final answer replaces it
            log.warning("%s failed mid-stream: %s", method,
                        error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__)
            self.mode = "broken"
            return
        self.shown = shown

    async def finish(self, reply: Reply) -> bool:
        """End the stream with the final answer: True when the answer is complete in Slack; False when
        nothing was streamed and the caller posts it as always (over the placeholder)."""
        await self.pacer.stop()
        if self.mode in ("", "update"):
            return False
        assert self.ts is not None
        messages = t.reply_messages(reply)
        if self.mode == "stream" and reply.error is None and len(messages) == 1 \
                and reply.content.startswith(self.shown):
            footer = [block for block in messages[0][1] if block.get("type") != "markdown"]
            rest, ts = reply.content[len(self.shown):], self.ts
            try:
                await with_feedback_fallback(lambda blocks: self.client.chat_stopStream(
                    channel=self.channel, ts=ts, markdown_text=rest or None, blocks=blocks), footer)
                return True
            except SlackApiError as exc:
                log.warning("chat.stopStream failed (%s): replacing the message instead", error_code(exc))
        else:
            try:
                await self.client.chat_stopStream(channel=self.channel, ts=self.ts)
            except SlackApiError as exc:
                log.info("chat.stopStream failed (%s)", error_code(exc))
        if reply.error is not None and self.shown:  # keep what was said, then the error and Retry
            text, blocks = messages[0]
            messages = [(text, [{"type": "markdown", "text": self.shown}, *blocks]), *messages[1:]]
        await post_messages(self.client, self.channel, self.thread_ts, messages, replace_ts=self.ts)
        return True
