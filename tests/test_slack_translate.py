"""Slack translation, table-driven from the payload fixtures; the manifest against the code."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from slack_sdk.models.blocks import ContextActionsBlock

from adapters.slack import translate as t
from adapters.slack.manifest import (
    AGENT_EVENTS,
    ASSISTANT_EVENTS,
    EVENT_SCOPES,
    METHOD_SCOPES,
    build_manifest,
    render_manifest,
)
from bot.models import Reply
from bot.text import split_markdown

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
ROOT = Path(__file__).resolve().parents[1]
BOT = "U0BOT12345"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("event_app_mention_channel.json",
         dict(thread="1712345678.123456", text="why did costs spike", is_mention=True, is_dm=False, is_thread_followup=False)),
        ("event_app_mention_thread.json",
         dict(thread="1712345678.123456", text="and what about yesterday?", is_mention=True, is_thread_followup=False)),
        ("event_message_thread_reply_no_mention.json",
         dict(thread="1712345678.123456", text="was it the nightly ETL job?", is_mention=False, is_thread_followup=True)),
        ("event_message_im.json", dict(thread="", channel="D0123ABCDEF", is_dm=True, text="why did costs spike")),
        ("event_message_subtype_bot_message.json", None),
        ("event_message_changed.json", None),
    ],
)
def test_event_to_incoming(name: str, expected: dict | None) -> None:
    body = load(name)
    message = t.event_to_incoming(body, body["event"], BOT)
    if expected is None:
        assert message is None
        return
    assert message is not None
    assert message.key.workspace == "T0123ABCDE"
    assert message.event_id == f"slack:T0123ABCDE:{body['event']['channel']}:{body['event']['ts']}"
    for field, value in expected.items():
        actual = getattr(message.key, field) if field in ("thread", "channel") else getattr(message, field)
        assert actual == value, field


def test_app_mention_and_message_for_one_post_share_the_dedupe_key() -> None:
    body = load("event_app_mention_thread.json")
    as_message = dict(body["event"], type="message", channel_type="channel")
    one = t.event_to_incoming(body, body["event"], BOT)
    two = t.event_to_incoming(body, as_message, BOT)
    assert one and two and one.event_id == two.event_id and two.is_mention


def test_own_and_top_level_unmentioned_messages_are_not_questions() -> None:
    body = load("event_message_thread_reply_no_mention.json")
    assert t.event_to_incoming(body, dict(body["event"], user=BOT), BOT) is None
    top_level = {k: v for k, v in body["event"].items() if k != "thread_ts"}
    assert t.event_to_incoming(body, top_level, BOT) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("<@U0BOT12345> why?", "why?"),
    ("hey <@U0BOT12345|healthbot>   costs  ", "hey costs"),
    ("<@U0USER1234> and <@U0BOT12345> look", "<@U0USER1234> and look"),
])
def test_strip_mention(text: str, expected: str) -> None:
    assert t.strip_mention(text, BOT) == expected


def test_fallback_text_escapes_and_converts() -> None:
    assert t.to_mrkdwn("**Costs** <!channel> & [docs](https://x.example/y)") == "*Costs* &lt;!channel&gt; &amp; <https://x.example/y|docs>"


def test_split_is_lossless_and_keeps_code_fences_balanced() -> None:
    code = "```sql\n" + "\n".join(f"SELECT {i};" for i in range(2000)) + "\n```"
    text = "Intro paragraph.\n\n" + code + "\n\nOutro."
    parts = split_markdown(text, limit=5000)
    assert len(parts) > 3 and all(len(p) <= 5000 + 8 for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)
    joined = "".join(parts)
    assert all(f"SELECT {i};" in joined for i in range(2000)) and "Outro." in parts[-1]


def test_answer_blocks_and_error_blocks() -> None:
    reply = Reply(content="**42%** | up", sources=["system.billing.usage", "SQL: SELECT 1"], confidence=0.92,
                  domains=["costs"], request_id="r1")
    [(text, blocks)] = t.answer_messages(reply)
    assert text == "*42%* | up"
    assert blocks[0] == {"type": "markdown", "text": "**42%** | up"}
    assert blocks[1]["elements"][0]["text"] == "Sources: system.billing.usage  |  1 SQL query  |  Confidence 92%  |  costs"
    [feedback] = blocks[2]["elements"]
    assert ContextActionsBlock(**blocks[2]).to_dict() == blocks[2]  # slack_sdk's model validates it (lengths, kinds)
    assert [t.native_feedback(feedback[side]["value"]) for side in ("positive_button", "negative_button")] == [
        (True, "r1"), (False, "r1")]
    plain = t.without_native_feedback(blocks)
    assert plain is not None and plain[:2] == blocks[:2]
    assert [(e["action_id"], e["value"]) for e in plain[2]["elements"]] == [("feedback_up", "r1"), ("feedback_down", "r1")]
    assert t.without_native_feedback(plain) is None and t.native_feedback("sideways:r1") is None
    from agent.errors import ErrorKind

    error_text, error_blocks = t.error_message(Reply(content="The endpoint is down.", request_id="r2", error=ErrorKind.UNAVAILABLE))
    assert error_blocks[-1]["elements"][0]["action_id"] == "retry" and "r2" in json.dumps(error_blocks)


def test_manifest_file_is_the_generated_one_and_valid_yaml() -> None:
    assert (ROOT / "manifest.yml").read_text() == render_manifest()
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert manifest == build_manifest()
    assert manifest["features"]["slash_commands"][0]["command"] == "/healthbot"
    assert manifest["settings"]["interactivity"]["is_enabled"]


BOLT_ASSISTANT = {"set_suggested_prompts": "assistant.threads.setSuggestedPrompts", "set_title": "assistant.threads.setTitle",
                  "set_status": "assistant.threads.setStatus"}


def test_manifest_scopes_cover_exactly_what_the_code_uses() -> None:
    called = set()
    for path in (ROOT / "adapters" / "slack").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.value if isinstance(node, ast.Constant) else None
            if isinstance(name, str) and re.fullmatch(r"(chat|users|conversations|views)_[a-zA-Z]+", name):
                called.add(name.replace("_", ".", 1))  # client.chat_update(…), or by name: _call("chat_update", …)
            if isinstance(node, ast.Call):  # bolt's Assistant utilities, handed to the listeners
                func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if func in BOLT_ASSISTANT:
                    called.add(BOLT_ASSISTANT[func])
            if name == "files_upload_v2":  # slack_sdk's helper calls these two (and POSTs to the upload URL)
                called |= {"files.getUploadURLExternal", "files.completeUploadExternal"}
    assert called == set(METHOD_SCOPES), "update METHOD_SCOPES for the Web API methods the adapter calls"
    listened = set()
    for path in (ROOT / "adapters" / "slack").rglob("*.py"):
        listened |= set(re.findall(r'app\.event\("([a-z_.]+)"\)', path.read_text()))
    for assistant_view, view_events in ((False, AGENT_EVENTS), (True, ASSISTANT_EVENTS)):
        manifest = build_manifest(assistant_view=assistant_view)
        events = {**EVENT_SCOPES, **view_events}
        assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == set(events)
        assert listened <= {e.split(".")[0] for e in events}
        scopes = manifest["oauth_config"]["scopes"]
        assert set(scopes["bot"]) | set(scopes["bot_optional"]) == (
            {s for scopes in METHOD_SCOPES.values() for s in scopes} | set(events.values()) - {None} | {"commands"})
        assert scopes["bot_optional"] == ["files:write"] and "files:write" not in scopes["bot"]  # only the PNG fallback
        assert "assistant:write" in manifest["oauth_config"]["scopes"]["bot"]


def test_new_apps_get_the_agent_messaging_experience_and_older_ones_can_keep_the_split_pane() -> None:
    """Slack (2026-06-30): new apps can only use `agent_view`; at most 4 suggested prompts."""
    agent = build_manifest()
    documented = load("manifest_features_agent_view.json")
    assert set(agent["features"]["agent_view"]) == set(documented["features"]["agent_view"])
    assert all(set(p) == {"title", "message"} for p in agent["features"]["agent_view"]["suggested_prompts"])
    assert agent["features"]["app_home"] == documented["features"]["app_home"]
    assert set(documented["settings"]["event_subscriptions"]["bot_events"]) <= set(agent["settings"]["event_subscriptions"]["bot_events"])
    assert "assistant_view" not in agent["features"]
    view = agent["features"]["agent_view"]
    assert 0 < len(view["agent_description"]) <= 300 and len(view["suggested_prompts"]) == 4
    assert {"app_home_opened", "app_context_changed", "message.im"} <= set(agent["settings"]["event_subscriptions"]["bot_events"])
    assert "assistant_thread_started" not in agent["settings"]["event_subscriptions"]["bot_events"]
    older = build_manifest(assistant_view=True)
    assert "agent_view" not in older["features"] and len(older["features"]["assistant_view"]["suggested_prompts"]) == 4
    assert "assistant_thread_started" in older["settings"]["event_subscriptions"]["bot_events"]
    out = subprocess.run([str(Path(sys.executable).parent / "healthbot"), "slack-manifest", "--assistant-view"],
                         capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(out) == older and "--assistant-view" in out


def test_slack_manifest_command_fills_the_url() -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "healthbot"), "slack-manifest", "--url", "https://bot.example.com"],
                         capture_output=True, text=True, check=True).stdout
    manifest = yaml.safe_load(out)
    assert manifest["settings"]["event_subscriptions"]["request_url"] == "https://bot.example.com/slack/events"
    assert "YOUR-HEALTHBOT-HOST" not in out


def test_the_channel_in_view_is_read_from_any_agent_context() -> None:
    channel = {"type": "slack#/types/channel_id", "value": "C1"}
    message = {"type": "slack#/types/message_context", "value": {"message_ts": "1.2", "channel_id": "C2"}}
    assert t.viewed_channel({"entities": [channel, message]}) == "C1"
    assert t.viewed_channel({"entities": ["odd", {"type": "slack#/types/canvas_id", "value": "F1"}, message]}) == "C2"
    assert t.viewed_channel({}) == t.viewed_channel(None) == t.viewed_channel({"entities": "x"}) == ""
