"""The Teams activity handler: which activities are questions, help, installs or card actions."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import (
    AdaptiveCardInvokeResponse,
    AdaptiveCardInvokeValue,
    ChannelAccount,
)

from adapters.teams import translate as t
from adapters.teams.connect import WORDS as CONNECT_WORDS
from adapters.teams.deploys import VERBS as DEPLOY_VERBS
from adapters.teams.deploys import TeamsDeploys, deploy_word
from bot.alerts.delivery import ACKNOWLEDGE, INVESTIGATE, SNOOZE
from bot.alerts.digest import digest_for
from bot.alerts.schedule import on_demand_period
from bot.models import ErrorKind, Incoming, Platform, Reply
from bot.quick import QUICK_QUESTIONS
from bot.targets import ChannelTarget

if TYPE_CHECKING:
    from adapters.teams.app import TeamsChannel

log = logging.getLogger(__name__)


MESSAGE_CONTENT_TYPE = "application/vnd.microsoft.activity.message"  # Universal Actions: a line for the clicker


def card_response(content: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=t.CARD_CONTENT_TYPE, value=content)


def message_response(text: str) -> dict[str, Any]:
    """A message-type invoke answer (the card stays as it is), as the JSON body itself: its `value`
    is a string, and botbuilder's msrest serializer, which types `value` as an object, raised on it."""
    return {"statusCode": 200, "type": MESSAGE_CONTENT_TYPE, "value": text}


