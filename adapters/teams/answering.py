"""Answering a Teams question: in the background (the HTTP turn returns at once), streamed where Teams
streams, with a typing indicator until something shows, the cards sent over the pooled connector — or,
when the connector will not take them now, queued in the durable outbox — and the answer's activity ids
remembered for Teams' feedback loop."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from botbuilder.schema import ConversationReference

from adapters.teams import translate as t
from adapters.teams.charts import card_charts
from adapters.teams.outbound import ConnectorError, Where
from adapters.teams.stream import TeamsStream
from bot.models import Incoming, Platform, Reply
from bot.targets import ChannelTarget

if TYPE_CHECKING:
    from adapters.teams.app import TeamsChannel

log = logging.getLogger(__name__)

TYPING_AFTER_S = 1.0  # a fast answer needs no typing indicator (one connector call saved)
TYPING_EVERY_S = 3.0  # Teams shows a typing indicator for about three seconds
ANSWERS_REMEMBERED = 10_000


class TeamsAnswering:
    def __init__(self, channel: TeamsChannel) -> None:
        self.channel = channel

    async def send_reply(self, where: Where, reply: Reply, charts: list[dict[str, Any]] | None = None) -> None:
        """The answer's cards; the chart rides on the last one, which is sent again without it when the
        connector refuses it (too large: 413, or a 400) — a chart never costs the message."""
        if charts is None:
            charts = await card_charts(reply.charts, what=reply.request_id)
        cards = t.reply_messages(reply, charts, buttons=where.in_channel)  # a new message: Teams' loop outside channels
        for index, card in enumerate(cards):
            try:
                sent = await self.channel.send(where, card)
            except ConnectorError as exc:
                if not charts or index != len(cards) - 1 or exc.status not in (400, 413):
                    raise
                log.warning("the Bot Connector refused the answer %s with its chart (%d): sent without it",
                            reply.request_id, exc.status)
                sent = await self.channel.send(where, t.reply_messages(reply, buttons=where.in_channel)[index])
            self.remember_answer(reply.request_id, [sent] if sent else [])

    def ask(self, reference: ConversationReference, message: Incoming) -> None:
        """Answer in the background, so the HTTP turn that brought the question returns at once."""
        self.channel.spawn(self._answer(reference, message))

    async def _answer(self, reference: ConversationReference, message: Incoming) -> None:
        where = Where.of(reference)  # replies to the question's message
        personal = bool(reference.conversation and reference.conversation.conversation_type == "personal")
        stream = TeamsStream(self.channel.connector, where, personal=personal)
        typing = asyncio.create_task(self._keep_typing(where, stream))
        woke = False

        async def progress(stage: str) -> None:
            nonlocal woke
            if stage == "waking_up" and not woke:
                woke = True
                await self.channel.send(where, "Waking up the Health Monitor (the endpoint scaled to zero); this can take a "
                                       "few minutes…")

        try:
            reply = await self.channel.handler.handle(message, on_progress=progress, sink=stream)
        except asyncio.CancelledError:  # shutting down: say so rather than leave the question hanging
            typing.cancel()
            await asyncio.wait_for(self.channel.send(where, "healthbot restarted before it could answer this. "
                                                    "Please ask again in a moment."), 2.0)
            raise
        except Exception:  # a bug or a store outage: say so in the conversation, never a stack trace
            typing.cancel()
            log.exception("answering in Teams conversation %s failed", message.key.thread)
            await self.channel.send(where, "Sorry, healthbot hit an internal error answering this. Please try again.")
            return
        typing.cancel()
        if reply is None:
            return
        if reply.connect:  # HEALTHBOT_IDENTITY=user: the link goes to the asker alone
            await self.channel.connect.prompt(reference, message, reply)
            return
        charts = await card_charts(reply.charts, what=reply.request_id)
        if await stream.finish(reply, self._send_cards, charts):
            self.remember_answer(reply.request_id, stream.answer_ids)
        else:
            await self._send_or_queue(where, reference, message, reply, charts)

    async def _send_cards(self, where: Where, cards: list[dict[str, Any]]) -> list[str]:
        return [sent for sent in [await self.channel.send(where, card) for card in cards] if sent]

    def remember_answer(self, request_id: str, activity_ids: list[str]) -> None:
        """Which answer an activity is: Teams' feedback loop (`message/submitAction`) names only the
        activity. Kept in memory for the last 10,000 answer messages; after a restart, feedback on an
        older answer is acknowledged and not recorded."""
        for activity_id in activity_ids:
            self.channel.answers[activity_id] = request_id
            self.channel.answers.move_to_end(activity_id)
        while len(self.channel.answers) > ANSWERS_REMEMBERED:
            self.channel.answers.popitem(last=False)

    async def _send_or_queue(self, where: Where, reference: ConversationReference, message: Incoming,
                             reply: Reply, charts: list[dict[str, Any]]) -> None:
        """Send the answer; one the connector will not take now (after `send`'s retries) goes to the
        durable outbox, retried from there and resumed after a restart."""
        try:
            await self.send_reply(where, reply, charts)
        except (ConnectorError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if self.channel.dispatcher is None or (isinstance(exc, ConnectorError) and exc.permanent):
                raise
            log.warning("the Bot Connector would not take the answer to %s now (%s): queued for delivery",
                        reply.request_id, exc.status if isinstance(exc, ConnectorError) else type(exc).__name__)
            await self.channel.dispatcher.enqueue_answer(ChannelTarget(Platform.TEAMS, message.key.channel),
                                                 {"reference": reference.serialize()}, reply)

    async def _keep_typing(self, where: Where, stream: TeamsStream) -> None:
        await asyncio.sleep(TYPING_AFTER_S)
        while not stream.started:  # a stream or placeholder shows progress itself
            try:
                await self.channel.connector.send(where, {"type": "typing"})
            except Exception:  # typing is cosmetic; never let it break the answer
                return
            await asyncio.sleep(TYPING_EVERY_S)
