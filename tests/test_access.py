"""Who may ask, at the wire: signed Slack payloads and Teams activities in, the fake Slack Web API,
Bot Connector and Databricks workspace (serving + SCIM) out. A refusal must never reach the endpoint."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.config import ConfigError, load_settings
from adapters.host.server import SLACK, TEAMS, create_app
from bot.ops.stats import collect
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.connector import FakeConnector
from tests.fakes.connector import fixture as teams_fixture
from tests.fakes.serving import Scripted, answer_body
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, feedback_click, fixture, sign
from tests.fakes.workspace import FakeWorkspace, scim_group, scim_user

MEMBER = "U0USER1234"  # spengler@ghostbusters.example.com in the fake Slack
SECURITY_ANSWER = answer_body("Two admin tokens were created from a new country.", domains=["Security"])


class Rig:
    def __init__(self, slack: FakeSlack, connector: FakeConnector, workspace: FakeWorkspace, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.slack, self.connector, self.workspace = slack, connector, workspace
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, policy: str | None = None, **env: str) -> None:
        for name, value in {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                            "SLACK_API_URL": self.slack.api_url, "DATABRICKS_HOST": self.workspace.url,
                            "DATABRICKS_TOKEN": self.workspace.token, **env}.items():
            self.monkeypatch.setenv(name, value)
        if policy is not None:
            path = self.tmp_path / "policy.yml"
            path.write_text(policy)
            self.monkeypatch.setenv("HEALTHBOT_ACCESS_POLICY", str(path))
        self.monkeypatch.setattr("adapters.slack.progress.PLACEHOLDER_DELAY_S", 5.0)
        self.app = create_app(load_settings(), store=SqliteStore(self.tmp_path / "bot.db"),
                              engine=make_client(self.workspace))
        self.runner, self.url = await serve(self.app)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def slack_post(self, body: bytes, content_type: str = "application/json") -> int:
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.url}/slack/events", data=body, headers={"Content-Type": content_type, **sign(body)}) as resp:
            return resp.status

    async def command(self, text: str, user: str = MEMBER, channel: str = "C0123ABCDEF") -> None:
        """A signed `/healthbot` (slash_command_healthbot.txt) with this text, by this person, in this channel."""
        fields = {k: v[0] for k, v in urllib.parse.parse_qs(
            (Path(__file__).parent / "fixtures" / "slack" / "slash_command_healthbot.txt").read_text().strip()).items()}
        fields.update(text=text, user_id=user, channel_id=channel, response_url=f"{self.slack.url}/hooks/1",
                      trigger_id=f"t{time.monotonic_ns()}")
        assert await self.slack_post(urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded") == 200
        await self.settle()

    async def mention(self, user: str = MEMBER, ts: str = "1712345678.123456", **event: Any) -> None:
        body = fixture("event_app_mention_channel.json")
        body["event"].update(user=user, ts=ts, event_ts=ts, **event)
        body["event_id"] = f"Ev{ts}"
        assert await self.slack_post(json.dumps(body).encode()) == 200
        await self.settle()

    async def click_refused(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A signed block_actions click that healthbot refuses: the one ephemeral line the clicker got."""
        body = ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()
        assert await self.slack_post(body, "application/x-www-form-urlencoded") == 200
        await self.slack.wait_for(lambda: self.slack.called("chat.postEphemeral"))
        await self.settle()
        [ephemeral] = self.slack.called("chat.postEphemeral")
        return ephemeral

    async def teams(self, activity: dict[str, Any]) -> None:
        activity["serviceUrl"] = self.connector.url + "/"
        async with aiohttp.ClientSession() as http, http.post(f"{self.url}/api/messages", json=activity) as resp:
            assert resp.status in (200, 201)
        await self.settle()

    async def settle(self) -> None:
        """Let listeners finish (Bolt runs them after the ack): drained, and nothing sent for a while."""
        assert self.app is not None
        seen = -1
        while seen != len(self.slack.api) + len(self.connector.sent):
            seen = len(self.slack.api) + len(self.connector.sent)
            await asyncio.sleep(0.15)
            await self.app[SLACK].drain()  # type: ignore[attr-defined]
            await self.app[TEAMS].drain()  # type: ignore[attr-defined]

    def thread_text(self) -> str:
        return json.dumps(self.slack.posted())

    async def stats(self) -> dict[str, Any]:
        assert self.app is not None
        return json.loads((await collect(self.app[SLACK].handler.store, 1)).as_json())  # type: ignore[attr-defined]


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Rig]:
    slack, connector, workspace = FakeSlack(), FakeConnector(), FakeWorkspace()
    for fake in (slack, connector, workspace):
        await fake.start()
    slack.users = {
        "U0EXTRN001": fixture("webapi_users_info_external_slack_connect.json"),
        "U0GUEST001": fixture("webapi_users_info_guest_single_channel.json"),
        "U0GUEST002": fixture("webapi_users_info_guest_multi_channel.json"),
    }
    rig = Rig(slack, connector, workspace, tmp_path, monkeypatch)
    yield rig
    await rig.stop()
    for fake in (slack, connector, workspace):
        await fake.stop()


