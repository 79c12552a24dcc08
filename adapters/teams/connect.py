"""HEALTHBOT_IDENTITY=user in Teams: "Connect your Databricks account", to the asker alone — in their
personal chat with healthbot (opened proactively when they asked in a channel or group chat) — the
waiting question answered once they connect, and the words `connect` / `disconnect`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botbuilder.core import TurnContext
from botbuilder.schema import ConversationReference

from adapters.teams import translate as t
from adapters.teams.outbound import ConnectorError, Where
from bot.identity import words
from bot.identity.service import waiting_question
from bot.models import Incoming, Platform, Reply

if TYPE_CHECKING:
    from adapters.teams.app import TeamsChannel

log = logging.getLogger(__name__)

WORDS = frozenset({"connect", "disconnect"})
SENT_PRIVATELY = "I sent you a private message: connect your Databricks account there and I answer here."
NO_PRIVATE_CHAT = ("healthbot asks the Health Monitor as you, so you need to connect your Databricks account first, "
                   "and I could not message you privately. Open a personal chat with healthbot and say `connect`.")


def connect_card(why: str, url: str) -> dict[str, Any]:
    title = {"type": "TextBlock", "text": words.CONNECT_TEXT, "weight": "Bolder", "size": "Medium"}
    return t.card_message(t.card([title, {"type": "TextBlock", "text": why, "wrap": True}],
                                 [{"type": "Action.OpenUrl", "title": "Connect", "url": url}]), words.CONNECT_TEXT)


class TeamsConnect:
    def __init__(self, teams: TeamsChannel) -> None:
        self.teams = teams
        identity = teams.handler.identity
        if identity is not None:
            identity.resumers[Platform.TEAMS.value] = self.resume

    async def prompt(self, reference: ConversationReference, message: Incoming, reply: Reply) -> None:
        identity = self.teams.handler.identity
        assert identity is not None  # a Reply asks to connect only in user mode
        url = await identity.connect_url(message, {"incoming": message.model_dump(mode="json"),
                                                   "reference": reference.serialize()})
        await self._privately(reference, connect_card(reply.content, url))

    async def _privately(self, reference: ConversationReference, activity: dict[str, Any]) -> None:
        """Into the personal chat: this one, or a 1:1 the Bot Connector opens (`POST /v3/conversations`
        with the person as the only member, as Teams documents for proactive messages). Where it cannot
        (the app is not installed for them personally), the thread is told why, without the link."""
        where = Where.of(reference)
        if where.conversation.get("conversationType") == "personal":
            await self.teams.send(where, activity)
            return
        tenant = where.conversation.get("tenantId") or ""
        user = where.user or {}
        try:
            conversation_id, _ = await self.teams.connector.create(where.service_url, {
                "isGroup": False, "bot": where.bot, "members": [{"id": user.get("id", "")}], "tenantId": tenant,
                "channelData": {"tenant": {"id": tenant}}})
            await self.teams.send(Where(service_url=where.service_url, conversation={
                "id": conversation_id, "conversationType": "personal", "tenantId": tenant}, bot=where.bot, user=user),
                activity)
        except ConnectorError as exc:
            log.info("could not open a personal chat to send a connect link (%d): told the thread", exc.status)
            await self.teams.send(where, NO_PRIVATE_CHAT)
            return
        await self.teams.send(where, SENT_PRIVATELY)

    async def resume(self, waiting: dict[str, Any]) -> None:
        """After the callback: the question again, in its own conversation (the member lookup needs a
        turn, so the membership found when it was asked stands)."""
        self.teams.ask(ConversationReference().deserialize(waiting["reference"]), waiting_question(waiting))

    async def said(self, turn_context: TurnContext, message: Incoming, word: str) -> None:
        identity = self.teams.handler.identity
        if identity is None:
            await self.teams.send(turn_context, words.NO_ACCOUNT_HERE)
            return
        if word == "disconnect":
            gone = await identity.disconnect(message)
            await self.teams.send(turn_context, words.DISCONNECTED if gone else words.NOTHING_TO_DISCONNECT)
            return
        asker = await self.teams.identify(turn_context, message)
        refusal = await self.teams.handler.refusal_for(asker)
        if refusal is not None:
            if refusal.content:  # empty: over the request limit, nothing shown
                await self.teams.send(turn_context, refusal.content)
            return
        url = await identity.connect_url(asker, None)
        here = TurnContext.get_conversation_reference(turn_context.activity)
        await self._privately(here, connect_card(words.SIGN_IN_ONCE, url))
