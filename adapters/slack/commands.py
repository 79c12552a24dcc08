"""`/healthbot`: help, quick questions, `new`, and free questions posted as a thread in the channel."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from adapters.slack import translate as t
from adapters.slack.chart_blocks import without_charts
from adapters.slack.client import error_code
from bot.alerts.digest import digest_for
from bot.alerts.schedule import on_demand_period
from bot.models import Incoming, Platform, ThreadKey
from bot.targets import ChannelTarget
from bot.quick import QUICK_QUESTIONS

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel

CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "access_denied"}


class SlackCommands:
    def __init__(self, bot: SlackChannel) -> None:
        self.bot = bot

    async def on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        text = str(command.get("text") or "").strip()
        word = text.lower()
        if word in ("", "help"):
            usage, blocks = t.help_blocks()
            await ack(text=usage, blocks=blocks)
            return
        if word == "digest":
            await ack()
            self.bot.spawn(self._digest(command, respond))
            return
        first, _, argument = word.partition(" ")
        if first in ("rollback", "checklist"):
            await ack()
            self.bot.spawn(self.bot.deploy_commands.command(command, first, argument.strip(), respond))
            return
        if word in ("connect", "disconnect"):
            await ack()
            self.bot.spawn(self.bot.connect.command(command, word, respond))
            return
        if word == "new":
            await ack(text="Started a new conversation: your next direct message to healthbot begins afresh.")
            self.bot.spawn(self._reset_dm(command))
            return
        await ack()
        question = QUICK_QUESTIONS.get(word, text)
        self.bot.spawn(self.ask_in_channel(
            team=str(command.get("team_id", "")), channel=str(command.get("channel_id", "")),
            user_id=str(command.get("user_id", "")), question=question,
            dedupe=f"slack:cmd:{command.get('trigger_id', '')}", respond=respond, org=t.org_signals(command, {}),
        ))

    async def _digest(self, command: dict[str, Any], respond: Any) -> None:
        """`/healthbot digest`: the digest of the week until now, posted in this channel, holding only what
        the asker may see (bot.alerts.digest.digest_for); a connect prompt instead in user mode."""
        channel = str(command.get("channel_id", ""))
        asker = Incoming(key=ThreadKey(platform=Platform.SLACK, workspace=str(command.get("team_id", "")),
                                       channel=channel), user_id=str(command.get("user_id", "")),
                         text="/healthbot digest", org=t.org_signals(command, {}))
        if await self.bot.refused(asker, respond):
            return
        settings = self.bot.settings
        period = on_demand_period(settings.digest, settings.digest_tz, time.time())
        asker = await self.bot.identify(asker)
        outcome = await digest_for(self.bot.handler, asker, period)
        if outcome.instead is not None:
            await self.bot.connect.prompt(asker, outcome.instead, channel=channel, thread_ts="", respond=respond)
            return
        if outcome.digest is None:
            return
        root, detail = outcome.digest.notes(str(ChannelTarget(Platform.SLACK, channel)))
        sink = self.bot.poster()
        ref = await sink.post_note(channel, None, root)
        if detail is not None:
            await sink.post_note(channel, ref, detail)

    async def _reset_dm(self, command: dict[str, Any]) -> None:
        channel = str(command.get("channel_id", ""))
        if not channel.startswith("D"):
            opened = await self.bot.client.conversations_open(users=str(command.get("user_id", "")))
            channel = str(opened["channel"]["id"])
        key = ThreadKey(platform=Platform.SLACK, workspace=str(command.get("team_id", "")), channel=channel, thread="")
        await self.bot.handler.new_session(key)

    async def ask_in_channel(self, *, team: str, channel: str, user_id: str, question: str, dedupe: str,
                             respond: Any, org: str = "") -> None:
        """Post the question visibly as a thread root and answer in that thread, so follow-ups work.

        Where the bot cannot post (not a member, a private channel), answer through the
        command's response_url instead, which Slack allows without membership.
        """
        asker = Incoming(key=ThreadKey(platform=Platform.SLACK, workspace=team, channel=channel), user_id=user_id,
                         text=question, org=org)
        if await self.bot.refused(asker, respond):
            return
        root_text, root_blocks = t.question_root(user_id, question)
        try:
            root = await self.bot.client.chat_postMessage(channel=channel, text=root_text, blocks=root_blocks)
        except SlackApiError as exc:
            if error_code(exc) not in CANNOT_POST:
                raise
            await self._answer_via_response_url(team, channel, user_id, question, dedupe, respond, org)
            return
        ts = str(root["ts"])
        message = Incoming(key=ThreadKey(platform=Platform.SLACK, workspace=team, channel=channel, thread=ts),
                           message_id=ts, user_id=user_id, text=question, event_id=dedupe, org=org)
        await self.bot.answer(message, channel=channel, thread_ts=ts)

    async def _answer_via_response_url(self, team: str, channel: str, user_id: str, question: str, dedupe: str,
                                       respond: Any, org: str) -> None:
        key = ThreadKey(platform=Platform.SLACK, workspace=team, channel=channel, thread=dedupe)
        message = await self.bot.identify(Incoming(key=key, user_id=user_id, text=question, event_id=dedupe, org=org))
        reply = await self.bot.handler.handle(message)
        if reply is None:
            return
        if reply.connect:
            await self.bot.connect.prompt(message, reply, channel=channel, thread_ts="", respond=respond)
            return
        root_text, root_blocks = t.question_root(user_id, question)
        for index, (text, blocks) in enumerate(t.reply_messages(reply)):
            blocks = without_charts(blocks) or blocks  # a response_url says nothing back when it refuses a block
            head = root_blocks if index == 0 else []
            await respond(text=text, blocks=head + blocks, response_type="in_channel", replace_original=False)