async def test_an_external_user_in_a_slack_connect_channel_is_refused_without_the_endpoint(rig: Rig) -> None:
    await rig.start()
    body = fixture("event_app_mention_slack_connect_external_user.json")
    assert await rig.slack_post(json.dumps(body).encode()) == 200
    await rig.settle()
    assert rig.workspace.invocation_bodies() == []
    [post] = rig.slack.posted()
    assert post["thread_ts"] == body["event"]["ts"]
    assert "healthbot answers members of Subarachnoid Workspace only" in post["text"]  # auth.test's team name
    stats = await rig.stats()
    assert stats["refused"] == 1 and stats["refused_by_reason"] == {"external": 1} and stats["errors"] == 0


@pytest.mark.parametrize("guest", ["U0GUEST001", "U0GUEST002"])  # single-channel, multi-channel
async def test_guests_are_refused_unless_allowed(rig: Rig, guest: str) -> None:
    await rig.start()
    await rig.mention(user=guest)
    assert rig.workspace.invocation_bodies() == []
    assert "guest accounts are not included" in rig.thread_text()
    await rig.stop()

    await rig.start(HEALTHBOT_ALLOW_GUESTS="true")
    await rig.mention(user=guest, ts="1712345679.000001")
    assert len(rig.workspace.invocation_bodies()) == 1 and "Costs rose 42%." in rig.thread_text()


async def test_another_organisation_is_answered_once_its_team_is_allowlisted(rig: Rig) -> None:
    await rig.start(HEALTHBOT_SLACK_TEAM_IDS="T0123ABCDE,T0EXTRN999")
    body = fixture("event_app_mention_slack_connect_external_user.json")
    assert await rig.slack_post(json.dumps(body).encode()) == 200
    await rig.settle()
    assert len(rig.workspace.invocation_bodies()) == 1


