"""Alert threads in Teams: a new channel post per alert (from the conversation reference stored at
install), state changes as replies in that post's thread, the root card updated in place.

Untrusted alert text goes into RichTextBlock TextRuns, which Teams shows literally (no markdown, so
no forged links or formatting); Teams only mentions someone through explicit mention entities.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botbuilder.schema import (
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
)
from msrest.exceptions import HttpOperationError

from adapters.teams import translate as t
from adapters.teams.outbound import ConnectorError, Where
from bot.alerts.care import SNOOZE_LABELS
from bot.alerts.delivery import ACKNOWLEDGE, INVESTIGATE, SNOOZE, DeliveryError, Note
from bot.alerts.model import AlertView
from bot.models import Incoming, Platform, Reply, ThreadKey
from bot.text import inert

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from adapters.teams.app import TeamsChannel



def literal(text: str, **style: Any) -> dict[str, Any]:
    """A TextRun: Teams shows it literally (no markdown), so outside text goes here as it is; in
    markdown (TextBlock, FactSet values, messages) it goes through bot.text.inert instead."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text[:3000], **style}]}


def alert_card(view: AlertView) -> dict[str, Any]:
    alert = view.alert
    facts = [{"title": "State", "value": alert.state}, {"title": "Severity", "value": alert.severity}]
    if alert.value or alert.threshold:
        facts.append({"title": "Value", "value": f"{alert.value or '?'} {alert.operator or 'vs'} {alert.threshold or '?'}"})
    if alert.domain:
        facts.append({"title": "Domain", "value": alert.domain})
    if alert.rollout:
        facts.append({"title": "Since", "value": f"{view.first_seen:%Y-%m-%d %H:%M} UTC"})
    else:
        facts.append({"title": "Seen", "value": f"{view.count}×, last {view.last_seen:%Y-%m-%d %H:%M} UTC"})
    if view.resolved_after_s is not None:
        took = "Took" if alert.rollout else "Resolved after"
        facts.append({"title": took, "value": f"{max(1, round(view.resolved_after_s / 60))} min"})
    if view.acknowledged_by:
        facts.append({"title": "Acknowledged by", "value": view.acknowledged_by})
    if view.snoozed:
        facts.append({"title": "Snoozed", "value": view.snoozed.removeprefix("Snoozed ")})
    if view.flapping:
        facts.append({"title": "Flapping", "value": "only this card is updated"})
    for fact in facts:  # FactSet values render markdown
        fact["value"] = inert(fact["value"])
    body: list[dict[str, Any]] = [literal(f"{alert.mark} {alert.name}", size="Large", weight="Bolder"),
                                  {"type": "FactSet", "facts": facts}]
    for text in (alert.description, f"Details: {alert.detail}" if alert.detail else "", f"Query: {alert.query[:600]}" if alert.query else ""):
        if text:
            body.append(literal(text))
    actions: list[dict[str, Any]] = []
    if alert.investigable:
        data = {"key": alert.key}
        actions += [t.execute("Investigate", INVESTIGATE, data), t.execute("Acknowledge", ACKNOWLEDGE, data)]
    if alert.snoozable_now:
        actions.append(snooze_choice(alert.key))
    links = [{"type": "Action.OpenUrl", "title": label, "url": url}
             for label, url in alert.links.items() if url.startswith("https://")]
    return t.card(body, links[:t.MAX_ACTIONS - len(actions)] + actions)  # at most five: Teams shows five


def snooze_choice(key: str) -> dict[str, Any]:
    """Snooze as one action: a card that shows the durations to pick (Input.ChoiceSet `for`, sent with the
    Action.Execute's data), instead of a button per duration."""
    choices = [{"title": label, "value": choice} for choice, label in SNOOZE_LABELS.items()]
    return {"type": "Action.ShowCard", "title": "Snooze…", "card": {
        "type": "AdaptiveCard", "body": [{"type": "Input.ChoiceSet", "id": "for", "style": "compact", "value": "1h",
                                          "label": "Snooze for", "choices": choices}],
        "actions": [t.execute("Snooze", SNOOZE, {"key": key})]}}


def note_card(note: Note) -> dict[str, Any]:
    """A note as a card: its markdown (tables become card tables) and its buttons as Action.Execute."""
    return t.card(t.markdown_body(note.markdown), [t.execute(b.label, b.action, dict(b.value)) for b in note.buttons])


