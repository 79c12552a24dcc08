"""A streamed answer in Teams.

Personal chat: Teams streaming — typing activities carrying a `streaminfo` entity, `informative`
(a stage) and then `streaming` (the text so far, cumulative) with an increasing `streamSequence`,
at most one a second; the first answer (201) names the `streamId`; the final message carries the
Adaptive Card and a `streaminfo` entity of type `final` with that id. Channels and group chats
cannot stream: a placeholder message is updated in place, then replaced by the final card. A
403 / 400 on streaming (the user stopped it, streaming not allowed) falls back to the placeholder.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import aiohttp

from adapters.teams import translate as t
from adapters.teams.outbound import Connector, ConnectorError, Where
from bot.models import Reply
from bot.pacing import Pacer
from bot.text import safe_prefix, sentence

log = logging.getLogger(__name__)

EVERY_S = 1.0
CHANNEL_TEXT_LIMIT = 20_000  # Teams messages hold ~28 KB; the final card is what counts


class TeamsStream:
    """The handler's StreamSink for one answer in a Teams conversation."""

    def __init__(self, connector: Connector, where: Where, *, personal: bool) -> None:
        self.connector = connector
        self.where = where
        self.mode = "stream" if personal else "placeholder"
        self.stream_id: str | None = None
        self.sequence = 0
        self.placeholder_id: str | None = None
        self.text_so_far = ""
        self.shown = ""
        self.sent = 0  # activities sent for this answer: once any went out, no plain typing indicator
        self.answer_ids: list[str] = []  # the final answer's activity ids (Teams' feedback loop names them)
        self.pacer = Pacer(EVERY_S, lambda: self.text(""))

    @property
    def started(self) -> bool:
        return self.sent > 0

    async def stage(self, words: str) -> None:
        if self.shown or not self.pacer.due():
            return
        if self.mode == "stream":
            await self._stream("informative", words)
        else:
            await self._placeholder({"type": "message", "text": sentence(words)})

    async def text(self, delta: str) -> None:
        self.text_so_far += delta
        safe = safe_prefix(self.text_so_far)
        if len(safe) <= len(self.shown) or not self.pacer.due():
            return
        if self.mode == "stream":
            await self._stream("streaming", t.plain_text(safe))
        else:  # plain text wraps in the chat column (a markdown table would not): only the syntax goes
            await self._placeholder({"type": "message", "text": t.plain_text(safe)[:CHANNEL_TEXT_LIMIT],
                                     "textFormat": "plain"})
        self.shown = safe

    async def _stream(self, kind: str, text: str) -> None:
        self.sequence += 1
        info: dict[str, Any] = {"type": "streaminfo", "streamType": kind, "streamSequence": self.sequence}
        if self.stream_id:
            info["streamId"] = self.stream_id
        try:
            self.sent += 1
            sent = await self.connector.send(self._to_conversation(), {"type": "typing", "text": text,
                                                                       "entities": [info]})
        except ConnectorError as exc:  # Teams said no (the user stopped it, streaming not allowed here)
            log.info("Teams streaming refused (%s): a placeholder message instead", exc.status)
            self.mode, self.stream_id = "placeholder", None
            await self._placeholder({"type": "message", "text": text})
            return
        except aiohttp.ClientError as exc:  # the network, not Teams: this update is skipped, streaming goes on
            log.info("a Teams streaming update was not delivered (%s); the next one carries the text so far",
                     type(exc).__name__)
            return
        self.stream_id = self.stream_id or sent

    def _to_conversation(self) -> Where:
        """Streaming activities go to the conversation, not as replies (the documented REST route)."""
        return dataclasses.replace(self.where, reply_to=None)

    async def _placeholder(self, activity: dict[str, Any]) -> None:
        try:
            self.sent += 1
            if self.placeholder_id is None:
                self.placeholder_id = await self.connector.send(self.where, activity)
            else:
                await self.connector.update(self.where, self.placeholder_id, activity)
        except (ConnectorError, aiohttp.ClientError) as exc:  # progress is cosmetic: the answer comes at the end
            log.info("Teams progress message failed: %s", exc)

    async def finish(self, reply: Reply, send_cards: Any, charts: list[dict[str, Any]] | None = None) -> bool:
        """Deliver the final answer in place of the stream or placeholder: True when done, False when
        nothing was shown and the caller sends the answer as always. `send_cards(where, cards)`."""
        await self.pacer.stop()
        if self.mode == "stream" and self.stream_id:
            cards = t.reply_messages(reply, charts, buttons=self.where.in_channel)
            final = {**cards[0], "entities": [*cards[0].get("entities", []),
                                              {"type": "streaminfo", "streamId": self.stream_id, "streamType": "final"}]}
            self.sent += 1
            try:
                await self.connector.send(self._to_conversation(), final)
            except ConnectorError as exc:  # the user stopped the stream, or it expired: answer as always
                log.info("Teams would not finish the stream (%s): sending the answer as a message", exc.status)
                return False
            self.answer_ids = [self.stream_id, *(await send_cards(self.where, cards[1:]))]
            return True
        if self.placeholder_id is not None:  # an updated message: Teams shows no feedback loop on it, the card does
            cards = t.reply_messages(reply, charts, buttons=True)
            self.sent += 1
            await self.connector.update(self.where, self.placeholder_id, cards[0])
            self.answer_ids = [self.placeholder_id, *(await send_cards(self.where, cards[1:]))]
            return True
        return False
