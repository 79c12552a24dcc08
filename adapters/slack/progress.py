"""Progress in the thread while the endpoint works, shown only when the answer is slow.

A fast answer arrives as one message with no flicker; after `delay_s` an "Analyzing…" placeholder
appears, a cold endpoint turns it into "waking up…", and the final answer replaces it with
`chat.update`, so each question still ends with one answer message.
"""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import error_code
from adapters.slack.translate import progress_blocks, progress_message
from bot.text import sentence
from agent.base import Progress

PLACEHOLDER_DELAY_S = 1.0
STAGE_EVERY_S = 1.0

log = logging.getLogger(__name__)


class Placeholder:
    live_steps = True  # a streamed answer starts at its first stage, with the stages as steps (stream.py)

    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str | None,
                 existing_ts: str | None = None, delay_s: float | None = None) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.ts = existing_ts  # a message to reuse (the error message a Retry replaces)
        self.delay_s = 0.0 if existing_ts else (PLACEHOLDER_DELAY_S if delay_s is None else delay_s)
        self._stage: str | None = None
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Future[None] | None = None
        self._stage_at = 0.0

    def start(self) -> None:
        """Arm the timer: a TimerHandle costs less than a task per message, and most never fire."""
        if self.delay_s:
            self._timer = asyncio.get_running_loop().call_later(self.delay_s, self._fire)
        else:
            self._fire()

    def _fire(self) -> None:
        self._task = asyncio.ensure_future(self.show("working"))

    async def show(self, stage: Progress) -> None:
        shown = "waking_up" if stage == "waking_up" else "working"
        async with self._lock:
            if self._stage == "waking_up" and stage == "working":
                return  # the timer fired late: keep saying why it is slow
            if self._stage == shown:
                return
            await self._write(progress_message(shown)[0], shown)

    async def _write(self, text: str, stage: str) -> None:
        """Post the placeholder, or update it, with one line of progress (call with the lock held)."""
        blocks = progress_blocks(text)
        self._stage = stage
        try:
            if self.ts is None:
                response = await self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts,
                                                              text=text, blocks=blocks)
                self.ts = str(response["ts"])
            else:
                await self.client.chat_update(channel=self.channel, ts=self.ts, text=text, blocks=blocks)
        except Exception as exc:  # progress is cosmetic: Slack being down must not cost the answer
            log.warning("Slack progress message failed: %s",
                        error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__)

    async def show_stage(self, words: str) -> None:
        """A streamed stage ("asking the cost agent…") in the placeholder, at most once a second."""
        if self._stage == "waking_up" or time.monotonic() - self._stage_at < STAGE_EVERY_S:
            return
        self._stage_at = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
        async with self._lock:
            await self._write(sentence(words), "stage")

    async def ensure(self) -> str | None:
        """The placeholder's ts, posting it now if the timer has not yet (a streamed answer's first text)."""
        if self.ts is None and self._stage is None:
            if self._timer is not None:
                self._timer.cancel()
            await self.show("working")
        if self._task is not None:
            await self._task
        return self.ts

    async def finish(self) -> str | None:
        """Stop the timer; the ts of a placeholder to replace with the answer, if one was shown."""
        if self._timer is not None:
            self._timer.cancel()  # no-op when it already fired
        if self._task is not None:
            await self._task  # a placeholder being posted must land, or its ts would be lost
        async with self._lock:
            return self.ts

    async def abandon(self) -> None:
        """No answer comes in this thread (the asker must connect first): the placeholder goes away."""
        shown = await self.finish()
        if shown is None:
            return
        try:
            await self.client.chat_delete(channel=self.channel, ts=shown)
        except Exception as exc:  # cosmetic, as every progress write
            log.warning("deleting the Slack progress message failed: %s",
                        error_code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__)
