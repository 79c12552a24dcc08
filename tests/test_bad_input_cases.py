"""One regression test per failure kind outside fuzzing found (issue 9): each failed before its fix.

Every route answers bad input with a 4xx and a reason, logs one line and no traceback, and keeps
whatever it accepted; the chat side never shows an internal error for input that is merely bad.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.config import load_settings
from adapters.host.server import ALERTS, SLACK, TEAMS, create_app
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.connector import FakeConnector
from tests.fakes.serving import FakeServing
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, sign

FIXTURES = Path(__file__).parent / "fixtures"
ALERT_TOKEN = "alert-token-for-tests"
DEEP = b"[" * 100_000 + b"]" * 100_000


def load(kind: str, name: str) -> Any:
    return json.loads((FIXTURES / kind / name).read_text())


class Rig:
    def __init__(self, slack: FakeSlack, connector: FakeConnector, serving: FakeServing, app: web.Application,
                 url: str) -> None:
        self.slack, self.connector, self.serving, self.app, self.url = slack, connector, serving, app, url

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.post(f"{self.url}{path}", data=body, headers=headers) as resp:
            return resp.status, await resp.text()

    async def slack_json(self, body: bytes | dict[str, Any]) -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.post("/slack/events", raw, {"Content-Type": "application/json", **sign(raw)})

    async def slack_form(self, fields: dict[str, str]) -> tuple[int, str]:
        raw = urllib.parse.urlencode(fields).encode()
        return await self.post("/slack/events", raw, {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)})

    async def teams(self, body: bytes | dict[str, Any]) -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.post("/api/messages", raw, {"Content-Type": "application/json"})

    async def alert(self, body: bytes | dict[str, Any]) -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.post("/alerts/databricks", raw, {"Content-Type": "application/json",
                                                           "Authorization": f"Bearer {ALERT_TOKEN}"})

    def activity(self, fixture: str, **changes: Any) -> dict[str, Any]:
        body = load("teams", fixture)
        body["serviceUrl"] = self.connector.url + "/"
        body.update(changes)
        return body

    async def settle(self) -> None:
        await self.app[SLACK].drain()  # type: ignore[attr-defined]
        await self.app[TEAMS].drain()  # type: ignore[attr-defined]
        await self.app[ALERTS].drain()
        await asyncio.sleep(0.1)


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> AsyncIterator[Rig]:
    slack, connector = FakeSlack(), FakeConnector()
    await slack.start()
    await connector.start()
    for name, value in {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                        "SLACK_API_URL": slack.api_url, "HEALTHBOT_ALERT_TOKEN": ALERT_TOKEN,
                        "HEALTHBOT_ALERT_CHANNELS": "slack:C0PLATFORM1", "HEALTHBOT_ALERT_PACE_SECONDS": "0"}.items():
        monkeypatch.setenv(name, value)
    app = create_app(load_settings(), store=SqliteStore(tmp_path / "bot.db"), engine=make_client(fake_serving))
    runner, url = await serve(app)
    yield Rig(slack, connector, fake_serving, app, url)
    await runner.cleanup()
    await slack.stop()
    await connector.stop()


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    caplog.set_level(logging.DEBUG)
    yield None  # type: ignore[misc]
    bad = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, bad


pytestmark = pytest.mark.usefixtures("no_tracebacks")


async def test_deeply_nested_json_is_a_400_on_every_route(rig: Rig) -> None:
    for status, text in [await rig.slack_json(DEEP), await rig.teams(DEEP), await rig.alert(DEEP)]:
        assert status == 400 and "nested deeper than 32 levels" in text


@pytest.mark.parametrize("change", [
    {"timestamp": 5}, {"channelData": "x"}, {"entities": "x"}, {"entities": [{"type": "mention", "mentioned": 3}]},
    {"conversation": {}}, {"conversation": None}, {"from": None}, {"serviceUrl": "http://[::1"},
    {"serviceUrl": "ftp://127.0.0.1/"}, {"membersAdded": [{"name": "no id"}]}, {"channelData": {"team": "x"}},
    {"conversation": {"id": "a:\ufffd\U000f05e0"}},  # ids go into a Latin-1 reply header
])
async def test_malformed_teams_activities_are_a_400_and_get_no_reply(rig: Rig, change: dict[str, Any]) -> None:
    status, text = await rig.teams(rig.activity("message_personal.json", **change))
    assert status == 400 and text.startswith('{"error": "malformed body:')
    await rig.settle()
    assert rig.connector.sent == []


async def test_teams_activities_missing_required_fields_name_them(rig: Rig) -> None:
    for field in ("type", "id", "conversation", "from", "serviceUrl"):
        body = rig.activity("message_personal.json")
        del body[field]
        status, text = await rig.teams(body)
        assert status == 400 and field in text


async def test_a_teams_invoke_nobody_handles_is_a_400_not_a_501(rig: Rig) -> None:
    status, text = await rig.teams(rig.activity("invoke_adaptive_card_action_execute.json", name="composeExtension/query"))
    assert status == 400 and "not supported" in text


async def test_teams_card_data_of_the_wrong_type_is_refused_politely(rig: Rig) -> None:
    invoke = rig.activity("invoke_adaptive_card_action_execute.json")
    invoke["value"]["action"] = {"type": "Action.Execute", "verb": "feedback", "data": 5}
    status, text = await rig.teams(invoke)
    assert status == 200 and "no longer known" in text


@pytest.mark.parametrize("change", [
    {"authorizations": "x"}, {"team_id": 5}, {"event": {"type": "message", "channel": {"id": "C1"}}},
    {"event": "x"}, {"is_ext_shared_channel": "yes"},
])
async def test_slack_bodies_bolt_chokes_on_are_a_400(rig: Rig, change: dict[str, Any]) -> None:
    body = load("slack", "event_app_mention_channel.json")
    body.update(change)
    status, text = await rig.slack_json(body)
    assert status == 400 and "malformed body" in text


async def test_slack_events_nobody_listens_to_are_a_200_without_bolt(rig: Rig) -> None:
    status, _ = await rig.slack_json({"type": "event_callback", "team_id": "T1",
                                      "event": {"type": "channel_created", "channel": {"id": "C1", "name": "x"}}})
    assert status == 200
    status, _ = await rig.slack_json({"type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1})
    assert status == 200


async def test_lone_surrogates_and_nuls_in_questions_are_answered(rig: Rig) -> None:
    event = load("slack", "event_app_mention_channel.json")
    raw = json.dumps(event).replace("why did costs spike", "why did costs spike \\ud800 \\u0000 yesterday").encode()
    assert (await rig.slack_json(raw))[0] == 200
    personal = rig.activity("message_personal.json")
    raw = json.dumps(personal).replace('"text": "', '"text": "\\udfff costs? ').encode()
    assert (await rig.teams(raw))[0] in (200, 201)
    await rig.settle()
    questions = [body["inputs"]["messages"][-1]["content"] for body in rig.serving.invocation_bodies()]
    assert any("spike \ufffd" in q and "yesterday" in q and "\x00" not in q for q in questions), questions
    assert any("\ufffd costs?" in q for q in questions), questions
    assert not any("internal error" in json.dumps(p) for p in rig.slack.called("chat.postMessage"))
    assert not any("internal error" in json.dumps(s.activity) for s in rig.connector.sent)


async def test_an_alert_with_unencodable_text_is_stored_and_posted(rig: Rig) -> None:
    raw = b'{"name": "Cost \\ud800 spike\\u0000", "state": "TRIGGERED", "text": "\\udc00"}'
    status, text = await rig.alert(raw)
    assert status == 200, text
    await rig.settle()
    [root] = [p for p in rig.slack.called("chat.postMessage") if not p.get("thread_ts")]
    assert "Cost \ufffd spike is TRIGGERED" in root["text"]


async def test_an_alert_that_cannot_be_stored_is_a_503_to_retry(rig: Rig, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    import sqlite3

    async def locked(*args: Any, **kwargs: Any) -> int:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(rig.app[ALERTS].alerts, "enqueue", locked)
    status, text = await rig.alert({"name": "High Error Rate", "state": "TRIGGERED"})
    assert status == 503 and "retry later" in text
    caplog.clear()  # the one ERROR line is expected: an alert was refused for a reason of ours


async def test_an_alert_button_with_a_value_that_is_not_json_is_acked_at_once(rig: Rig) -> None:
    payload = load("slack", "interactive_block_actions_thread.payload.json")
    payload["actions"] = [{"action_id": "alert_acknowledge", "block_id": "b", "value": "{not json", "action_ts": "1.2"}]
    started = time.monotonic()
    status, _ = await rig.slack_form({"payload": json.dumps(payload)})
    assert status == 200 and time.monotonic() - started < 1.0


@pytest.mark.parametrize("change", [{"user": None}, {"channel": "C0123ABCDEF"}, {"actions": []},
                                    {"response_url": "javascript:alert(1)"}])
async def test_slack_button_payloads_without_what_listeners_need_are_a_400(rig: Rig, change: dict[str, Any]) -> None:
    payload = load("slack", "interactive_block_actions_thread.payload.json")
    payload.update(change)
    status, text = await rig.slack_form({"payload": json.dumps(payload)})
    assert status == 400 and "malformed body" in text


async def test_a_slash_command_with_a_non_http_response_url_is_a_400(rig: Rig) -> None:
    fields = dict(urllib.parse.parse_qsl((FIXTURES / "slack" / "slash_command_healthbot.txt").read_text().strip()))
    fields["response_url"] = "file:///etc/passwd"
    status, text = await rig.slack_form(fields)
    assert status == 400 and "response_url" in text


async def test_retry_on_a_message_healthbot_never_posted_fails_in_one_line(rig: Rig,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    payload = load("slack", "interactive_block_actions_thread.payload.json")
    payload["actions"] = [{"action_id": "retry", "block_id": "b", "value": "x", "action_ts": "1.3"}]
    rig.slack.fail("chat.update", 200, {"ok": False, "error": "message_not_found"})
    status, _ = await rig.slack_form({"payload": json.dumps(payload)})
    assert status == 200
    await rig.settle()
    assert any("message_not_found" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_a_users_info_error_that_is_not_json_is_said_in_the_thread_then_asked_again(rig: Rig) -> None:
    """Membership cannot be checked without users.info: the asker is told so (never silence, never a
    guess that lets a guest in), and the failure is not cached: the next message is answered."""
    rig.slack.fail("users.info", 502, "<html>Bad gateway</html>")
    assert (await rig.slack_json(load("slack", "event_app_mention_channel.json")))[0] == 200
    await rig.settle()
    posted = json.dumps(rig.slack.called("chat.postMessage"))
    assert "could not check your Slack account" in posted and "Costs rose 42%" not in posted
    event = load("slack", "event_app_mention_channel.json")
    event["event"]["ts"] = event["event"]["event_ts"] = "1712345699.000001"
    assert (await rig.slack_json(event))[0] == 200
    await rig.settle()
    assert any("Costs rose 42%" in json.dumps(p) for p in rig.slack.called("chat.postMessage"))


async def test_malformed_http_and_clients_that_hang_up_are_not_tracebacks(rig: Rig) -> None:
    host, port = rig.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /alerts/databricks HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    await writer.drain()
    assert (await reader.read(100))[8:12] == b" 400"  # aiohttp's own answer to malformed HTTP
    writer.close()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /alerts/databricks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALERT_TOKEN.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"name\": ")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.2)


async def test_a_flood_of_refusals_is_counted_not_logged_line_by_line(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    from bot.inbound import LOG_BURST, refusals

    refusals._windows.clear()
    for _ in range(LOG_BURST + 30):
        await rig.alert(b"{")
    lines = [r for r in caplog.records if "refused (400)" in r.getMessage()]
    assert len(lines) == LOG_BURST


def test_unsafe_text_is_normalised_on_the_way_in() -> None:
    from bot.inbound import BadInput, clean_text, load_json

    assert load_json(b'{"a": ["\\ud800x", "\\u0000"], "\\udfff": 1}') == {"a": ["\ufffdx", ""], "\ufffd": 1}
    assert clean_text("plain") == "plain"
    with pytest.raises(BadInput, match="not UTF-8"):
        load_json(b"\xff{}")
    nested = copy.deepcopy({"a": 1})
    for _ in range(40):
        nested = {"a": nested}
    with pytest.raises(BadInput, match="nested deeper"):
        load_json(json.dumps(nested))


def test_the_depth_limit_is_exact_whether_or_not_the_walk_is_skipped() -> None:
    """Bodies with fewer openers than the limit skip the walk (most real ones): the limit is unchanged."""
    from bot.inbound import BadInput, load_json

    assert load_json("[" * 32 + "]" * 32) is not None
    with pytest.raises(BadInput, match="nested deeper than 32"):
        load_json("[" * 33 + "]" * 33)
    assert load_json(json.dumps({"text": "{[" * 50, "list": [[1]]})) == {"text": "{[" * 50, "list": [[1]]}


async def test_a_signed_body_that_is_not_utf8_is_a_400_and_an_unsigned_one_a_401(rig: Rig) -> None:
    raw = b'{"type": "event_callback", "x": "\xff"}'
    assert (await rig.post("/slack/events", raw, {"Content-Type": "application/json", **sign(raw)}))[0] == 400
    forged = {**sign(raw), "X-Slack-Signature": "v0=" + "0" * 64}
    assert (await rig.post("/slack/events", raw, {"Content-Type": "application/json", **forged}))[0] == 401
