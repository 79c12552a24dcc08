"""Streamed answers in Slack, at the wire: the fake endpoint streams (ChatAgent SSE), the fake Slack
records chat.startStream / appendStream / stopStream, or refuses them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.config import load_settings
from adapters.host.server import create_app
from bot.store import SqliteStore
from bot.text import safe_prefix
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.serving import FakeServing, Scripted
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, steps_shown
from tests.test_slack import ROOT_TS, SlackRig, mention

PIECES = ["**Costs rose 38%** yesterday. ", "The driver is ", "nightly_customer_etl.\n\n", "| Job | Cost |\n",
          "|---|---|\n", "| nightly_customer_etl | $607 |\n", "| bi-serving | $277 |\n", "\nIt moved to ",
          "all-purpose compute.\n", "```sql\nSELECT 1\n", "```\n", "Ask *which job was it?*"]
WHOLE = "".join(PIECES)


def chat_agent_events(pieces: list[str]) -> list[str]:
    events = [json.dumps({"delta": {"role": "assistant", "content": p, "id": "m1"}}) for p in pieces]
    events.append(json.dumps({"delta": {"role": "assistant", "content": "", "id": "m1"}, "finish_reason": "stop",
                              "custom_outputs": {"sources": ["system.billing.usage"], "confidence": 0.9,
                                                 "domains": ["costs"]}}))
    return events


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> AsyncIterator[SlackRig]:
    slack = FakeSlack()
    await slack.start()
    for name, value in {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                        "SLACK_API_URL": slack.api_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("adapters.slack.progress.PLACEHOLDER_DELAY_S", 0.2)
    fake_serving.default = Scripted(events=chat_agent_events(PIECES), gap_s=0.3)
    app: web.Application = create_app(load_settings(), store=SqliteStore(tmp_path / "bot.db"),
                                      engine=make_client(fake_serving, fmt="chat_agent"))
    runner, url = await serve(app)
    yield SlackRig(slack, fake_serving, url, app)
    await runner.cleanup()
    await slack.stop()


def calls(slack: FakeSlack, *methods: str) -> list[tuple[str, dict[str, Any]]]:
    return [(c.method, c.params) for c in slack.api if c.method in methods]


async def test_an_answer_grows_in_its_thread_then_ends_as_today(rig: SlackRig) -> None:
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.stopStream"), timeout=15)
    await rig.settle()
    [start] = rig.slack.called("chat.startStream")
    assert (start["thread_ts"], start["recipient_user_id"], start["recipient_team_id"]) == (ROOT_TS, "U0USER1234",
                                                                                            "T0123ABCDE")
    stream = calls(rig.slack, "chat.startStream", "chat.appendStream", "chat.stopStream")
    stamps = [c.at for c in rig.slack.api if c.method in ("chat.startStream", "chat.appendStream")]
    assert len(stamps) >= 2 and all(b - a >= 0.9 for a, b in zip(stamps, stamps[1:]))  # at most ~1 a second
    shown = ""
    for method, params in stream[:-1]:  # every moment reads whole: no half table, no open code fence
        shown += params["markdown_text"]
        assert shown.count("```") % 2 == 0 and not shown.splitlines()[-1].startswith("|")
    [final] = rig.slack.posted()  # one message: the placeholder gave way to the stream
    [stop] = rig.slack.called("chat.stopStream")
    assert [b["type"] for b in stop["blocks"]] == ["context", "context_actions"]  # the stream ends as it grew
    # then the finished message takes its table as a data_table block (sortable, paged), text around it
    kinds = [b["type"] for b in final["blocks"]]
    assert kinds == ["markdown", "data_table", "markdown", "context", "context_actions"]
    assert "Confidence 90%" in json.dumps(final["blocks"])
    assert final["blocks"][0]["text"] == "**Costs rose 38%** yesterday. The driver is nightly_customer_etl."
    table = final["blocks"][1]
    assert [[c["text"] for c in row] for row in table["rows"]] == [["Job", "Cost"], ["nightly_customer_etl", "$607"],
                                                                   ["bi-serving", "$277"]]
    assert table["rows"][1][1] == {"type": "raw_number", "value": 607.0, "text": "$607"}
    assert final["blocks"][2]["text"].startswith("It moved to all-purpose compute.")


async def test_a_streamed_answer_longer_than_a_message_continues_in_follow_ups(rig: SlackRig) -> None:
    paragraphs = [f"Paragraph {i}: " + "x" * 900 + "\n\n" for i in range(30)]  # ~27,000 characters
    rig.serving.default = Scripted(events=chat_agent_events(paragraphs), gap_s=0.02)
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.stopStream"), timeout=15)
    await rig.settle()
    answers = [m for m in rig.slack.posted() if "Paragraph" in m["text"] or "Paragraph" in json.dumps(m["blocks"])]
    parts = [b["text"] for m in answers for b in m["blocks"] if b["type"] == "markdown"]
    assert len(answers) == 3 and all(len(p) <= 12_000 for p in parts)
    for i in range(30):  # every paragraph once, none cut
        assert sum(p.count(f"Paragraph {i}: " + "x" * 900) for p in parts) == 1, i
    assert [b["type"] for b in answers[-1]["blocks"]][-1] == "context_actions"  # feedback on the last part
    assert all(m.get("thread_ts") == ROOT_TS for m in answers)


async def test_where_slack_refuses_streaming_a_placeholder_is_updated_at_most_once_a_second(rig: SlackRig) -> None:
    rig.slack.fail("chat.startStream", 200, {"ok": False, "error": "not_allowed_token_type"})
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: any("context_actions" in json.dumps(u.get("blocks")) for u in rig.slack.called("chat.update")),
                             timeout=15)
    await rig.settle()
    [final] = rig.slack.posted()
    assert "Confidence 90%" in json.dumps(final["blocks"]) and "data_table" in json.dumps(final["blocks"])
    assert final["blocks"][0]["text"].startswith("**Costs rose 38%**") and final["blocks"][2]["text"].startswith("It moved")
    updates = [c.at for c in rig.slack.api if c.method == "chat.update"]
    growing = [c.params["blocks"][0]["text"] for c in rig.slack.api
               if c.method == "chat.update" and c.params["blocks"][0].get("type") == "markdown"]
    assert len(growing) >= 3 and growing[0] != growing[-1] and WHOLE.startswith(growing[1])
    assert all(b - a >= 0.9 for a, b in zip(updates[:-1], updates[1:-1]))  # the final update not counted


async def test_a_stream_that_breaks_midway_ends_with_what_was_said_and_retry(rig: SlackRig,
                                                                           fake_serving: FakeServing) -> None:
    fake_serving.default = Scripted(events=chat_agent_events(PIECES), gap_s=0.6, cut_after=4)
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: any("retry" in json.dumps(p.get("blocks")) for p in rig.slack.posted()),
                             timeout=15)
    await rig.settle()
    [final] = rig.slack.posted()
    blocks = json.dumps(final["blocks"])
    assert final["blocks"][0]["type"] == "markdown" and final["blocks"][0]["text"].startswith("**Costs rose 38%**")
    assert "unavailable" in blocks and "Retry" in blocks
    assert len(rig.serving.invocation_bodies()) == 1  # text had been shown: not asked again


def test_safe_prefix_holds_back_half_tables_open_fences_and_half_words() -> None:
    assert safe_prefix("Costs rose 38% yester") == "Costs rose 38% "
    assert safe_prefix("Intro\n| a | b |\n|---|") == "Intro\n"
    assert safe_prefix("Intro\n| a | b |\n|---|---|\n| 1 | 2 |\nafter") == "Intro\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert safe_prefix("Text\n```sql\nSELECT") == "Text\n"
    assert safe_prefix("Text\n```sql\nSELECT 1\n```\nmore words") == "Text\n```sql\nSELECT 1\n```\nmore "


async def test_text_held_back_by_the_pace_is_shown_within_the_second_without_new_text() -> None:
    """A sub-agent may think for a while after a sentence: the sentence must not wait for it."""
    import asyncio

    from bot.pacing import Pacer

    flushed: list[float] = []

    async def flush() -> None:
        flushed.append(asyncio.get_running_loop().time())

    pacer = Pacer(0.2, flush)
    started = asyncio.get_running_loop().time()
    assert pacer.due() and not pacer.due() and not pacer.due()  # one flush scheduled, not two
    await asyncio.sleep(0.35)
    assert len(flushed) == 1 and 0.15 <= flushed[0] - started <= 0.3
    await pacer.stop()


def with_sub_agents(pieces: list[str]) -> list[str]:
    """A ChatAgent stream that calls the cost agent, reads its result, then answers."""
    call = {"delta": {"role": "assistant", "content": "", "id": "m0", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "cost_agent", "arguments": "{}"}}]}}
    result = {"delta": {"role": "tool", "content": "{\"usd\": 607}", "name": "cost_agent", "tool_call_id": "c1",
                        "id": "m0t"}}
    return [json.dumps(call), json.dumps(result), *chat_agent_events(pieces)]


async def test_each_sub_agent_call_is_a_step_of_the_streamed_message(rig: SlackRig) -> None:
    rig.serving.default = Scripted(events=with_sub_agents(PIECES), gap_s=0.3)
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.stopStream"), timeout=15)
    await rig.settle()
    [start] = rig.slack.called("chat.startStream")
    assert start["task_display_mode"] == "timeline" and "markdown_text" not in start  # it starts with the step
    assert [(c["title"], c["status"]) for c in start["chunks"]] == [("Asking the cost agent…", "in_progress")]
    stream = [p for _, p in calls(rig.slack, "chat.startStream", "chat.appendStream", "chat.stopStream")]
    assert steps_shown(stream) == {"step-1": ("Asking the cost agent…", "complete"),
                                   "step-2": ("Reading what the cost agent found…", "complete")}
    stamps = [c.at for c in rig.slack.api if c.method in ("chat.startStream", "chat.appendStream")]
    assert all(b - a >= 0.9 for a, b in zip(stamps, stamps[1:]))  # steps share the once-a-second pace
    [final] = rig.slack.posted()
    assert final["text"] == WHOLE and "context_actions" in json.dumps(final["blocks"])
    assert not rig.slack.called("chat.update")  # no placeholder line, and the steps' timeline keeps its markdown table


async def test_where_slack_refuses_task_chunks_stages_are_placeholder_lines_and_text_still_streams(
        rig: SlackRig) -> None:
    rig.serving.default = Scripted(events=with_sub_agents(PIECES), gap_s=0.3)
    rig.slack.fail("chat.startStream", 200, {"ok": False, "error": "invalid_arguments"})
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.stopStream"), timeout=15)
    await rig.settle()
    lines = [json.dumps(p.get("blocks")) for p in rig.slack.called("chat.postMessage") + rig.slack.called("chat.update")]
    assert any("Asking the cost agent" in line for line in lines)  # the stage, as today
    [start] = [p for p in rig.slack.called("chat.startStream") if "_failed" not in p]
    assert "chunks" not in start and start["markdown_text"]
    stream = [p for _, p in calls(rig.slack, "chat.appendStream", "chat.stopStream")]
    assert not steps_shown(stream)
    [final] = rig.slack.posted()  # no steps shown: the finished message takes its table as a data_table
    assert [b["type"] for b in final["blocks"]][:3] == ["markdown", "data_table", "markdown"]
