"""App Home at the wire: `app_home_opened` → views.publish with the quick questions, open alert threads,
the endpoint's served version and healthbot's own 24 h figures; at most once a minute per person; a
guest sees the refusal; a quick question clicked there is answered in a DM thread."""

from __future__ import annotations

import json
import time
from typing import Any

from adapters.slack import home
from bot.deploy.rollout import Seen
from bot.quick import SUGGESTED_PROMPTS
from bot.store import RequestLogRow
from bot.store.base import AlertThread, Change
from tests.fakes.slack import fixture
from tests.test_slack import SlackRig, rig  # noqa: F401  (the fixture)


def opened(user: str = "U0USER1234", tab: str = "home") -> dict[str, Any]:
    body = fixture("event_app_home_opened.json")
    body["event"].update(user=user, tab=tab)
    return body


def page(call: dict[str, Any]) -> str:
    assert call["view"]["type"] == "home"
    return json.dumps(call["view"]["blocks"], ensure_ascii=False)


async def seed(rig: SlackRig) -> None:
    store = rig.store
    rig.slack.members["C0PLATFORM1"] = ["U0BOT12345", "U0USER5678", "U0USER1234"]  # two pages: the cursor is followed
    now = time.time()
    await store.log_request(RequestLogRow(request_id="r1", ts=now - 60, platform="slack", workspace="T0123ABCDE",
                                          channel="C0123ABCDEF", thread="1.1", session_id="s", user_id="u",
                                          question="q", answer="a", latency_ms=1200.0, served_version="7"))
    await store.record_feedback("r1", user_id="U0USER1234", value=1)
    await store.alerts.save_thread(AlertThread("a1", "slack:C0PLATFORM1", {"ts": "1712340000.000100", "team": "T0123ABCDE"},
                                               "TRIGGERED", now - 600, now - 600, now - 60, 1, "", False,
                                               {"name": "Daily cost above budget"}))
    await store.alerts.save_thread(AlertThread("a2", "slack:C0PLATFORM1", {"ts": "1712340000.000200", "team": "T0123ABCDE"},
                                               "OK", now - 300, now - 900, now - 300, 1, "", False, {"name": "Resolved one"}))
    fence = await store.alerts.take_lease("test", "me", 30)
    assert fence is not None
    seen = Seen(config="12", served="v7", version="7", model="main.health.orchestrator", update="NOT_UPDATING")
    await store.alerts.observe([Change("deploy:health_monitor_orchestrator", None, seen.dumps(), now - 3600)], fence=fence)


async def test_opening_the_home_tab_publishes_a_live_page(rig: SlackRig) -> None:
    await seed(rig)
    assert await rig.event(opened()) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("views.publish"))
    [published] = rig.slack.called("views.publish")
    text = page(published)
    assert published["user_id"] == "U0USER1234"
    assert [b["type"] for b in published["view"]["blocks"]][:3] == ["header", "section", "actions"]
    assert "quick_costs" in text and "quick_health" in text
    assert "https://subarachnoid.slack.com/archives/C0PLATFORM1/p1712340000000100|Daily cost above budget" in text
    assert "Resolved one" not in text  # only open alerts
    assert "serves *v7* (config 12)" in text
    assert "*Questions*\\n1" in text and "*👍 share*\\n100%" in text


async def test_the_page_is_published_at_most_once_a_minute_per_person(rig: SlackRig, monkeypatch: Any) -> None:
    for _ in range(3):
        assert await rig.event(opened()) == 200
    assert await rig.event(opened(tab="messages")) == 200  # the Messages tab is not the Home page
    assert await rig.event(opened(user="U0USER5678")) == 200  # another person has their own minute
    await rig.settle()
    assert [c["user_id"] for c in rig.slack.called("views.publish")] == ["U0USER1234", "U0USER5678"]
    monkeypatch.setattr(home, "REFRESH_EVERY_S", 0.0)  # a minute later
    assert await rig.event(opened()) == 200
    await rig.settle()
    assert len(rig.slack.called("views.publish")) == 3


async def test_a_guest_sees_the_refusal_not_the_figures(rig: SlackRig) -> None:
    await seed(rig)
    guest = fixture("webapi_users_info_guest_single_channel.json")
    guest["user"]["id"] = "U0GUEST001"
    rig.slack.users["U0GUEST001"] = guest
    assert await rig.event(opened(user="U0GUEST001")) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("views.publish"))
    text = page(rig.slack.called("views.publish")[0])
    assert "guest accounts are not included" in text and "Daily cost above budget" not in text


async def test_a_quick_question_from_home_is_answered_in_a_dm_thread(rig: SlackRig) -> None:
    assert await rig.action(fixture("interactive_block_actions_home.payload.json")) == 200
    await rig.slack.wait_for(lambda: any("Costs rose 42%." in m["text"] for m in rig.slack.posted()))
    await rig.settle()
    [opened_dm] = rig.slack.called("conversations.open")
    assert opened_dm["users"] == "U0USER1234"
    root, answer = [m for m in rig.slack.posted()]
    assert root["channel"] == answer["channel"] == "D0123ABCDEF" and "Why did costs spike yesterday?" in root["text"]
    assert answer["thread_ts"] == root["_ts"]


async def test_opening_the_messages_tab_sets_four_suggested_prompts_without_a_thread(rig: SlackRig) -> None:
    """The agent messaging experience: `app_home_opened` with `tab: messages` replaces
    `assistant_thread_started`; the prompts are set for the DM itself (no thread_ts), at most once a minute."""
    body = fixture("event_app_home_opened_messages.json")
    for _ in range(2):
        assert await rig.event(body) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("assistant.threads.setSuggestedPrompts"))
    await rig.settle()
    [prompts] = rig.slack.called("assistant.threads.setSuggestedPrompts")
    assert prompts["channel_id"] == body["event"]["channel"] and not prompts.get("thread_ts")
    assert [p["message"] for p in prompts["prompts"]] == list(SUGGESTED_PROMPTS) and len(prompts["prompts"]) <= 4
    assert rig.slack.called("views.publish") == [] and rig.slack.called("chat.postMessage") == []


async def test_app_context_changed_is_accepted_and_answers_nothing(rig: SlackRig) -> None:
    body = fixture("event_app_context_changed.json")
    body.update(team_id="T0123ABCDE", api_app_id="A0123ABCDE")
    assert await rig.event(body) == 200
    await rig.settle()
    assert {call.method for call in rig.slack.api} <= {"auth.test"}
