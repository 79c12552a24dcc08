"""Slack buttons: 👍 / 👎, Retry, quick questions, and Investigate / Acknowledge on alert threads.

Every button acks first and works in the background: a listener that raises after `ack()` makes
Bolt reset the ack, Slack sees its 200 only after 3 s, and retries.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from slack_bolt.app.async_app import AsyncApp

from adapters.slack import translate as t
from bot.alerts.delivery import ACKNOWLEDGE, INVESTIGATE, SNOOZE
from bot.models import Incoming, Platform, ThreadKey
from bot.quick import QUICK_QUESTIONS
from bot.targets import ChannelTarget

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel


class SlackButtons:
    def __init__(self, bot: SlackChannel) -> None:
        self.bot = bot

    def register(self, app: AsyncApp) -> None:
        app.action(t.FEEDBACK)(self._on_feedback)
        app.action(t.FEEDBACK_UP)(self._on_feedback)
        app.action(t.FEEDBACK_DOWN)(self._on_feedback)
        app.action(t.RETRY)(self._on_retry)
        app.action(re.compile(f"^{t.QUICK_PREFIX}"))(self._on_quick)
        app.action(INVESTIGATE)(self._on_alert_button)
        app.action(ACKNOWLEDGE)(self._on_alert_button)
        app.action(re.compile(f"^{SNOOZE}_"))(self._on_alert_button)

    async def _on_feedback(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.bot.spawn(self._feedback(body, action))

    async def _feedback(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        user = str(body.get("user", {}).get("id", ""))
        native = t.native_feedback(action.get("value")) if action.get("action_id") == t.FEEDBACK else None
        if native is not None:  # Slack's element: it shows the choice itself, and a later click replaces it
            positive, request_id = native
        elif action.get("action_id") == t.FEEDBACK:
            return  # a value healthbot never sent
        else:
            positive, request_id = action.get("action_id") == t.FEEDBACK_UP, str(action.get("value", ""))
        clicker = await self.bot.identify(clicker_of(body, f"feedback {request_id}"))
        if await self.bot.refused(clicker):
            return  # an external or a guest does not grade the answers members get
        recorded = await self.bot.handler.record_feedback(request_id, user_id=user, value=1 if positive else -1,
                                                          voter=clicker.asker)
        if native is not None:
            return
        message = body.get("message") or {}
        channel = button_channel(body)
        if recorded and message.get("ts") and channel:
            await self.bot.client.chat_update(channel=channel, ts=message["ts"], text=message.get("text", ""),
                                          blocks=t.feedback_done(message.get("blocks") or [], user, positive))

    async def _on_retry(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = button_channel(body)
        thread = str(message.get("thread_ts") or container.get("thread_ts") or "")
        team = t.team_of(body) or str((body.get("user") or {}).get("team_id", ""))
        key = ThreadKey(platform=Platform.SLACK, workspace=team, channel=channel, thread=thread)
        retry = Incoming(key=key, user_id=str(body["user"]["id"]), text="retry", is_dm=channel.startswith("D"),
                         event_id=f"slack:retry:{action.get('action_ts', '')}:{message.get('ts', '')}")
        self.bot.spawn(self.bot.answer(retry, channel=channel, thread_ts=thread, replace_ts=message.get("ts")))

    async def _on_alert_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.bot.spawn(self._alert_button(body, action))

    async def _alert_button(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        if self.bot.dispatcher is None:
            return
        user = str(body["user"]["id"])
        key = _alert_key(action.get("value"))
        target = ChannelTarget(Platform.SLACK, button_channel(body))
        if await self.bot.refused(clicker_of(body, f"{action.get('action_id')} {key}")):
            return  # an external or a guest cannot acknowledge an alert or spend the endpoint on it
        action_id = str(action.get("action_id") or "")
        if action_id == ACKNOWLEDGE:
            name = (await self.bot.users.lookup(user)).name
            await self.bot.dispatcher.acknowledge(target, key, name or user)
        elif action_id.startswith(f"{SNOOZE}_"):
            name = (await self.bot.users.lookup(user)).name
            if await self.bot.dispatcher.snooze(target, key, name or user, action_id.removeprefix(f"{SNOOZE}_")) is None:
                await self.bot.client.chat_postEphemeral(channel=target.channel, user=user,
                                                         text="That alert is not known in this channel any more.")
        else:
            await self.bot.dispatcher.investigate_key(target, key, user)

    async def _on_quick(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        await ack()
        name = str(action.get("value") or action.get("action_id", "").removeprefix(t.QUICK_PREFIX))
        self.bot.spawn(self._quick(body, action, respond, name))

    async def _quick(self, body: dict[str, Any], action: dict[str, Any], respond: Any, name: str) -> None:
        channel = button_channel(body)
        if not channel:  # App Home: the answer comes in a DM thread with the person
            opened = await self.bot.client.conversations_open(users=str(body["user"]["id"]))
            channel = str(opened["channel"]["id"])
        await self.bot.commands.ask_in_channel(
            team=t.team_of(body) or str(body["user"].get("team_id", "")), channel=channel,
            user_id=str(body["user"]["id"]), question=QUICK_QUESTIONS.get(name, name),
            dedupe=f"slack:quick:{action.get('action_ts', '')}:{body['user']['id']}", respond=respond,
            org=t.org_signals(body, {}),
        )


def button_channel(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", ""))


def clicker_of(body: dict[str, Any], text: str) -> Incoming:
    """Who clicked a button on a message, for the access gate (a Slack Connect external, a guest)."""
    key = ThreadKey(platform=Platform.SLACK, workspace=t.team_of(body), channel=button_channel(body),
                    thread=str((body.get("message") or {}).get("ts") or ""))
    user = str((body.get("user") or {}).get("id", ""))
    return Incoming(key=key, user_id=user, text=text, org=t.org_signals(body, {}))


def _alert_key(value: Any) -> str:
    """The alert key an alert button carries as JSON (`{"key": …}`); "" for anything else."""
    try:
        data = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return ""
    return str(data.get("key", "")) if isinstance(data, dict) else ""