async def test_a_guests_slash_command_is_refused_to_them_alone(rig: Rig) -> None:
    await rig.start()
    fields = {k: v[0] for k, v in urllib.parse.parse_qs(
        (Path(__file__).parent / "fixtures" / "slack" / "slash_command_healthbot.txt").read_text().strip()).items()}
    fields.update(text="costs", user_id="U0GUEST001", response_url=f"{rig.slack.url}/hooks/1")
    assert await rig.slack_post(urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded") == 200
    await rig.settle()
    assert rig.slack.called("chat.postMessage") == []  # no question posted in the channel for them
    assert rig.workspace.invocation_bodies() == []
    assert rig.slack.hooks[-1]["response_type"] == "ephemeral" and "guest" in rig.slack.hooks[-1]["text"]


async def test_a_member_who_is_no_databricks_user_is_refused_and_one_who_is_answered(rig: Rig) -> None:
    rig.workspace.scim_users = [scim_user("venkman@ghostbusters.example.com")]
    rig.slack.emails["U0USER5678"] = "venkman@ghostbusters.example.com"
    await rig.start(policy="require_databricks_user: true\n")
    await rig.mention(user=MEMBER)
    assert rig.workspace.invocation_bodies() == []
    assert "spengler@ghostbusters.example.com has none" in rig.thread_text()
    await rig.mention(user="U0USER5678", ts="1712345679.000001")
    assert len(rig.workspace.invocation_bodies()) == 1
    assert rig.workspace.invocation_bodies()[0]["inputs"]["params"]["user_id"] == "venkman@ghostbusters.example.com"
    await rig.mention(user=MEMBER, ts="1712345680.000001")  # the negative answer is cached too
    scim_calls = rig.workspace.requests_to("/scim/v2/Users")
    assert len(scim_calls) == 2 and (await rig.stats())["refused_by_reason"] == {"not_databricks_user": 2}


async def test_a_slack_user_without_a_visible_email_is_told_why(rig: Rig) -> None:
    rig.slack.emails.clear()
    await rig.start(policy="require_databricks_user: true\n")
    await rig.mention()
    assert "users:read.email" in rig.thread_text() and rig.workspace.invocation_bodies() == []


async def test_a_security_answer_is_shown_to_platform_admins_and_withheld_from_others(rig: Rig) -> None:
    admin, nested, other = "egon@ghostbusters.example.com", "ray@ghostbusters.example.com", "spengler@ghostbusters.example.com"
    rig.workspace.scim_users = [scim_user(admin, groups=("platform-admins",)), scim_user(nested, user_id="7ray"),
                                scim_user(other, groups=("finops",))]
    rig.workspace.scim_groups = [scim_group("platform-admins", groups=("sre",)), scim_group("sre", members=("7ray",))]
    rig.slack.emails.update({"U0ADMIN001": admin, "U0NESTED01": nested})
    rig.workspace.default = Scripted(200, SECURITY_ANSWER)
    await rig.start(policy="domains:\n  security: [platform-admins]\n  cost: [finops, platform-admins]\n")
    await rig.mention(user=MEMBER)
    text = rig.thread_text()
    assert "touches security data, which is limited to platform-admins" in text and "admin tokens" not in text
    await rig.mention(user="U0ADMIN001", ts="1712345679.000001")  # a direct member
    await rig.mention(user="U0NESTED01", ts="1712345680.000001")  # a member through the nested group sre
    assert rig.thread_text().count("Two admin tokens were created") == 2 * 2  # text and block of each answer
    stats = await rig.stats()
    assert stats["refused_by_reason"] == {"withheld:security": 1} and stats["errors"] == 0


async def test_an_external_cannot_acknowledge_an_alert(rig: Rig) -> None:
    await rig.start(HEALTHBOT_ALERT_TOKEN="alert-token", HEALTHBOT_ALERT_CHANNELS="slack:C0PLATFORM1")
    alert = json.loads((Path(__file__).parent / "fixtures" / "databricks" / "sql_alert_v2_webhook_triggered.json").read_text())
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/alerts/databricks", json=alert,
                                                          headers={"Authorization": "Bearer alert-token"}) as resp:
        assert resp.status in (200, 202)
    await rig.slack.wait_for(lambda: rig.slack.called("chat.postMessage"))
    root = rig.slack.called("chat.postMessage")[0]
    acknowledge = next(a for a in root["blocks"][-1]["elements"] if a["action_id"] == "alert_acknowledge")
    payload = {"type": "block_actions", "user": {"id": "U0EXTRN001", "team_id": "T0EXTRN999"},
               "team": {"id": "T0123ABCDE"}, "channel": {"id": "C0PLATFORM1"},
               "container": {"type": "message", "channel_id": "C0PLATFORM1", "message_ts": root["_ts"]},
               "message": {"ts": root["_ts"], "blocks": root["blocks"]}, "actions": [dict(acknowledge, action_ts="1.0")],
               "api_app_id": "A0123ABCDE", "token": "x", "trigger_id": "1.2"}
    ephemeral = await rig.click_refused(payload)
    assert ephemeral["user"] == "U0EXTRN001" and "members of" in ephemeral["text"]
    assert not any("Acknowledged" in json.dumps(u.get("blocks")) for u in rig.slack.called("chat.update"))


async def test_a_guest_cannot_grade_an_answer_in_slack(rig: Rig) -> None:
    await rig.start()
    await rig.mention()  # a member asks and is answered
    await rig.slack.wait_for(lambda: "Costs rose 42%." in rig.thread_text())
    answer = next(m for m in rig.slack.posted() if "Costs rose 42%." in json.dumps(m))
    payload = fixture("interactive_block_actions_thread.payload.json")
    payload["user"].update(id="U0GUEST001", username="guest", name="guest")
    payload["message"].update(ts=answer["_ts"], blocks=answer["blocks"])
    payload["actions"] = [feedback_click(answer["blocks"], "down")]
    ephemeral = await rig.click_refused(payload)
    assert ephemeral["user"] == "U0GUEST001" and "guest accounts are not included" in ephemeral["text"]
    assert not rig.slack.called("chat.update")  # the answer keeps its buttons for members
    assert (await rig.stats())["refused_by_reason"] == {"guest": 1}
    store = rig.app[SLACK].handler.store  # type: ignore[index]
    assert store._db.execute("SELECT count(*) FROM feedback").fetchone()[0] == 0


