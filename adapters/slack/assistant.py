"""Slack's agent view (the split pane): suggested prompts, thread titles, status while answering, and
the channel the person is looking at, through bolt-python's `AsyncAssistant` middleware.

Bolt routes the assistant events here and hands each listener `say`, `set_suggested_prompts`,
`set_title`, `set_status` and the thread's context. The context lives in healthbot's own store (one
row per assistant thread), not in bolt's default place (metadata on the bot's first reply, read back
with conversations.replies on every message): every replica sees it, with no extra Slack call per
question. A message counts as an assistant-thread question only when healthbot saw that thread
start; any other DM thread takes the usual path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import AsyncAssistantThreadContextStore
from slack_bolt.listener_matcher.async_listener_matcher import AsyncCustomListenerMatcher
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError

from adapters.slack import translate as t
from adapters.slack.client import EXPECTED, describe, error_code
from adapters.slack import progress
from adapters.slack.progress import Placeholder
from bot.background import logged
from bot.quick import SUGGESTED_PROMPTS
from bot.text import sentence
from bot.store import Store

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel

log = logging.getLogger(__name__)

REFERENCE_KIND = "slack-assistant"  # conversation_refs rows: platform column, one per assistant thread
TITLE_LIMIT = 100
GREETING = ("Hi, I'm healthbot. Ask me about your Databricks platform: costs, jobs, query performance, security "
            "and data quality. I keep the channel you are looking at in mind.")
PROMPTS_TITLE = "Ask the Health Monitor"
STATUS = "is thinking…"


class AssistantContexts(AsyncAssistantThreadContextStore):
    """Bolt's thread-context store on healthbot's database (conversation_refs, keyed by DM + thread).

    Besides Slack's context (`channel_id`, `team_id`, `enterprise_id`) a row keeps `titled`, so only
    the first question names the thread."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _key(channel_id: str, thread_ts: str) -> str:
        return f"{channel_id}|{thread_ts}"

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, Any]) -> None:
        before = await self.store.get_reference(REFERENCE_KIND, self._key(channel_id, thread_ts)) or {}
        await self.store.save_reference(REFERENCE_KIND, self._key(channel_id, thread_ts), {**before, **context})

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        found = await self.store.get_reference(REFERENCE_KIND, self._key(channel_id, thread_ts))
        return AssistantThreadContext(found) if found and found.get("channel_id") is not None else None


class _AgentViewOnly(AsyncAssistant):
    """bolt's Assistant, skipped for what cannot be the agent view's: it matches each of its listeners
    against every request (building their arguments each time), which cost the channel mentions that
    are most of the traffic a tenth of their throughput (bench/slack_events.py)."""

    async def async_process(self, *, req: Any, resp: Any, next: Any) -> Any:  # noqa: A002 (bolt's name)
        event = req.body.get("event") if isinstance(req.body, dict) else None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind in ("assistant_thread_started", "assistant_thread_context_changed") or (
                kind == "message" and event.get("channel_type") == "im"):  # type: ignore[union-attr]
            return await super().async_process(req=req, resp=resp, next=next)
        return await next()