class TeamsBot(TeamsActivityHandler):
    def __init__(self, teams: TeamsChannel) -> None:
        self.teams = teams
        self.deploys = TeamsDeploys(teams)

    async def on_turn(self, turn_context: TurnContext) -> None:
        if not self.teams.tenant_allowed(turn_context.activity):
            return
        await super().on_turn(turn_context)

    # -- messages ---------------------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        await self.teams.remember(activity)
        text = t.clean_text(activity)
        if t.is_channel(activity) and not t.mentions_bot(activity):
            if not await self.teams.handler.takes_part_in(t.thread_key(activity)):
                return  # a reply in a thread healthbot is not part of
        word = text.lower().strip(" .!")
        if word in t.HELP_WORDS:
            await self.teams.send(turn_context, _card(t.help_card()))
            return
        if word in t.NEW_WORDS:
            await self.teams.handler.new_session(t.thread_key(activity))
            await self.teams.send(turn_context, "Started a new conversation.")
            return
        if word == "digest":
            await self._digest(turn_context, t.to_incoming(activity, text))
            return
        if word in CONNECT_WORDS:
            await self.teams.connect.said(turn_context, t.to_incoming(activity, text), word)
            return
        deploy = deploy_word(text)
        if deploy is not None:
            await self.deploys.said(turn_context, t.to_incoming(activity, text), *deploy)
            return
        await self._ask(turn_context, t.to_incoming(activity, text))

    async def _digest(self, turn_context: TurnContext, message: Incoming) -> None:
        """`digest`: the digest of the week until now, in this conversation, holding only what the asker
        may see (bot.alerts.digest.digest_for); a connect prompt instead in user mode."""
        from adapters.teams.alerts import note_card

        asker = await self.teams.identify(turn_context, message)
        refusal = await self.teams.handler.refusal_for(asker)
        if refusal is not None:
            if refusal.content:  # empty: over the request limit, nothing shown
                await self.teams.send(turn_context, refusal.content)
            return
        settings = self.teams.settings
        period = on_demand_period(settings.digest, settings.digest_tz, time.time())
        outcome = await digest_for(self.teams.handler, asker, period)
        if outcome.instead is not None:
            await self.teams.connect.prompt(TurnContext.get_conversation_reference(turn_context.activity), asker,
                                            outcome.instead)
            return
        if outcome.digest is None:
            return
        for note in outcome.digest.notes(str(ChannelTarget(Platform.TEAMS, t.channel_of(turn_context.activity)))):
            if note is not None:
                await self.teams.send(turn_context, t.card_message(note_card(note), note.summary))

    async def _ask(self, turn_context: TurnContext, message: Incoming) -> None:
        message = await self.teams.identify(turn_context, message)
        self.teams.ask(TurnContext.get_conversation_reference(turn_context.activity), message)

    # -- installation -----------------------------------------------------------------------

    async def on_teams_members_added(
        self, teams_members_added: list[ChannelAccount], team_info: Any, turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(member.id == bot_id for member in teams_members_added):
            await self.teams.remember(turn_context.activity)
            welcome = _card(t.help_card(welcome=True))
            if t.is_personal(turn_context.activity):  # in personal chat, the quick questions as suggestions too
                welcome["suggestedActions"] = t.quick_suggestions()
            await self.teams.send(turn_context, welcome)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self.teams.remember(turn_context.activity)

    # -- card actions -----------------------------------------------------------------------

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        """Workaround: ActivityHandler serializes the card-action response, then botbuilder's aiohttp
        CloudAdapter.process serializes that dict again and crashes (AttributeError: 'dict' object has
        no attribute 'is_xml_model'). Handing back the model lets it be serialized exactly once."""
        if turn_context.activity.name == "message/submitAction":
            return await self._feedback_loop(turn_context)
        if turn_context.activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        if not isinstance(turn_context.activity.value, dict) or not isinstance(turn_context.activity.value.get("action"), dict):
            return InvokeResponse(status=400, body=AdaptiveCardInvokeResponse(
                status_code=400, type="application/vnd.microsoft.error",
                value={"code": "BadRequest", "message": "missing value.action"}))
        invoke_value = AdaptiveCardInvokeValue(action=turn_context.activity.value["action"])
        return InvokeResponse(status=200, body=await self.on_adaptive_card_invoke(turn_context, invoke_value))

    async def on_adaptive_card_invoke(
        self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue
    ) -> AdaptiveCardInvokeResponse | dict[str, Any]:
        action = invoke_value.action if isinstance(invoke_value.action, dict) else {}
        verb = action.get("verb") if isinstance(action.get("verb"), str) else ""
        data: dict[str, Any] = action["data"] if isinstance(action.get("data"), dict) else {}
        activity = turn_context.activity
        if verb == t.VERB_FEEDBACK:
            return await self._feedback(turn_context, data)
        if verb == t.VERB_RETRY:  # the card keeps its words and request id, and says so
            await self._ask(turn_context, t.to_incoming(activity, "retry"))
            failed = Reply(content=str(data.get("message") or "That answer failed."), error=ErrorKind.UNAVAILABLE,
                           request_id=str(data.get("request_id") or ""))
            return card_response(t.error_card(failed, retrying=True))
        if verb in (INVESTIGATE, ACKNOWLEDGE, SNOOZE) and self.teams.dispatcher is not None:
            return await self._alert_action(turn_context, str(verb), data)
        if verb in DEPLOY_VERBS:
            clicker = await self.teams.identify(turn_context, t.to_incoming(activity, f"{verb} {data}"[:200]))
            refusal = await self._refusal(clicker)
            if refusal is not None:
                return refusal
            answer = await self.deploys.clicked(turn_context, verb, data, clicker)
            return message_response(answer) if isinstance(answer, str) else card_response(answer)
        if verb == t.VERB_QUICK and isinstance(data.get("name"), str) and data["name"] in QUICK_QUESTIONS:
            question = QUICK_QUESTIONS[data["name"]]
            await self._ask(turn_context, t.to_incoming(activity, question))
            return message_response(f"Asking: {question}")  # the welcome keeps its buttons
        return AdaptiveCardInvokeResponse(status_code=400, type="application/vnd.microsoft.error",
                                          value={"code": "NotSupported", "message": f"unknown action {verb!r}"})

    async def _alert_action(self, turn_context: TurnContext, verb: str,
                            data: dict[str, Any]) -> AdaptiveCardInvokeResponse | dict[str, Any]:
        from adapters.teams.alerts import alert_card

        dispatcher = self.teams.dispatcher
        assert dispatcher is not None
        # Where the click happened comes from Teams' envelope, never from the card's data: an action
        # names an alert of this conversation or does nothing (DESIGN.md "Who may see what").
        channel = t.conversation_of(turn_context.activity)
        target, key = ChannelTarget(Platform.TEAMS, channel), str(data.get("key", ""))
        who = turn_context.activity.from_property
        clicker = await self.teams.identify(turn_context, t.to_incoming(turn_context.activity, f"{verb} {key}"))
        refusal = await self._refusal(clicker)
        if refusal is not None:  # an external or a guest cannot acknowledge an alert or spend the endpoint on it
            return refusal
        if await dispatcher.view_for(target, key) is None:
            log.info("Teams %s on alert %r ignored: it has no thread in conversation %s", verb, key[:80], channel[:80])
            return message_response("That alert is not known in this conversation.")
        name = (who.name or who.id) if who else "someone"
        if verb == ACKNOWLEDGE:
            await dispatcher.acknowledge(target, key, name)
        elif verb == SNOOZE:
            if await dispatcher.snooze(target, key, name, str(data.get("for") or "")) is None:
                return message_response("That alert or snooze is not known here any more.")
        else:
            self.teams.spawn(dispatcher.investigate_key(target, key, clicker.user_id, clicker.membership,
                                                        clicker.user_email))
        view = await dispatcher.view_for(target, key)
        return card_response(alert_card(view) if view else t.notice("That alert is no longer known."))

    async def _refusal(self, clicker: Incoming) -> dict[str, Any] | None:
        """A barred clicker's refusal, shown to them alone; None to go on."""
        refusal = await self.teams.handler.refusal_for(clicker)
        if refusal is None:
            return None
        return message_response(refusal.content or "Too many requests: try again in a minute.")

    async def _feedback_loop(self, turn_context: TurnContext) -> InvokeResponse:
        """Teams' own 👍 / 👎 (the feedback loop): `message/submitAction` with `actionName: feedback`,
        `actionValue.reaction` like / dislike and the person's optional words in `actionValue.feedback`
        (a JSON string with `feedbackText`). Recorded like the card's buttons; always answered 200."""
        activity = turn_context.activity
        value: dict[str, Any] = activity.value if isinstance(activity.value, dict) else {}
        action: dict[str, Any] = value["actionValue"] if isinstance(value.get("actionValue"), dict) else {}
        reaction = action.get("reaction")
        if value.get("actionName") != "feedback" or reaction not in ("like", "dislike"):
            return InvokeResponse(status=200, body={})
        clicker = await self.teams.identify(turn_context, t.to_incoming(activity, "feedback"))
        if await self.teams.handler.refusal_for(clicker) is not None:
            return InvokeResponse(status=200, body={})  # members grade answers; the refusal is logged
        text = ""
        try:
            words = json.loads(action.get("feedback") or "{}")
            text = str(words.get("feedbackText") or "") if isinstance(words, dict) else ""
        except (TypeError, ValueError):
            text = ""
        request_id = self.teams.answers.get(str(activity.reply_to_id or ""), "")
        user = str(activity.from_property.aad_object_id or activity.from_property.id) if activity.from_property else ""
        if not request_id or not await self.teams.handler.record_feedback(
                request_id, user_id=user, value=1 if reaction == "like" else -1, comment=text, voter=clicker.asker):
            log.info("feedback on an answer healthbot no longer knows (activity %s)", activity.reply_to_id)
        return InvokeResponse(status=200, body={})

    async def _feedback(self, turn_context: TurnContext,
                        data: dict[str, Any]) -> AdaptiveCardInvokeResponse | dict[str, Any]:
        activity = turn_context.activity
        request_id = str(data.get("request_id", ""))
        clicker = await self.teams.identify(turn_context, t.to_incoming(activity, f"feedback {request_id}"))
        refusal = await self._refusal(clicker)
        if refusal is not None:  # an external or a guest does not grade the answers members get
            return refusal
        positive = data.get("value", 1) not in (-1, "-1")  # the card sends 1 or -1
        user = str(activity.from_property.aad_object_id or activity.from_property.id) if activity.from_property else ""
        store = self.teams.handler.store
        row = await store.get_request(request_id)
        if row is None or row.platform != Platform.TEAMS.value or row.channel != t.channel_of(activity):
            log.info("Teams feedback on request %r ignored: not an answer of this conversation", request_id[:40])
            return card_response(t.notice("That answer is no longer known here, so the feedback was not recorded."))
        if not await self.teams.handler.record_feedback(request_id, user_id=user, value=1 if positive else -1,
                                                        voter=clicker.asker):
            return card_response(t.notice("That answer is no longer known, so the feedback was not recorded."))
        answer = t.answer_cards(Reply(content=row.answer, sources=row.sources,
                                      confidence=row.confidence, domains=row.domains,
                                      request_id=request_id))[-1]
        return card_response(t.thanked(answer, positive))


def _card(content: dict[str, Any]) -> dict[str, Any]:
    return t.card_message(content, "healthbot")
