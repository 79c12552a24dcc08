"""A streamed answer in a Slack thread: chat.startStream / appendStream / stopStream, or, where Slack
refuses streaming, the placeholder message updated with chat.update — both at most once a second.

Text reaches Slack only in markdown-safe pieces: never half a table (rows are held until the table
ends) and never an open code fence, so the message reads right at every moment. The final message
is today's answer: sources, confidence and 👍 / 👎 (as blocks under the streamed text), and long
answers continue in follow-up messages.

Each stage (a sub-agent call, a table read) is a step of the streamed message where Slack takes
task chunks (`task_update`, running → complete, shown as a timeline); where it refuses them the
stage is a line in the placeholder as before. In the agent view the stages are the status line
while the endpoint works, and the steps join the message when its text starts.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import translate as t
from adapters.slack.client import error_code, post_messages, with_block_fallbacks
from adapters.slack.progress import Placeholder
from bot.models import Reply
from bot.pacing import Pacer
from bot.text import safe_prefix, sentence

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
        self.sent_blocks: list[dict[str, Any]] = []  # what the final message went with (a refused chart left out)
        self.pacer = Pacer(EVERY_S, lambda: self.text(""))
        self.steps: list[str] = []  # the stages so far, each a task of the streamed message
        self.steps_ok = thread_ts is not None  # until Slack refuses task chunks
        self._pending: list[dict[str, Any]] = []  # task chunks not yet sent

    async def stage(self, words: str) -> None:
        stepped = self._step(words)
        if not self.mode:
            if stepped and self.placeholder.live_steps:
                await self._start_with_steps(words)
            else:  # before the first text: the placeholder (or the agent view's status) says what is being done
                await self.placeholder.show_stage(words)
        elif self.mode == "stream" and stepped and self.pacer.due():
            await self._append("")

    def _step(self, words: str) -> bool:
        """Queue the task chunks for a new stage (the previous one done, this one running)."""
        if not self.steps_ok or (self.steps and self.steps[-1] == words):
            return False
        if self.steps:
            self._pending.append(_task(len(self.steps), self.steps[-1], "complete"))
        self.steps.append(words)
        self._pending.append(_task(len(self.steps), words, "in_progress"))
        return True

    async def _start_with_steps(self, words: str) -> None:
        """The first stage starts the stream: its steps are the message until text follows."""
        assert self.thread_ts is not None  # steps_ok: streaming happens in threads only
        self.pacer.due()  # the first send: it starts the once-a-second pace
        chunks, self._pending = self._pending, []
        try:
            started = await self.client.chat_startStream(
                channel=self.channel, thread_ts=self.thread_ts, chunks=chunks, task_display_mode="timeline",
                recipient_user_id=self.recipient_user, recipient_team_id=self.recipient_team)
        except SlackApiError as exc:  # no task chunks here: stages stay placeholder lines
            log.info("Slack refused task chunks in chat.startStream (%s): stages as placeholder lines", error_code(exc))
            self.steps_ok, self.steps = False, []
            await self.placeholder.show_stage(words)
            return
        except Exception as exc:  # the network: the answer comes at the end anyway
            log.warning("chat.startStream failed: %s", type(exc).__name__)
            self.mode = "update"
            return
        self.mode, self.ts = "stream", str(started["ts"])
        await self._drop_placeholder()

    async def text(self, delta: str) -> None:
        self.text_so_far += delta
        if self.mode == "broken" or len(self.shown) >= t.CHUNK:
            return
        safe = safe_prefix(self.text_so_far)[:t.CHUNK]
        if len(safe) <= len(self.shown):
            if self._pending and self.mode == "stream" and self.pacer.due():
                await self._append("")  # the pacer's flush: steps that waited for their turn
            return
        if not self.pacer.due():
            return
        if not self.mode:
            await self._start(safe)
        elif self.mode == "stream" and self.ts is not None:
            await self._append(safe)
        else:
            ts = await self.placeholder.ensure()
            if ts is not None:
                await self._call("chat.update", self.client.chat_update(
                    channel=self.channel, ts=ts, text=t.fallback_text(safe), blocks=[{"type": "markdown", "text": safe}]),
                    safe)

    async def _append(self, safe: str) -> None:
        """Append the text after what is shown, with any steps waiting (one paced call)."""
        assert self.ts is not None
        delta, chunks, self._pending = safe[len(self.shown):], self._pending, []
        if chunks:
            call = self.client.chat_appendStream(channel=self.channel, ts=self.ts, chunks=chunks + _markdown(delta))
        else:
            call = self.client.chat_appendStream(channel=self.channel, ts=self.ts, markdown_text=delta)
        await self._call("chat.appendStream", call, safe or self.shown)

    async def _start(self, safe: str) -> None:
        if self.thread_ts is None:  # a top-level DM: Slack streams into threads only
            await self._update_instead()
            return
        text: dict[str, Any] = {"markdown_text": safe}
        if self._pending:  # the agent view's steps so far, before the text
            text = {"chunks": self._pending + _markdown(safe), "task_display_mode": "timeline"}
        try:
            started = await self.client.chat_startStream(
                channel=self.channel, thread_ts=self.thread_ts, **text,
                recipient_user_id=self.recipient_user, recipient_team_id=self.recipient_team)
        except SlackApiError as exc:  # an older plan, a workspace without AI features, a method error
            if self._pending:  # perhaps only the task chunks: once more without them
                self.steps_ok, self.steps, self._pending = False, [], []
                await self._start(safe)
                return
            log.info("Slack refused chat.startStream (%s): updating a placeholder instead", error_code(exc))
            await self._update_instead()
            return
        except Exception as exc:  # the network: fall back too, the answer comes at the end anyway
            log.warning("chat.startStream failed: %s", type(exc).__name__)
            self.mode = "update"
            return
        self.mode, self.ts, self.shown, self._pending = "stream", str(started["ts"]), safe, []
        await self._drop_placeholder()

    async def _drop_placeholder(self) -> None:
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
            text, blocks = messages[0]
            footer = [block for block in blocks if block.get("type") not in ("markdown", "data_table")]
            rest, ts, steps = reply.content[len(self.shown):], self.ts, self._last_steps("complete")
            end: dict[str, Any] = {"chunks": steps + _markdown(rest)} if steps else {"markdown_text": rest or None}
            try:
                self.sent_blocks = await with_block_fallbacks(lambda blocks: self.client.chat_stopStream(
                    channel=self.channel, ts=ts, blocks=blocks, **end), footer)
                if not self.steps and any(block.get("type") == "data_table" for block in blocks):
                    await self._with_table(ts, text, self.sent_blocks, blocks)  # streamed as markdown: now the table
                return True
            except SlackApiError as exc:
                log.warning("chat.stopStream failed (%s): replacing the message instead", error_code(exc))
        else:
            try:
                steps = self._last_steps("error" if reply.error else "complete")
                await self.client.chat_stopStream(channel=self.channel, ts=self.ts, chunks=steps or None)
            except SlackApiError as exc:
                log.info("chat.stopStream failed (%s)", error_code(exc))
        if reply.error is not None and self.shown:  # keep what was said, then the error and Retry
            text, blocks = messages[0]
            messages = [(text, [{"type": "markdown", "text": self.shown}, *blocks]), *messages[1:]]
        self.sent_blocks = await post_messages(self.client, self.channel, self.thread_ts, messages, replace_ts=self.ts)
        return True

    async def _with_table(self, ts: str, text: str, footer: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
        """The finished message again, its table a data_table block: a table streams as markdown (rows
        arrive one by one), the final message sorts and pages. Not where the message shows the agents'
        steps (task chunks), which replacing its content would drop. Cosmetic: on failure the markdown stays."""
        content = [block for block in blocks if block.get("type") in ("markdown", "data_table")]
        try:  # the content, then the footer as it went with the stream's end (a refused block stays out)
            await with_block_fallbacks(lambda b: self.client.chat_update(channel=self.channel, ts=ts, text=text, blocks=b),
                                       content + footer)
        except SlackApiError as exc:
            log.info("the streamed answer keeps its markdown table (chat.update: %s)", error_code(exc))

    def _last_steps(self, status: str) -> list[dict[str, Any]]:
        """The steps still to send, the running one ended."""
        if self.steps:
            self._pending.append(_task(len(self.steps), self.steps[-1], status))
        chunks, self._pending = self._pending, []
        return chunks


def _task(number: int, title: str, status: str) -> dict[str, Any]:
    """A `task_update` chunk (slack_sdk TaskUpdateChunk): the same id for each update of one step."""
    return {"type": "task_update", "id": f"step-{number}", "title": sentence(title), "status": status}


def _markdown(text: str) -> list[dict[str, Any]]:
    return [{"type": "markdown_text", "text": text}] if text else []