class SlackAssistant:
    """The listeners bolt's Assistant middleware calls for healthbot."""

    def __init__(self, bot: SlackChannel) -> None:
        self.bot = bot
        self.contexts = AssistantContexts(bot.handler.store)
        self.middleware = _AgentViewOnly(thread_context_store=self.contexts, logger=log)
        self.middleware.thread_started(self._on_started)
        self.middleware.thread_context_changed(self._on_context_changed)
        # an async matcher must come as bolt's own matcher object (plain functions are called unawaited);
        # and bolt takes a list of them here, whatever its annotation says
        known = AsyncCustomListenerMatcher(app_name="healthbot", func=self._known_thread, base_logger=log)
        self.middleware.user_message(matchers=[known])(self._on_question)  # type: ignore[arg-type]

    async def _known_thread(self, body: dict[str, Any]) -> bool:
        event = body.get("event") or {}
        return await self.contexts.find(channel_id=str(event.get("channel", "")),
                                        thread_ts=str(event.get("thread_ts", ""))) is not None

    async def _on_started(self, payload: dict[str, Any], say: Any, set_suggested_prompts: Any) -> None:
        await logged(self._started(payload, say, set_suggested_prompts), what="Slack assistant thread start",
                     expected=EXPECTED, describe=describe)

    async def _started(self, payload: dict[str, Any], say: Any, set_suggested_prompts: Any) -> None:
        thread = payload.get("assistant_thread") or {}
        context: dict[str, Any] = thread["context"] if isinstance(thread.get("context"), dict) else {}
        await self.contexts.save(channel_id=str(thread.get("channel_id", "")), thread_ts=str(thread.get("thread_ts", "")),
                                 context={"channel_id": "", **context})
        await say(GREETING)
        await set_suggested_prompts(prompts=list(SUGGESTED_PROMPTS), title=PROMPTS_TITLE)

    async def _on_context_changed(self, payload: dict[str, Any]) -> None:
        thread = payload.get("assistant_thread") or {}
        context = thread.get("context")
        if isinstance(context, dict):
            await logged(self.contexts.save(channel_id=str(thread.get("channel_id", "")),
                                            thread_ts=str(thread.get("thread_ts", "")), context=context),
                         what="Slack assistant context", expected=EXPECTED, describe=describe)

    async def _on_question(self, body: dict[str, Any], payload: dict[str, Any], context: Any, set_title: Any,
                           set_status: Any) -> None:
        await logged(self._question(body, payload, context, set_title, set_status), what="Slack assistant question",
                     expected=EXPECTED, describe=describe)

    async def _question(self, body: dict[str, Any], event: dict[str, Any], context: Any, set_title: Any,
                        set_status: Any) -> None:
        message = t.event_to_incoming(body, event, context.get("bot_user_id"))
        if message is None:
            return
        channel, thread_ts = message.key.channel, message.key.thread
        found: dict[str, Any] = await self.contexts.find(channel_id=channel, thread_ts=thread_ts) or {}
        viewing = str(found.get("channel_id") or "")
        if not found.get("titled"):  # the first question names the thread in the pane's history
            await self.contexts.save(channel_id=channel, thread_ts=thread_ts, context={"titled": True})
            await cosmetic("assistant.threads.setTitle", set_title(message.text[:TITLE_LIMIT] or PROMPTS_TITLE))
        if viewing and viewing != channel:
            message = message.model_copy(update={"viewing_channel": viewing})
        status = StatusPlaceholder(self.bot.client, set_status, channel=channel, thread_ts=thread_ts)
        await self.bot.answer(message, channel=channel, thread_ts=thread_ts, placeholder=status)


class StatusPlaceholder(Placeholder):
    """Progress in an assistant thread: Slack's own status line ("healthbot is thinking…" with the
    stage names as loading messages) instead of a placeholder message. Slack clears it when the
    answer is posted. A message is posted only when the answer needs one to update (streaming refused)."""

    live_steps = False  # the status line shows the stages live; the steps join the message with its text

    def __init__(self, client: Any, set_status: Any, *, channel: str, thread_ts: str) -> None:
        super().__init__(client, channel=channel, thread_ts=thread_ts, delay_s=0.0)
        self.set_status = set_status

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._status(t.progress_message("working")[0]))

    async def show(self, stage: Any) -> None:
        if stage == "waking_up" and self._stage != "waking_up":
            self._stage = "waking_up"
            await self._status(t.progress_message("waking_up")[0])

    async def show_stage(self, words: str) -> None:
        if self._stage == "waking_up" or time.monotonic() - self._stage_at < progress.STAGE_EVERY_S:
            return
        self._stage_at = time.monotonic()
        await self._status(sentence(words))

    async def _status(self, line: str) -> None:
        await cosmetic("assistant.threads.setStatus", self.set_status(STATUS, loading_messages=[line]))

    async def abandon(self) -> None:
        await super().abandon()
        await cosmetic("assistant.threads.setStatus", self.set_status(""))  # "" clears it (Slack's docs)

    async def ensure(self) -> str | None:
        if self._task is not None:
            await self._task
        async with self._lock:
            if self.ts is None:
                await self._write(t.progress_message("working")[0], "working")
        return self.ts


async def cosmetic(method: str, call: Any) -> None:
    """A title or a status line: Slack refusing one must not cost the answer."""
    try:
        await call
    except SlackApiError as exc:
        log.info("%s failed: %s", method, error_code(exc))
    except EXPECTED as exc:
        log.warning("%s failed: %s", method, type(exc).__name__)

