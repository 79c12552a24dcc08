"""Slack's agent view at the wire: assistant_thread_started → greeting and suggested prompts; the first
question titles the thread; status lines while the answer streams; the channel in view reaches the
endpoint. The fake Slack records assistant.threads.*; the fake endpoint streams a ChatAgent answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.quick import SUGGESTED_PROMPTS
from tests.fakes.serving import Scripted
from tests.fakes.slack import fixture, steps_shown
from tests.test_slack import SlackRig
from tests.test_slack_streaming import rig, with_sub_agents  # noqa: F401  (rig: the fixture)

DM, THREAD = "D0123ABCDEF", "1712346300.000100"


@pytest.fixture(autouse=True)
def agent_answers(rig: SlackRig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The streaming rig, answering after a cost-agent call, every stage shown."""
    monkeypatch.setattr("adapters.slack.progress.STAGE_EVERY_S", 0.0)
    rig.serving.default = Scripted(events=with_sub_agents(["Costs rose 38% ", "yesterday."]), gap_s=0.2)


def question(text: str, ts: str, event_id: str, thread_ts: str = THREAD) -> dict[str, Any]:
    body = fixture("event_message_assistant_thread.json")
    body["event"].update(text=text, ts=ts, event_ts=ts, thread_ts=thread_ts)
    body["event_id"] = event_id
    return body


async def start_thread(rig: SlackRig) -> None:
    assert await rig.event(fixture("event_assistant_thread_started.json")) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("assistant.threads.setSuggestedPrompts"))


async def test_a_new_assistant_thread_greets_and_suggests_the_quick_questions(rig: SlackRig) -> None:
    await start_thread(rig)
    await rig.settle()
    [greeting] = rig.slack.called("chat.postMessage")
    assert (greeting["channel"], greeting["thread_ts"]) == (DM, THREAD) and "healthbot" in greeting["text"]
    [prompts] = rig.slack.called("assistant.threads.setSuggestedPrompts")
    assert (prompts["channel_id"], prompts["thread_ts"]) == (DM, THREAD)
    assert [p["message"] for p in prompts["prompts"]] == list(SUGGESTED_PROMPTS) and len(SUGGESTED_PROMPTS) == 4
    assert rig.serving.invocation_bodies() == []  # nobody asked anything yet


async def test_questions_are_titled_once_show_status_stream_in_the_thread_and_carry_the_channel_in_view(
        rig: SlackRig) -> None:
    await start_thread(rig)
    assert await rig.event(fixture("event_assistant_thread_context_changed.json")) == 200
    await rig.settle()
    assert await rig.event(question("why did costs spike", "1712346320.000200", "Ev0Q1")) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.stopStream"), timeout=15)
    await rig.settle()

    [title] = rig.slack.called("assistant.threads.setTitle")
    assert (title["channel_id"], title["thread_ts"], title["title"]) == (DM, THREAD, "why did costs spike")
    statuses = rig.slack.called("assistant.threads.setStatus")
    lines = [line for s in statuses for line in s.get("loading_messages") or []]
    assert statuses and all(s["thread_ts"] == THREAD for s in statuses)
    assert "Asking the cost agent…" in lines and "Reading what the cost agent found…" in lines
    [start] = rig.slack.called("chat.startStream")
    assert (start["channel"], start["thread_ts"]) == (DM, THREAD)
    answer = next(m for m in rig.slack.posted() if m.get("_ts") == start["_ts"])
    assert answer["text"] == "Costs rose 38% yesterday." and "context_actions" in json.dumps(answer["blocks"])
    assert not [p for p in rig.slack.called("chat.postMessage") if "Analyzing" in p.get("text", "")]  # no placeholder
    streamed = [c.params for c in rig.slack.api if c.method in ("chat.startStream", "chat.appendStream",
                                                                 "chat.stopStream")]
    assert set(steps_shown(streamed).values()) == {("Asking the cost agent…", "complete"),
                                                   ("Reading what the cost agent found…", "complete")}
    [sent] = rig.serving.invocation_bodies()
    assert sent["custom_inputs"]["viewing_channel"] == "C0PLATFORM1"  # the latest context, not the first

    assert await rig.event(question("and which job was it?", "1712346340.000300", "Ev0Q2")) == 200
    await rig.slack.wait_for(lambda: len(rig.serving.invocation_bodies()) == 2 and
                             len(rig.slack.called("chat.stopStream")) == 2, timeout=15)
    await rig.settle()
    assert len(rig.slack.called("assistant.threads.setTitle")) == 1  # the first question names the thread
    first, second = rig.serving.invocation_bodies()
    assert first["context"]["conversation_id"] == second["context"]["conversation_id"]  # one session per thread
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]


async def test_a_dm_thread_the_agent_view_never_started_takes_the_usual_path(rig: SlackRig) -> None:
    assert await rig.event(question("why did costs spike", "1712346420.000200", "Ev0Q9",
                                    thread_ts="1712346400.000100")) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.stopStream"), timeout=15)
    await rig.settle()
    assert not [c for c in rig.slack.api if c.method.startswith("assistant.threads.")]
    [sent] = rig.serving.invocation_bodies()
    assert "viewing_channel" not in sent["custom_inputs"]


async def test_slack_refusing_the_status_or_title_never_costs_the_answer(rig: SlackRig) -> None:
    await start_thread(rig)
    rig.slack.fail("assistant.threads.setTitle", 200, {"ok": False, "error": "channel_not_found"})
    rig.slack.fail("assistant.threads.setStatus", 200, {"ok": False, "error": "channel_not_found"}, times=10)
    assert await rig.event(question("why did costs spike", "1712346320.000200", "Ev0Q1")) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.stopStream"), timeout=15)
    await rig.settle()
    assert any(m["text"] == "Costs rose 38% yesterday." for m in rig.slack.posted())