async def guest_clicks(rig: Rig, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    """A Teams guest's Action.Execute on a card: the invoke's JSON answer."""
    invoke = teams_fixture("invoke_adaptive_card_action_execute.json")
    invoke["value"]["action"].update(verb=verb, data=data)
    invoke["serviceUrl"] = rig.connector.url + "/"
    invoke["from"] = {"id": "29:1FAKEguestMRI", "name": "A Guest", "aadObjectId": "99999999-2222-3333-4444-555555555555"}
    rig.connector.members[invoke["from"]["id"]] = teams_fixture("member_get_guest.json")
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/api/messages", json=invoke) as resp:
        assert resp.status == 200  # the refusal was a 500 before: msrest could not serialize its string value
        return dict(await resp.json())


async def test_a_teams_guest_cannot_acknowledge_an_alert(rig: Rig) -> None:
    await rig.start(HEALTHBOT_ALERT_TOKEN="alert-token")
    reply = await guest_clicks(rig, "alert_acknowledge", {"key": "sql:1", "channel": "19:channel@thread.tacv2"})
    assert reply == {"statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                     "value": reply["value"]} and "guest accounts are not included" in reply["value"]
    assert (await rig.stats())["refused_by_reason"] == {"guest": 1}


async def test_a_teams_guest_cannot_grade_an_answer(rig: Rig) -> None:
    await rig.start()
    await rig.teams(teams_fixture("message_personal.json"))  # a member asks and is answered
    await rig.connector.wait_for(lambda: rig.connector.cards())
    answer_id = next(iter(rig.app[TEAMS].answers))  # type: ignore[index]
    invoke = teams_fixture("invoke_message_submit_action_feedback.json")  # Teams' own 👎, from a guest
    invoke.update(replyToId=answer_id, serviceUrl=rig.connector.url + "/")
    invoke["from"] = {"id": "29:1FAKEguestMRI", "name": "A Guest", "aadObjectId": "99999999-2222-3333-4444-555555555555"}
    rig.connector.members[invoke["from"]["id"]] = teams_fixture("member_get_guest.json")
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/api/messages", json=invoke) as resp:
        assert resp.status == 200
    store = rig.app[SLACK].handler.store  # type: ignore[index]
    assert store._db.execute("SELECT count(*) FROM feedback").fetchone()[0] == 0
    assert (await rig.stats())["refused_by_reason"] == {"guest": 1}


@pytest.mark.parametrize("member, reason", [
    (teams_fixture("member_get_guest.json"), "guest"),
    ({**teams_fixture("member_get_user.json"), "tenantId": "99999999-0000-0000-0000-000000000000"}, "external"),
    (teams_fixture("member_get_anonymous.json"), "anonymous"),
])
async def test_teams_guests_other_tenants_and_anonymous_users_are_refused(rig: Rig, member: dict[str, Any],
                                                                        reason: str) -> None:
    await rig.start()
    activity = teams_fixture("message_personal.json")
    rig.connector.members[activity["from"]["id"]] = member
    await rig.teams(activity)
    assert rig.workspace.invocation_bodies() == []
    [refusal] = rig.connector.messages()
    card = json.dumps(refusal.card, ensure_ascii=False)
    assert "🔒" in card and "members of this organisation" in card and "Retry" not in card
    assert (await rig.stats())["refused_by_reason"] == {reason: 1}


async def test_refusals_are_counted_in_metrics(rig: Rig) -> None:
    await rig.start()
    await rig.mention(user="U0GUEST001")
    async with aiohttp.ClientSession() as http, http.get(f"{rig.url}/metrics") as resp:
        text = await resp.text()
    assert 'healthbot_access_refused_total{platform="slack",reason="guest"} 1.0' in text
    assert 'healthbot_messages_total{outcome="refused",platform="slack"} 1.0' in text


@pytest.mark.parametrize("policy, line, words", [
    ("require_databricks_user: true\ndomains:\n  securty: [platform-admins]\n", 3, "unknown domain 'securty'"),
    ("require_databricks_user: yes please\n", 1, "must be true or false"),
    ("domains:\n  costs: [finops]\nrequire_databricks_users: true\n", 3, "unknown key"),
    ("domains:\n  costs: 3\n", 2, "one or more Databricks groups"),
])
async def test_a_policy_with_a_mistake_stops_start_up_naming_its_line(rig: Rig, policy: str, line: int,
                                                                    words: str) -> None:
    path = rig.tmp_path / "policy.yml"
    path.write_text(policy)
    rig.monkeypatch.setenv("HEALTHBOT_ACCESS_POLICY", str(path))
    rig.monkeypatch.setenv("DATABRICKS_HOST", rig.workspace.url)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"line {line}:" in str(caught.value) and words in str(caught.value)


async def test_doctor_prints_the_policy_and_checks_its_groups(rig: Rig) -> None:
    from adapters.host.doctor import FAIL, OK, run_doctor

    rig.workspace.scim_groups = [scim_group("platform-admins")]
    await rig.start(policy="require_databricks_user: true\ndomains: {security: [platform-admins], costs: [finops]}\n")
    lines = [line for line in await run_doctor(load_settings()) if line.name.startswith("access")]
    text = "\n".join(str(line) for line in lines)
    assert "security: only platform-admins" in text and "require_databricks_user: yes" in text
    groups = {line.detail.split()[1]: line.mark for line in lines if line.name == "access group"}
    assert groups == {"platform-admins": OK, "finops": FAIL}
