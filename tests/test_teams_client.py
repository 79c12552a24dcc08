"""Teams as Microsoft's own client shows it, over the wire with the fake Bot Connector and Teams' real
activity shapes: the tenant on every proactive create, streaming that survives a connection the
connector closed, a feedback control on every answer, citation markers, at most three suggested
actions and five actions on any card, and cards that keep what they said when a button is clicked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.teams.alerts import alert_card
from adapters.teams.translate import MAX_ACTIONS, help_card, plain_summary
from botbuilder.core import TurnContext
from botbuilder.schema import Activity
from bot.alerts.model import Alert, AlertSource, AlertView
from tests.fakes.connector import fixture as teams_fixture
from tests.fakes.serving import Scripted, answer_body
from tests.test_teams import TENANT, TeamsRig, rig  # noqa: F401  (the fixture)
from tests.test_teams_streaming import rig as streaming_rig

streaming = pytest.fixture(name="streaming")(streaming_rig.__wrapped__)  # a chat_agent endpoint that streams

GROUP_CHAT = "19:1FAKEgroupChatId0123456789abcdef@thread.v2"


def feedback_buttons(card: dict[str, Any]) -> int:
    return sum(1 for action in card.get("actions") or [] if action.get("verb") == "feedback")


def all_actions(card: dict[str, Any]) -> int:
    return len(card.get("actions") or [])


async def test_proactive_creates_carry_the_tenant_from_teams_channel_activity(rig: TeamsRig) -> None:
    """Teams sends `conversation.tenantId`; botbuilder reads `tenantID`: the stored reference keeps it now."""
    mention = rig.activity("message_channel_mention_new_post.json")
    assert mention["conversation"]["tenantId"] == TENANT and "tenantID" not in mention["conversation"]
    await rig.post(mention)
    await rig.connector.wait_for(lambda: rig.connector.cards())
    await rig.settle()
    stored = await rig.store.get_reference("teams", "19:0123456789abcdef0123456789abcdef@thread.tacv2")
    assert stored is not None and stored["conversation"]["tenantID"] == TENANT
    # the connect link sent privately from a channel: a 1:1 chat created with the tenant (Teams refuses one without)
    reference = TurnContext.get_conversation_reference(Activity().deserialize({**mention, "conversation": {
        **mention["conversation"], "tenantID": TENANT}}))
    await rig.teams.connect._privately(reference, {"type": "message", "text": "link"})
    [created] = [s.activity["_create"] for s in rig.connector.sent if s.kind == "create"]
    assert created["tenantId"] == TENANT and created["channelData"]["tenant"]["id"] == TENANT


async def test_a_connection_the_connector_closed_is_retried_once_and_streaming_goes_on(streaming: TeamsRig) -> None:
    rig = streaming
    rig.connector.drop_connections = 1  # the pooled connection is closed under the first send
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards(), timeout=15)
    await rig.settle()
    assert rig.connector.dropped == 1
    streamed = [s for s in rig.connector.sent if any(e.get("type") == "streaminfo" for e in s.activity.get("entities") or [])]
    sequences = [e["streamSequence"] for s in streamed for e in s.activity["entities"] if "streamSequence" in e]
    assert sequences and len(sequences) == len(set(sequences))  # nothing sent twice
    [final] = rig.connector.messages()
    assert any(e.get("streamType") == "final" for e in final.activity["entities"])  # still a stream, not a placeholder
    assert not [s for s in rig.connector.sent if s.kind == "update"]


async def test_every_answer_has_a_feedback_control_where_teams_shows_one(streaming: TeamsRig) -> None:
    rig = streaming  # streamed: personal chat streams, group chats and channels update a placeholder
    await rig.post(rig.activity("message_personal.json", id="17600001"))
    group = rig.activity("message_personal.json", id="17600002")
    group["conversation"] = {"id": GROUP_CHAT, "conversationType": "groupChat", "isGroup": True, "tenantId": TENANT}
    await rig.post(group)
    await rig.post(rig.activity("message_channel_mention_new_post.json"))
    await rig.connector.wait_for(lambda: len([s for s in rig.connector.sent if s.card]) >= 3, timeout=20)
    await rig.settle()
    answers = {s.conversation_id.split(";")[0]: s for s in rig.connector.sent if s.card}
    personal = next(s for conversation, s in answers.items() if conversation.startswith("a:"))
    assert personal.activity["channelData"]["feedbackLoopEnabled"] is True  # a new message: Teams' own loop
    assert feedback_buttons(answers[GROUP_CHAT].card) == 2 and answers[GROUP_CHAT].kind == "update"  # updated: the card's
    assert feedback_buttons(answers["19:0123456789abcdef0123456789abcdef@thread.tacv2"].card) == 2  # channel: the card's



async def test_sources_named_in_the_answer_carry_their_citation_marker(rig: TeamsRig) -> None:
    rig.serving.default = Scripted(200, answer_body("Costs rose 42% on system.billing.usage yesterday."))
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards())
    [answer] = rig.connector.messages()
    assert "system.billing.usage [1] yesterday" in json.dumps(answer.card)  # where the source is named
    citation = answer.activity["entities"][0]["citation"][0]
    assert citation["position"] == 1 and citation["appearance"]["name"] == "system.billing.usage"


async def test_suggested_actions_and_card_actions_stay_within_what_teams_shows(rig: TeamsRig) -> None:
    update = rig.activity("conversation_update_bot_added_personal.json")
    update["membersAdded"] = [{"id": update["recipient"]["id"]}]
    await rig.post(update)
    await rig.settle()
    [welcome] = rig.connector.messages()
    assert len(welcome.activity["suggestedActions"]["actions"]) == 3
    assert all_actions(welcome.card) == 5 and all_actions(help_card()) <= MAX_ACTIONS  # the quick questions stay on it
    alert = Alert(source=AlertSource.SQL_ALERT, key="sql:1", name="High Error Rate", state="TRIGGERED",
                  links={"Open alert": "https://dbc.example.com/sql/alerts/1", "Query": "https://dbc.example.com/q/1",
                         "Dashboard": "https://dbc.example.com/d/1"})
    view = AlertView(alert=alert, first_seen=alert.time, last_seen=alert.time)
    assert all_actions(alert_card(view)) == MAX_ACTIONS


async def test_clicked_cards_keep_what_they_said(rig: TeamsRig) -> None:
    invoke = teams_fixture("invoke_adaptive_card_action_execute.json")
    invoke.update(serviceUrl=rig.connector.url + "/")
    invoke["value"]["action"].update(verb="quick", data={"name": "costs"})
    status, body = await rig.post(invoke)
    assert status == 200 and body["type"] == "application/vnd.microsoft.activity.message"  # the welcome stays
    rig.serving.default = Scripted(500, {"error_code": "INTERNAL_ERROR"})
    await rig.post(rig.activity("message_personal.json", id="17600009"))
    await rig.connector.wait_for(lambda: any("request id" in json.dumps(c) for c in rig.connector.cards()), timeout=15)
    failed = next(c for c in rig.connector.cards() if "request id" in json.dumps(c))
    [retry] = [a for a in failed["actions"] if a.get("verb") == "retry"]
    invoke["value"]["action"].update(verb="retry", data=retry["data"])
    status, body = await rig.post(invoke)
    kept = json.dumps(body["value"], ensure_ascii=False)
    assert status == 200 and "Retrying" in kept and retry["data"]["request_id"] in kept
    assert failed["body"][0]["text"] in kept  # the error's words stay


def test_the_notification_summary_keeps_the_answers_characters() -> None:
    assert plain_summary("**nightly_customer_etl** failed: `__init__` and _twice_") == \
        "nightly_customer_etl failed: init and twice"