class TeamsAlertSink:
    platform = Platform.TEAMS

    def __init__(self, teams: TeamsChannel) -> None:
        self.teams = teams

    async def _reference(self, channel: str) -> dict[str, Any]:
        stored = await self.teams.handler.store.get_reference("teams", channel)
        if stored is None:
            raise DeliveryError(f"no Teams conversation reference for channel {channel}: install the healthbot app in "
                                "that team (or remove and re-add it) so healthbot can post there", permanent=True)
        return stored

    async def _run(self, work: Any) -> Any:
        try:
            return await work
        except (HttpOperationError, ConnectorError) as exc:
            status = exc.status if isinstance(exc, ConnectorError) else (
                exc.response.status_code if exc.response is not None else 0)
            if status in (401, 403, 404):
                raise DeliveryError(f"Bot Connector {status}: the bot was removed from the team or the channel is "
                                    "gone", permanent=True) from None
            raise DeliveryError(f"Bot Connector {status or exc}", permanent=False) from None

    async def post_root(self, channel: str, view: AlertView) -> dict[str, Any]:
        """A new post in the channel (Bot Connector `POST /v3/conversations` with the channel in
        channelData), from the reference stored when the app was installed in the team."""
        return await self._new_post(channel, t.card_message(alert_card(view),
                                                            f"{view.alert.name} is {view.alert.state}"))

    async def _new_post(self, channel: str, activity: dict[str, Any]) -> dict[str, Any]:
        stored = await self._reference(channel)
        reference = ConversationReference().deserialize(stored)
        tenant = reference.conversation.tenant_id if reference.conversation else None
        bot = Where.of(reference).bot
        parameters: dict[str, Any] = {
            "isGroup": True, "bot": bot, "channelData": {"channel": {"id": channel}}, "tenantId": tenant,
            "activity": activity}
        conversation_id, activity_id = await self._run(self.teams.connector.create(reference.service_url, parameters))
        return {"conversation_id": conversation_id, "activity_id": activity_id, "service_url": reference.service_url,
                "tenant": tenant or "", "bot": bot}

    async def find_root(self, channel: str, alert_key: str, since: float) -> dict[str, Any] | None:
        """A bot cannot read a Teams channel's history (that needs Microsoft Graph permissions), so a
        crash between posting a root and recording it can leave a second root in Teams."""
        return None

    def _thread_reference(self, ref: dict[str, Any]) -> ConversationReference:
        return ConversationReference(
            activity_id=ref["activity_id"], channel_id="msteams", service_url=ref["service_url"],
            bot=ChannelAccount().deserialize(ref["bot"]) if ref.get("bot") else None,
            conversation=ConversationAccount(id=ref["conversation_id"], is_group=True, conversation_type="channel",
                                             tenant_id=ref.get("tenant") or None),
        )

    async def update_root(self, channel: str, ref: dict[str, Any], view: AlertView) -> None:
        card = t.card_message(alert_card(view), f"{view.alert.name} is {view.alert.state}")
        await self._run(self.teams.connector.update(Where.of(self._thread_reference(ref)), ref["activity_id"], card))

    async def reply(self, channel: str, ref: dict[str, Any], text: str) -> None:
        message = {"type": "message", "text": text, "textFormat": "plain"}
        await self._run(self.teams.connector.send(Where.of(self._thread_reference(ref)), message))

    async def post_chart(self, channel: str, ref: dict[str, Any], chart: dict[str, Any], *, what: str) -> None:
        from adapters.teams.charts import card_charts

        elements = await card_charts([chart], what=what)
        if not elements:
            return
        message = t.card_message(t.card(elements), str(chart.get("title") or "chart"))
        try:
            await self._run(self.teams.connector.send(Where.of(self._thread_reference(ref)), message))
        except DeliveryError as exc:
            log.warning("the chart of %s was not posted: %s", what, exc.reason)

    async def remind(self, channel: str, ref: dict[str, Any], text: str, oncall: list[str]) -> None:
        """Teams mentions: `<at>…</at>` in the text and a `mention` entity per person."""
        people = [who for who in oncall if not (who[:1] in "UWS" and who.isalnum())]  # Slack ids are not Teams'
        entities = [{"type": "mention", "text": f"<at>{who}</at>", "mentioned": {"id": who, "name": who}}
                    for who in people]
        names = " ".join(f"<at>{who}</at>" for who in people)
        message = {"type": "message", "text": f"{names} {inert(text)}".strip(), "entities": entities}
        await self._run(self.teams.connector.send(Where.of(self._thread_reference(ref)), message))

    async def post_note(self, channel: str, ref: dict[str, Any] | None, note: Note) -> dict[str, Any]:
        message = t.card_message(note_card(note), note.summary or t.plain_summary(note.markdown))
        if ref is not None:
            await self._run(self.teams.connector.send(Where.of(self._thread_reference(ref)), message))
            return ref
        return await self._new_post(channel, message)

    async def post_answer(self, channel: str, ref: dict[str, Any], reply: Reply) -> None:
        """An answer the Bot Connector would not take when it was ready, from the outbox: `ref` is the
        question's conversation reference, so the answer still replies to the question."""
        await self._run(self.teams.send_reply(Where.of(ConversationReference().deserialize(ref["reference"])), reply))

    def thread_key(self, channel: str, ref: dict[str, Any]) -> ThreadKey:
        return ThreadKey(platform=Platform.TEAMS, workspace=str(ref.get("tenant") or ""), channel=channel,
                         thread=str(ref["conversation_id"]))

    async def ask_in_thread(self, channel: str, ref: dict[str, Any], message: Incoming) -> None:
        self.teams.ask(self._thread_reference(ref), message)
