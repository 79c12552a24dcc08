"""HEALTHBOT_IDENTITY=user in Slack: the "Connect your Databricks account" prompt, to the asker alone
(an ephemeral message with a link button), the waiting question answered once they connect, and
`/healthbot connect` / `/healthbot disconnect`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.app.async_app import AsyncApp

from adapters.slack.translate import to_mrkdwn
from bot.identity import words
from bot.identity.service import waiting_question
from bot.models import Incoming, Membership, Platform, Reply, ThreadKey

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel

CONNECT = "connect_databricks"  # the link button's action id: Slack still sends the click, which is acked


def connect_blocks(why: str, url: str) -> tuple[str, list[dict[str, Any]]]:
    return f"{words.CONNECT_TEXT}: {why}", [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":key: *{words.CONNECT_TEXT}*\n{to_mrkdwn(why)}"}},
        {"type": "actions", "block_id": "connect", "elements": [
            {"type": "button", "action_id": CONNECT, "text": {"type": "plain_text", "text": "Connect"},
             "url": url, "style": "primary"}]},
    ]


class SlackConnect:
    def __init__(self, bot: SlackChannel) -> None:
        self.bot = bot

    def register(self, app: AsyncApp) -> None:
        app.action(CONNECT)(self._on_click)
        identity = self.bot.handler.identity
        if identity is not None:
            identity.resumers[Platform.SLACK.value] = self.resume

    async def _on_click(self, ack: Any) -> None:
        await ack()  # the browser opens the link; nothing to do here

    async def prompt(self, message: Incoming, reply: Reply, *, channel: str, thread_ts: str,
                     respond: Any = None) -> None:
        """The link, to the asker alone; their question is answered in its thread once they connect
        (a slash command answered through its response_url has no thread to come back to)."""
        identity = self.bot.handler.identity
        assert identity is not None  # a Reply asks to connect only in user mode
        waiting = None if respond is not None else {"incoming": message.model_dump(mode="json"), "channel": channel,
                                                    "thread_ts": thread_ts}
        text, blocks = connect_blocks(reply.content, await identity.connect_url(message, waiting))
        if respond is not None:
            await respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
            return
        await self.bot.client.chat_postEphemeral(channel=channel, user=message.user_id, text=text, blocks=blocks,
                                                 thread_ts=thread_ts or None)

    async def resume(self, waiting: dict[str, Any]) -> None:
        """After the callback: the question again, checked again like any message."""
        message = waiting_question(waiting, membership=Membership.UNVERIFIED)
        await self.bot.answer(message, channel=str(waiting["channel"]), thread_ts=str(waiting.get("thread_ts") or ""))

    async def command(self, command: dict[str, Any], word: str, respond: Any) -> None:
        """`/healthbot connect` sends the link; `/healthbot disconnect` removes the tokens and revokes them."""
        identity = self.bot.handler.identity
        if identity is None:
            await respond(text=words.NO_ACCOUNT_HERE, response_type="ephemeral")
            return
        asker = Incoming(key=ThreadKey(platform=Platform.SLACK, workspace=str(command.get("team_id", "")),
                                       channel=str(command.get("channel_id", ""))),
                         user_id=str(command.get("user_id", "")), text=f"/healthbot {word}")
        if word == "disconnect":
            gone = await identity.disconnect(asker)
            await respond(text=words.DISCONNECTED if gone else words.NOTHING_TO_DISCONNECT, response_type="ephemeral")
            return
        if await self.bot.refused(asker, respond):
            return
        asker = await self.bot.identify(asker)
        text, blocks = connect_blocks(words.SIGN_IN_ONCE, await identity.connect_url(asker, None))
        await respond(text=text, blocks=blocks, response_type="ephemeral")
