"""Slack over the wire: signed real-format payloads into POST /slack/events, a fake Web API out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.slack import translate as t
from bot.config import load_settings
from adapters.host.server import SLACK, create_app
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.serving import FakeServing, Scripted, answer_body, error
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, feedback_click, fixture, sign

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
ROOT_TS = "1712345678.123456"


class SlackRig:
    def __init__(self, slack: FakeSlack, serving: FakeServing, url: str, app: web.Application) -> None:
        self.slack, self.serving, self.url, self.app = slack, serving, url, app

    @property
    def store(self) -> SqliteStore:
        return self.app[SLACK].handler.store  # type: ignore[attr-defined]

    async def post(self, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None,
                   *, signed: bool = True) -> tuple[int, str]:
        all_headers = {"Content-Type": content_type, **(sign(body) if signed else {}), **(headers or {})}
        async with aiohttp.ClientSession() as http, http.post(f"{self.url}/slack/events", data=body, headers=all_headers) as resp:
            return resp.status, await resp.text()

    async def event(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> int:
        status, _ = await self.post(json.dumps(payload).encode(), headers=headers)
        return status

    async def form(self, fields: dict[str, str]) -> tuple[int, str]:
        return await self.post(urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded")

    async def action(self, payload: dict[str, Any]) -> int:
        status, _ = await self.form({"payload": json.dumps(payload)})
        return status

    def sessions_at_endpoint(self) -> list[str]:
        return [body["inputs"]["params"]["session_id"] for body in self.serving.invocation_bodies()]

    async def settle(self) -> None:
        """Let listeners finish: wait until nothing is posted for a short while."""
        await self.app[SLACK].drain()  # type: ignore[attr-defined]
        seen = -1
        while seen != len(self.slack.api):
            seen = len(self.slack.api)
            await asyncio.sleep(0.15)


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> AsyncIterator[SlackRig]:
    async with slack_rig(monkeypatch, tmp_path, fake_serving) as started:
        yield started


@contextlib.asynccontextmanager
async def slack_rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> AsyncIterator[SlackRig]:
    slack = FakeSlack()
    await slack.start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    monkeypatch.setattr("adapters.slack.progress.PLACEHOLDER_DELAY_S", 0.3)
    app = create_app(load_settings(), store=SqliteStore(tmp_path / "bot.db"), engine=make_client(fake_serving))
    runner, url = await serve(app)
    yield SlackRig(slack, fake_serving, url, app)
    await runner.cleanup()
    await slack.stop()


def mention(text: str = "<@U0BOT12345> why did costs spike", ts: str = ROOT_TS, thread_ts: str | None = None,
            event_id: str = "Ev0123ABCDEF") -> dict[str, Any]:
    body = fixture("event_app_mention_channel.json")
    body["event"].update(text=text, ts=ts, event_ts=ts)
    if thread_ts:
        body["event"]["thread_ts"] = thread_ts
    body["event_id"] = event_id
    return body


def thread_reply(text: str, ts: str, event_id: str) -> dict[str, Any]:
    body = fixture("event_message_thread_reply_no_mention.json")
    body["event"].update(text=text, ts=ts, event_ts=ts, user="U0USER1234")
    body["event_id"] = event_id
    return body


def answer_posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.posted() if any(b.get("type") == "markdown" for b in m.get("blocks", []))]


async def test_url_verification(rig: SlackRig) -> None:
    status, text = await rig.post(json.dumps(fixture("url_verification.json")).encode())
    assert status == 200 and fixture("url_verification.json")["challenge"] in text


async def test_mention_is_answered_in_its_thread_with_block_kit(rig: SlackRig) -> None:
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: answer_posts(rig.slack))
    await rig.settle()
    assert len(rig.slack.called("chat.postMessage")) == 1
    post = answer_posts(rig.slack)[0]  # as it finally reads (a placeholder may have come first)
    assert post["channel"] == "C0123ABCDEF" and post["thread_ts"] == ROOT_TS
    assert post["text"] == "Costs rose 42%."  # notification fallback
    kinds = [b["type"] for b in post["blocks"]]
    assert kinds == ["markdown", "context", "context_actions"]
    assert post["blocks"][2]["elements"][0]["type"] == "feedback_buttons"
    assert post["blocks"][0]["text"] == "Costs rose 42%."
    assert "system.billing.usage" in post["blocks"][1]["elements"][0]["text"]
    assert "Confidence 90%" in post["blocks"][1]["elements"][0]["text"]
    sent = rig.serving.invocation_bodies()[0]["inputs"]
    assert sent["messages"] == [{"role": "user", "content": "why did costs spike"}]  # mention stripped
    assert sent["params"]["user_id"] == "spengler@ghostbusters.example.com"  # from users.info


async def test_follow_up_without_mention_continues_the_session(rig: SlackRig) -> None:
    await rig.event(mention())
    await rig.slack.wait_for(lambda: len(answer_posts(rig.slack)) == 1)
    await rig.event(thread_reply("was it the nightly ETL job?", "1712346100.000300", "Ev2"))
    await rig.slack.wait_for(lambda: len(answer_posts(rig.slack)) == 2)
    first, second = rig.sessions_at_endpoint()
    assert first == second
    assert [m["content"] for m in rig.serving.invocation_bodies()[1]["inputs"]["messages"]] == [
        "why did costs spike", "Costs rose 42%.", "was it the nightly ETL job?"]
    assert rig.slack.called("chat.postMessage")[1]["thread_ts"] == ROOT_TS


async def test_reply_in_a_thread_healthbot_is_not_in_is_ignored(rig: SlackRig) -> None:
    await rig.event(thread_reply("unrelated chatter", "1712346100.000300", "Ev2"))
    await rig.settle()
    assert rig.slack.called("chat.postMessage") == [] and rig.serving.invocation_bodies() == []


async def test_mention_in_a_thread_delivered_twice_and_retried_is_answered_once(rig: SlackRig) -> None:
    as_mention = mention("<@U0BOT12345> and what about yesterday?", ts="1712345999.000200", thread_ts=ROOT_TS,
                         event_id="EvMention")
    as_message = json.loads(json.dumps(as_mention))
    as_message["event"]["type"] = "message"
    as_message["event"]["channel_type"] = "channel"
    as_message["event_id"] = "EvMessage"
    statuses = await asyncio.gather(rig.event(as_mention), rig.event(as_message),
                                    rig.event(as_mention, {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}))
    assert statuses == [200, 200, 200]
    await rig.settle()
    assert len(answer_posts(rig.slack)) == 1 and len(rig.serving.invocation_bodies()) == 1
    assert rig.slack.called("chat.postMessage")[0]["thread_ts"] == ROOT_TS


def another(body: dict[str, Any], event_id: str, **event: str) -> dict[str, Any]:
    """A copy of an event body: another message of the same person in the same DM."""
    copy = json.loads(json.dumps(body))
    copy["event"].update(event)
    copy["event_id"] = event_id
    return copy


async def dm_answered(rig: SlackRig, body: dict[str, Any], answers: int) -> None:
    await rig.event(body)
    await rig.slack.wait_for(lambda: len(answer_posts(rig.slack)) == answers)


async def test_direct_messages_share_a_session_until_new(rig: SlackRig) -> None:
    dm = fixture("event_message_im.json")
    await dm_answered(rig, dm, 1)
    await dm_answered(rig, another(dm, "EvDm2", ts="1712346300.000001", text="and yesterday?"), 2)
    status, _ = await rig.form(slash("new", channel="D0123ABCDEF"))
    assert status == 200
    await rig.settle()
    await dm_answered(rig, another(dm, "EvDm3", ts="1712346400.000001", text="hello"), 3)
    one, two, three = rig.sessions_at_endpoint()
    assert one == two != three
    assert all(p.get("thread_ts") is None for p in rig.slack.called("chat.postMessage"))  # top-level DM replies


async def test_in_the_agent_messaging_experience_each_dm_message_is_its_own_thread(rig: SlackRig) -> None:
    """A DM message carrying `app_context` (Slack's agent messaging experience) starts a thread and a
    session; a reply in that thread continues it; the channel in view reaches the endpoint."""
    dm = fixture("event_message_im_agent_view.json")
    first_ts = dm["event"]["ts"]
    await dm_answered(rig, dm, 1)
    await dm_answered(rig, another(dm, "EvAgentDm2", ts="1712346300.000001", text="Which jobs failed today?"), 2)
    await dm_answered(rig, another(dm, "EvAgentDm3", ts="1712346310.000001", thread_ts=first_ts,
                                   text="and which job was it?"), 3)
    await rig.settle()
    one, two, three = rig.sessions_at_endpoint()
    assert one == three != two
    assert [p["thread_ts"] for p in answer_posts(rig.slack)] == [first_ts, "1712346300.000001", first_ts]
    assert all(body["inputs"]["params"]["viewing_channel"] == "C0PLATFORM1" for body in rig.serving.invocation_bodies())
    statuses = rig.slack.called("assistant.threads.setStatus")  # Slack's status line, not a placeholder message
    assert {s["thread_ts"] for s in statuses} == {first_ts, "1712346300.000001"}
    assert not [p for p in rig.slack.called("chat.postMessage") if "Analyzing" in p.get("text", "")]
    # each new conversation is named by its question in the Messages tab; a reply in it does not rename it
    titles = {(s["thread_ts"], s["title"]) for s in rig.slack.called("assistant.threads.setTitle")}
    assert titles == {(first_ts, dm["event"]["text"]), ("1712346300.000001", "Which jobs failed today?")}


def slash(text: str, channel: str = "C0123ABCDEF", response_url: str = "") -> dict[str, str]:
    fields = {k: v[0] for k, v in urllib.parse.parse_qs((FIXTURES / "slash_command_healthbot.txt").read_text().strip()).items()}
    fields.update(text=text, channel_id=channel)
    if response_url:
        fields["response_url"] = response_url
    return fields


async def test_slash_help_shows_usage_and_quick_question_buttons(rig: SlackRig) -> None:
    status, body = await rig.form(slash(""))
    assert status == 200
    shown = json.loads(body)
    buttons = shown["blocks"][1]["elements"]
    assert [b["action_id"] for b in buttons] == ["quick_costs", "quick_jobs", "quick_queries", "quick_security", "quick_health"]
    assert rig.serving.invocation_bodies() == []


async def test_slash_quick_question_posts_a_visible_thread(rig: SlackRig) -> None:
    status, _ = await rig.form(slash("costs"))
    assert status == 200
    await rig.slack.wait_for(lambda: answer_posts(rig.slack))
    root, answer = rig.slack.called("chat.postMessage")
    assert root["channel"] == "C0123ABCDEF" and "thread_ts" not in root or root.get("thread_ts") is None
    assert "Why did costs spike yesterday?" in root["text"]
    assert answer["thread_ts"] == root["_ts"]
    assert rig.serving.invocation_bodies()[0]["inputs"]["messages"][-1]["content"] == "Why did costs spike yesterday?"


async def test_slash_free_text_falls_back_to_response_url_when_not_in_channel(rig: SlackRig) -> None:
    rig.slack.fail("chat.postMessage", 200, {"ok": False, "error": "not_in_channel"})
    status, _ = await rig.form(slash("is the warehouse slow?", channel="C0PRIVATE1", response_url=f"{rig.slack.url}/hooks/1"))
    assert status == 200
    await rig.slack.wait_for(lambda: rig.slack.hooks)
    hook = rig.slack.hooks[0]
    assert hook["response_type"] == "in_channel"
    assert "is the warehouse slow?" in hook["blocks"][0]["text"]["text"]
    assert any(b.get("type") == "markdown" and b["text"] == "Costs rose 42%." for b in hook["blocks"])


async def test_native_feedback_is_recorded_once_per_click_and_the_last_click_wins(rig: SlackRig) -> None:
    await rig.event(mention())
    await rig.slack.wait_for(lambda: answer_posts(rig.slack))
    post = rig.slack.called("chat.postMessage")[0]
    request_id = t.native_feedback(post["blocks"][2]["elements"][0]["negative_button"]["value"])[1]  # type: ignore[index]
    payload = fixture("interactive_block_actions_thread.payload.json")
    payload["message"].update(ts=post["_ts"], blocks=post["blocks"])

    def votes() -> list[tuple[Any, ...]]:
        return [tuple(r) for r in rig.store._db.execute("SELECT request_id, user_id, value FROM feedback")]

    payload["actions"] = [feedback_click(post["blocks"], "down")]
    assert await rig.action(payload) == 200
    await rig.slack.wait_for(lambda: votes())
    assert votes() == [(request_id, "U0USER1234", -1)]
    payload["actions"] = [feedback_click(post["blocks"], "up", action_ts="1712346460.1")]  # changed their mind
    assert await rig.action(payload) == 200
    await rig.slack.wait_for(lambda: votes()[0][2] == 1)
    await rig.settle()
    assert votes() == [(request_id, "U0USER1234", 1)]
    assert not rig.slack.called("chat.update")  # Slack's element shows the choice itself


async def test_where_slack_refuses_native_feedback_the_answer_has_plain_buttons_that_thank(rig: SlackRig) -> None:
    rig.slack.fail("chat.postMessage", 200, {"ok": False, "error": "invalid_blocks"})
    await rig.event(mention())
    await rig.slack.wait_for(lambda: answer_posts(rig.slack))
    await rig.settle()
    [refused, post] = rig.slack.called("chat.postMessage")
    assert refused["blocks"][2]["type"] == "context_actions" and post["blocks"][2]["type"] == "actions"
    request_id = post["blocks"][2]["elements"][1]["value"]
    payload = fixture("interactive_block_actions_thread.payload.json")
    payload["message"].update(ts=post["_ts"], blocks=post["blocks"])
    payload["actions"] = [dict(post["blocks"][2]["elements"][1], action_ts="1712346450.469172")]
    assert await rig.action(payload) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.update"))
    update = rig.slack.called("chat.update")[0]
    assert update["ts"] == post["_ts"] and "Thanks for the feedback" in json.dumps(update["blocks"])
    assert all(b.get("block_id") != "feedback" for b in update["blocks"])
    votes = [tuple(r) for r in rig.store._db.execute("SELECT request_id, user_id, value FROM feedback")]
    assert votes == [(request_id, "U0USER1234", -1)]


async def test_endpoint_down_posts_a_plain_error_and_retry_reasks(rig: SlackRig) -> None:
    rig.serving.invocations.append(error("serving_error_404_resource_does_not_exist.json"))
    rig.serving.invocations.append(Scripted(500, {"error_code": "INTERNAL_ERROR"}))
    await rig.event(mention())
    await rig.slack.wait_for(lambda: rig.slack.called("chat.postMessage"))
    await rig.settle()
    error_post = rig.slack.called("chat.postMessage")[0]
    assert error_post["thread_ts"] == ROOT_TS and "does not exist" in error_post["text"]
    assert "Traceback" not in json.dumps(error_post) and all(b["type"] != "actions" for b in error_post["blocks"])  # not retryable

    await rig.event(thread_reply("try the other thing", "1712346100.000300", "Ev2"))
    await rig.slack.wait_for(lambda: len(rig.slack.called("chat.postMessage")) == 2)
    await rig.settle()
    unavailable = rig.slack.called("chat.postMessage")[1]
    retry_button = unavailable["blocks"][-1]["elements"][0]
    assert retry_button["action_id"] == "retry"
    payload = fixture("interactive_block_actions_thread.payload.json")
    payload["message"].update(ts=unavailable["_ts"], blocks=unavailable["blocks"], thread_ts=ROOT_TS)
    payload["actions"] = [dict(retry_button, action_ts="1712346460.1")]
    assert await rig.action(payload) == 200
    await rig.slack.wait_for(lambda: any(u.get("ts") == unavailable["_ts"] and "markdown" in json.dumps(u.get("blocks"))
                                         for u in rig.slack.called("chat.update")))
    sent = rig.serving.invocation_bodies()
    assert sent[-1]["inputs"]["messages"][-1]["content"] == "try the other thing"
    assert len(set(rig.sessions_at_endpoint())) == 1
    assert len(rig.slack.called("chat.postMessage")) == 2  # the answer replaced the error message


async def test_bad_and_stale_signatures_are_401(rig: SlackRig) -> None:
    body = json.dumps(mention()).encode()
    status, _ = await rig.post(body, headers=sign(body, secret="not-the-secret"))
    assert status == 401
    status, _ = await rig.post(body, headers=sign(body, timestamp=1531420618))
    assert status == 401
    status, _ = await rig.post(body, signed=False)
    assert status == 401
    await rig.settle()
    assert rig.slack.api == []


async def test_ssl_check_is_answered(rig: SlackRig) -> None:
    status, _ = await rig.form({"ssl_check": "1", "token": "XXYYZZverificationtoken"})
    assert status == 200


async def test_malformed_but_signed_body_is_400(rig: SlackRig) -> None:
    status, text = await rig.post(b"{not json")
    assert status == 400 and "malformed body" in text
    status, text = await rig.post(b"hello=world", "application/x-www-form-urlencoded")
    assert status == 400 and "neither a slash command" in text


@pytest.mark.parametrize("name", ["event_message_subtype_bot_message.json", "event_message_changed.json"])
async def test_bot_messages_and_edits_are_ignored(rig: SlackRig, name: str) -> None:
    assert await rig.event(fixture(name)) == 200
    await rig.settle()
    assert rig.slack.called("chat.postMessage") == []


async def test_unknown_event_type_is_200_and_ignored(rig: SlackRig) -> None:
    body = mention()
    body["event"] = {"type": "reaction_added", "user": "U0USER1234", "reaction": "thumbsup",
                     "item": {"type": "message", "channel": "C0123ABCDEF", "ts": ROOT_TS}, "event_ts": "1.2"}
    assert await rig.event(body) == 200
    await rig.settle()
    assert rig.slack.called("chat.postMessage") == []


async def test_web_api_429_is_retried_and_delivered_once(rig: SlackRig) -> None:
    limited = fixture("webapi_ratelimited_429.json")
    rig.slack.fail("chat.postMessage", 429, limited["body"], {"Retry-After": "1"})
    await rig.event(mention())
    await rig.slack.wait_for(lambda: answer_posts(rig.slack), timeout=8)
    await rig.settle()
    attempts = rig.slack.called("chat.postMessage")
    assert [a.get("_failed") for a in attempts] == [429, None]
    assert len(answer_posts(rig.slack)) == 1


async def test_slow_answer_shows_progress_then_one_final_message(rig: SlackRig) -> None:
    rig.serving.invocations.append(Scripted(200, answer_body("Slow but sure."), delay_s=0.8))
    await rig.event(mention())
    await rig.slack.wait_for(lambda: answer_posts(rig.slack))
    await rig.settle()
    placeholder = rig.slack.called("chat.postMessage")[0]
    assert "Analyzing" in placeholder["text"] and placeholder["thread_ts"] == ROOT_TS
    final = rig.slack.called("chat.update")[-1]
    assert final["ts"] == placeholder["_ts"] and final["blocks"][0]["text"] == "Slow but sure."
    assert len(rig.slack.called("chat.postMessage")) == 1


async def test_cold_endpoint_says_waking_up(rig: SlackRig) -> None:
    rig.serving.invocations.append(error("serving_error_503_temporarily_unavailable.json"))
    rig.serving.states.extend(["NOT_READY"] * 3 + ["READY"])
    await rig.event(mention())
    await rig.slack.wait_for(lambda: answer_posts(rig.slack))
    texts = [c["text"] for c in rig.slack.called("chat.postMessage") + rig.slack.called("chat.update")]
    assert any("Waking up the Health Monitor" in text for text in texts)
    assert answer_posts(rig.slack)[0]["blocks"][0]["text"] == "Costs rose 42%."


async def test_long_answers_are_split_never_cut(rig: SlackRig) -> None:
    long_answer = "\n\n".join(f"Paragraph {i}: " + "x" * 900 for i in range(30))
    rig.serving.default = Scripted(200, answer_body(long_answer))
    await rig.event(mention())
    await rig.slack.wait_for(lambda: len(answer_posts(rig.slack)) >= 3)
    await rig.settle()
    parts = [p["blocks"][0]["text"] for p in answer_posts(rig.slack)]
    assert all(len(p) <= 12_000 for p in parts)
    for i in range(30):
        assert sum(p.count(f"Paragraph {i}: ") for p in parts) == 1
    assert [b["type"] for b in answer_posts(rig.slack)[-1]["blocks"]][-1] == "context_actions"  # feedback on the last part


async def test_other_workspaces_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            fake_serving: FakeServing) -> None:
    monkeypatch.setenv("HEALTHBOT_SLACK_TEAM_IDS", "T0THERTEAM")
    async with slack_rig(monkeypatch, tmp_path, fake_serving) as rig:
        assert await rig.event(mention()) == 200
        await asyncio.sleep(0.5)  # the fake endpoint answers at once: an answer would be posted by now
        await rig.settle()
        assert rig.slack.called("chat.postMessage") == [] and rig.serving.invocation_bodies() == []


async def test_socket_mode_answers_the_same_way(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> None:
    slack = FakeSlack()
    await slack.start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A0123ABCDE-test")
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    app = create_app(load_settings(), store=SqliteStore(tmp_path / "bot.db"), engine=make_client(fake_serving))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert "/slack/events" not in {r.resource.canonical for r in app.router.routes() if r.resource}  # no public URL
        envelope = fixture("socket_mode_events_api_envelope.json")
        await slack.wait_for(lambda: slack.called("apps.connections.open"))
        await slack.push(envelope)
        await slack.wait_for(lambda: answer_posts(slack))
        assert {"envelope_id": envelope["envelope_id"]} in slack.socket_acks
        post = answer_posts(slack)[0]
        assert post["thread_ts"] == ROOT_TS and post["blocks"][0]["text"] == "Costs rose 42%."
        retry = fixture("socket_mode_events_api_envelope_retry.json")
        await slack.push(retry)
        await asyncio.sleep(0.3)
        assert len(answer_posts(slack)) == 1  # the redelivery is acked but not answered again
    finally:
        await runner.cleanup()
        await slack.stop()


async def test_an_internal_failure_says_so_in_the_thread(rig: SlackRig, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(rig.store, "open_turn", broken)
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("chat.postMessage"))
    await rig.settle()
    [post] = rig.slack.called("chat.postMessage")
    assert post["thread_ts"] == ROOT_TS and "internal error" in post["text"]
    assert "database is locked" not in json.dumps(post) and "Traceback" not in json.dumps(post)


async def test_socket_mode_keeps_trying_when_slack_is_unreachable_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                          fake_serving: FakeServing) -> None:
    slack = FakeSlack()
    await slack.start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A0123ABCDE-test")
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    slack.fail("apps.connections.open", 200, {"ok": False, "error": "internal_error"}, times=1000)
    monkeypatch.setattr("adapters.slack.app.SOCKET_PING_INTERVAL_S", 0.3)
    app = create_app(load_settings(), store=SqliteStore(tmp_path / "bot.db"), engine=make_client(fake_serving))
    runner = web.AppRunner(app)
    await asyncio.wait_for(runner.setup(), timeout=5)  # the server starts while Slack refuses connections
    try:
        await slack.wait_for(lambda: len([c for c in slack.api if c.method == "apps.connections.open"]) >= 2, timeout=10)
        slack.failures.clear()  # Slack is back
        await slack.wait_for(lambda: any(c.method == "apps.connections.open" and "_failed" not in c.params for c in slack.api))
        await asyncio.sleep(0.2)
        await slack.push(fixture("socket_mode_events_api_envelope.json"))
        await slack.wait_for(lambda: answer_posts(slack))
    finally:
        await runner.cleanup()
        await slack.stop()
