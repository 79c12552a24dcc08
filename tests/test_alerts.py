"""Alert webhooks over HTTP into threads on the fake Slack Web API and the fake Bot Connector."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.config import ConfigError, load_settings
from adapters.host.server import ALERTS, SLACK, create_app
from bot.store import SqliteStore
from bot.store.postgres import PostgresStore
from tests.conftest import POSTGRES_DSN, make_client, postgres_schema
from tests.fakes.base import serve
from tests.fakes.connector import FakeConnector
from tests.fakes.serving import FakeServing
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, sign

FIXTURES = Path(__file__).parent / "fixtures" / "databricks"
TOKEN = "alert-token-for-tests"
PLATFORM = "C0PLATFORM1"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def generic(name: str = "High Error Rate", state: str = "TRIGGERED", **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": state, "severity": "high", "value": 0.14, "threshold": 0.1, "operator": ">",
            "text": "Error rate of the orchestrator over 10% in the last hour", **extra}


async def install_in_team(rig: Any) -> dict[str, Any]:
    """Install the app in the fixtures' team (a conversationUpdate adding the bot): the reference alert
    posts to that team's channel need is stored. Returns the activity."""
    install = json.loads((Path(__file__).parent / "fixtures" / "teams" / "message_channel_mention_new_post.json").read_text())
    install.update(type="conversationUpdate", serviceUrl=rig.connector.url + "/", text=None,
                   membersAdded=[{"id": install["recipient"]["id"]}])
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/api/messages", json=install) as resp:
        assert resp.status in (200, 201)
    return install


class AlertRig:
    def __init__(self, slack: FakeSlack, connector: FakeConnector, serving: FakeServing, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.slack, self.connector, self.serving, self.tmp_path, self.monkeypatch = slack, connector, serving, tmp_path, monkeypatch
        self.runner: web.AppRunner | None = None
        self.pg_schema: str | None = None  # set: the same tests on the PostgreSQL store
        self.pg_dsn = POSTGRES_DSN
        self.app: web.Application | None = None
        self.url = ""

    async def start(self, **env: str) -> None:
        values = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": self.slack.api_url,
                  "HEALTHBOT_ALERT_TOKEN": TOKEN, "HEALTHBOT_ALERT_CHANNELS": f"slack:{PLATFORM}",
                  "HEALTHBOT_ALERT_PACE_SECONDS": "0", **env}
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)
        store = PostgresStore(self.pg_dsn, schema=self.pg_schema) if self.pg_schema else SqliteStore(self.tmp_path / "bot.db")
        self.app = create_app(load_settings(), store=store, engine=make_client(self.serving))
        self.runner, self.url = await serve(self.app)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def dispatcher(self) -> Any:
        assert self.app is not None
        return self.app[ALERTS]

    async def send(self, body: Any, auth: str | None = f"Bearer {TOKEN}", raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        data = raw if raw is not None else json.dumps(body).encode()
        async with aiohttp.ClientSession() as http, http.post(f"{self.url}/alerts/databricks", data=data, headers=headers) as resp:
            return resp.status, await resp.json()

    async def delivered(self, timeout: float = 30.0) -> None:
        await self.dispatcher.drain(timeout)
        await asyncio.sleep(0.05)

    def roots(self) -> list[dict[str, Any]]:
        return [p for p in self.slack.called("chat.postMessage") if not p.get("thread_ts") and "_failed" not in p]

    def replies(self) -> list[dict[str, Any]]:
        """Replies in threads other than charts (those: tests/test_charts.py native_charts)."""
        return [p for p in self.slack.called("chat.postMessage") if p.get("thread_ts") and "_failed" not in p
                and not all(b.get("type") == "data_visualization" for b in p.get("blocks") or [{}])]


@pytest.fixture(params=["sqlite", "postgres"])
async def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
              fake_serving: FakeServing) -> AsyncIterator[AlertRig]:
    slack, connector = FakeSlack(), FakeConnector()
    await slack.start()
    await connector.start()
    r = AlertRig(slack, connector, fake_serving, tmp_path, monkeypatch)
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "postgres":
            r.pg_schema = await stack.enter_async_context(postgres_schema())
        await r.start()
        yield r
        await r.stop()
    await slack.stop()
    await connector.stop()


@pytest.mark.parametrize(
    ("name", "state", "title"),
    [
        ("sql_alert_v2_webhook_triggered.json", "TRIGGERED", "Daily revenue"),
        ("sql_alert_legacy_webhook_UNVERIFIED_redash_shape.json", "TRIGGERED", "fuga: count(*) greater than 5000"),
        ("jobs_webhook_on_failure_job.json", "failed", "nightly_cost_etl"),
        ("jobs_webhook_on_start_job.json", "started", "nightly_cost_etl"),
        ("jobs_webhook_on_start_task.json", "started", "nightly_cost_etl"),
        ("jobs_webhook_on_duration_warning_UNVERIFIED.json", "warning", "nightly_cost_etl"),
    ],
)
async def test_each_format_posts_one_thread_root(rig: AlertRig, name: str, state: str, title: str) -> None:
    status, body = await rig.send(load(name))
    assert status == 200 and body["state"] == state and body["targets"] == 1
    await rig.delivered()
    [root] = rig.roots()
    assert root["channel"] == PLATFORM and title in root["blocks"][0]["text"]["text"]
    assert f"State: {state}" in dumps(root["blocks"])
    assert [e["action_id"] for e in root["blocks"][-1]["elements"]] == [
        "alert_investigate", "alert_acknowledge", "alert_snooze_1h", "alert_snooze_4h", "alert_snooze_1d", "alert_snooze_ok"]


async def test_sql_alert_fields_are_read(rig: AlertRig) -> None:
    await rig.send(load("sql_alert_v2_webhook_triggered.json"))
    await rig.delivered()
    blocks = dumps(rig.roots()[0]["blocks"])
    assert "? > 100000" in blocks and "SELECT SUM(revenue)" in blocks
    assert "https://dbc-a1b2c3d4-e5f6.cloud.databricks.com/sql/alerts-v2/9876543210987654?o=1234567890123456" in blocks


async def test_repeat_then_resolve_then_retrigger_after_restart_stays_in_one_thread(rig: AlertRig) -> None:
    await rig.send(generic())
    await rig.send(generic())
    await rig.delivered()
    assert len(rig.roots()) == 1 and rig.replies() == []
    root_ts = rig.roots()[0]["_ts"]
    assert any(u["ts"] == root_ts and "Seen 2×" in dumps(u["blocks"]) for u in rig.slack.called("chat.update"))

    await rig.send(generic(state="OK"))
    await rig.delivered()
    [resolved] = rig.replies()
    assert resolved["thread_ts"] == root_ts and "resolved after" in resolved["text"]
    assert "State: OK" in dumps(rig.slack.called("chat.update")[-1]["blocks"])

    await rig.stop()
    await rig.start()
    await rig.send(generic())
    await rig.delivered()
    assert len(rig.roots()) == 1
    assert rig.replies()[-1]["thread_ts"] == root_ts and "again" in rig.replies()[-1]["text"]


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        (f"Bearer {TOKEN}", 200),
        ("Basic " + base64.b64encode(f"databricks:{TOKEN}".encode()).decode(), 200),
        ("Basic " + base64.b64encode(b"databricks:wrong").decode(), 401),
        ("Bearer wrong", 401),
        (None, 401),
        ("Basic !!!", 401),
    ],
)
async def test_authentication(rig: AlertRig, auth: str | None, status: int) -> None:
    assert (await rig.send(generic(), auth=auth))[0] == status


async def test_alerts_are_closed_without_a_token(rig: AlertRig) -> None:
    await rig.stop()
    rig.monkeypatch.delenv("HEALTHBOT_ALERT_TOKEN")
    await rig.start(HEALTHBOT_ALERT_TOKEN="")
    status, body = await rig.send(generic())
    assert status == 503 and "set HEALTHBOT_ALERT_TOKEN" in body["error"]


async def test_bad_bodies(rig: AlertRig) -> None:
    status, body = await rig.send({"hello": "world"})
    assert status == 400 and "unknown alert format" in body["error"]
    status, body = await rig.send(None, raw=b"{nope")
    assert status == 400
    status, body = await rig.send(generic(text="x" * 300_000))
    assert status == 413
    await rig.delivered()
    assert rig.roots() == []


async def test_a_body_arriving_in_slow_chunks_is_read_whole(rig: AlertRig) -> None:
    data = json.dumps(generic(text="y" * 100_000)).encode()

    async def slowly():  # type: ignore[no-untyped-def]
        for start in range(0, len(data), 16_384):
            yield data[start:start + 16_384]
            await asyncio.sleep(0.02)

    async with aiohttp.ClientSession() as http, http.post(
        f"{rig.url}/alerts/databricks", data=slowly(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def test_routes_match_continue_and_default(rig: AlertRig) -> None:
    routes = rig.tmp_path / "routes.yml"
    routes.write_text(
        "routes:\n"
        "  - match: {name: 'High*', state: [TRIGGERED, OK]}\n"
        "    targets: [slack:C0ONCALL]\n"
        "    continue: true\n"
        "  - match: {domain: performance}\n"
        "    targets: [slack:C0PERF]\n"
        "  - match: {source: job}\n"
        "    targets: [slack:C0JOBS]\n")
    await rig.stop()
    await rig.start(HEALTHBOT_ALERT_ROUTES=str(routes))
    assert (await rig.send(generic("High Error Rate")))[1]["targets"] == 2  # onCall + performance (error rate)
    assert (await rig.send(load("jobs_webhook_on_failure_job.json")))[1]["targets"] == 1
    assert (await rig.send(generic("Disk almost full")))[1]["targets"] == 1  # default channel
    await rig.delivered()
    assert sorted(r["channel"] for r in rig.roots()) == ["C0JOBS", "C0ONCALL", "C0PERF", PLATFORM]


def test_a_bad_routes_file_fails_at_start_with_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    routes = tmp_path / "routes.yml"
    routes.write_text("routes:\n  - match: {name: 'x'}\n    targets: [slack:C0A]\n  - match: {nmae: 'typo'}\n    targets: [slack:C0B]\n")
    monkeypatch.setenv("HEALTHBOT_ALERT_ROUTES", str(routes))
    with pytest.raises(ConfigError, match=r"line 4: unknown match key\(s\) nmae"):
        load_settings()
    routes.write_text("routes:\n  - match: {name: 'x'}\n    targets: [discord:123]\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_settings()


async def test_question_in_the_alert_thread_carries_the_alert_context(rig: AlertRig) -> None:
    await rig.send(load("jobs_webhook_on_failure_job.json"))
    await rig.delivered()
    root = rig.roots()[0]
    event = json.loads((Path(__file__).parent / "fixtures" / "slack" / "event_app_mention_thread.json").read_text())
    event["event"].update(channel=PLATFORM, thread_ts=root["_ts"], text="<@U0BOT12345> why did this fire?")
    body = json.dumps(event).encode()
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/slack/events", data=body,
                                                          headers={"Content-Type": "application/json", **sign(body)}) as resp:
        assert resp.status == 200
    await rig.slack.wait_for(lambda: any("markdown" in json.dumps(p.get("blocks")) for p in rig.replies()))
    sent = rig.serving.invocation_bodies()[0]["inputs"]
    assert sent["messages"][0]["role"] == "system" and "nightly_cost_etl" in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "why did this fire?"}


async def test_investigate_acknowledge_and_auto_investigate(rig: AlertRig) -> None:
    routes = rig.tmp_path / "routes.yml"
    routes.write_text("routes:\n  - match: {name: 'Auto*'}\n    targets: [slack:C0AUTO]\n    investigate: true\n")
    await rig.stop()
    await rig.start(HEALTHBOT_ALERT_ROUTES=str(routes))
    await rig.send(generic("Auto cost spike"))
    await rig.delivered()
    await rig.app[SLACK].drain()  # type: ignore[index]
    await rig.slack.wait_for(lambda: any(p["channel"] == "C0AUTO" and "markdown" in json.dumps(p.get("blocks")) for p in rig.replies()))
    assert "Auto cost spike" in rig.serving.invocation_bodies()[0]["inputs"]["messages"][-1]["content"]

    await rig.send(generic("High Error Rate"))
    await rig.delivered()
    root = next(r for r in rig.roots() if r["channel"] == PLATFORM)
    for action in root["blocks"][-1]["elements"]:
        payload = {"type": "block_actions", "user": {"id": "U0USER1234", "team_id": "T0123ABCDE"}, "team": {"id": "T0123ABCDE"},
                   "channel": {"id": PLATFORM}, "container": {"type": "message", "channel_id": PLATFORM, "message_ts": root["_ts"]},
                   "message": {"ts": root["_ts"], "blocks": root["blocks"]}, "actions": [dict(action, action_ts="1.0")],
                   "api_app_id": "A0123ABCDE", "token": "x", "trigger_id": "1.2"}
        body = ("payload=" + __import__("urllib.parse").parse.quote(json.dumps(payload))).encode()
        async with aiohttp.ClientSession() as http, http.post(
            f"{rig.url}/slack/events", data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)}) as resp:
            assert resp.status == 200
    await rig.slack.wait_for(lambda: any(u["ts"] == root["_ts"] and "Acknowledged by spengler" in dumps(u["blocks"])
                                         for u in rig.slack.called("chat.update")))
    await rig.slack.wait_for(lambda: any(p["thread_ts"] == root["_ts"] and "markdown" in json.dumps(p.get("blocks"))
                                         for p in rig.replies()))


async def test_slack_errors_delay_delivery_then_deliver_once(rig: AlertRig) -> None:
    rig.slack.fail("chat.postMessage", 500, {"ok": False, "error": "internal_error"}, times=6)
    rig.dispatcher.backoff_base_s = 0.5  # the retry comes 0.25-0.5 s after the first attempt fails
    await rig.send(generic())
    await rig.slack.wait_for(lambda: any("_failed" in p for p in rig.slack.called("chat.postMessage")))
    counts = (await rig.dispatcher.status())
    assert counts["pending"] == 1 and rig.roots() == []
    await rig.delivered()
    assert len(rig.roots()) == 1 and (await rig.dispatcher.status())["delivered"] == 1


async def test_pending_deliveries_survive_a_restart(rig: AlertRig) -> None:
    rig.slack.fail("chat.postMessage", 200, {"ok": False, "error": "service_unavailable"}, times=1000)
    for i in range(5):
        assert (await rig.send(generic(f"Alert {i}")))[0] == 200
    await asyncio.sleep(0.2)
    await rig.stop()  # the process goes away with everything still pending
    rig.slack.failures.clear()
    await rig.start()
    await rig.delivered()
    names = sorted(r["blocks"][0]["text"]["text"] for r in rig.roots())
    assert names == [f"🔴 Alert {i}" for i in range(5)]


async def test_a_gone_channel_fails_for_good_with_the_reason(rig: AlertRig) -> None:
    rig.slack.fail("chat.postMessage", 200, {"ok": False, "error": "channel_not_found"})
    await rig.send(generic())
    await rig.delivered()
    status = (await rig.dispatcher.status())
    assert status["failed"] == 1 and "channel_not_found" in status["recent_failures"][0][1]


async def test_a_storm_is_stored_delivered_and_grouped(rig: AlertRig) -> None:
    statuses = await asyncio.gather(*(rig.send(generic(f"Storm alert {i}")) for i in range(300)))
    assert all(status == 200 for status, _ in statuses)
    await rig.delivered()
    status = (await rig.dispatcher.status())
    assert status["delivered"] == 300 and status["pending"] == 0 and status["failed"] == 0
    roots = rig.roots()
    assert len(roots) == 11  # ten alerts, then one digest thread for the rest
    assert "Alert storm" in roots[-1]["blocks"][0]["text"]["text"]
    assert "Seen 290×" in dumps(rig.slack.called("chat.update")[-1]["blocks"])


async def test_posts_to_one_channel_are_paced(rig: AlertRig) -> None:
    await rig.stop()
    await rig.start(HEALTHBOT_ALERT_PACE_SECONDS="0.1")
    for i in range(5):
        await rig.send(generic(f"Paced alert {i}"))
    await rig.delivered()
    times = [c.at for c in rig.slack.api if c.method == "chat.postMessage"]
    assert len(times) == 5
    assert all(later - earlier >= 0.09 for earlier, later in zip(times, times[1:]))


async def test_alert_text_cannot_ping_or_forge(rig: AlertRig) -> None:
    await rig.send(generic("<!channel> @here *x* <https://evil.example|click>", text="<@U0USER1234> <!everyone>"))
    await rig.delivered()
    root = rig.roots()[0]
    assert root["parse"] == "none" and "<" not in root["text"] and "‹!channel›" in root["text"]
    assert "https://" not in root["text"] and "*x*" not in root["text"]  # no link, no bold (bot.text.inert)
    assert root["blocks"][0]["text"]["type"] == "plain_text"
    for block in root["blocks"]:
        for text in [block.get("text")] + block.get("fields", []) + block.get("elements", []):
            if isinstance(text, dict) and text.get("type") == "mrkdwn":
                assert "<!" not in text["text"] and "<@" not in text["text"]


async def test_jobs_enrichment_from_the_jobs_api(rig: AlertRig) -> None:
    rig.serving.runs["912345678901234"] = {
        "run_id": 912345678901234, "job_id": 516892700102118,
        "run_page_url": "https://dbc.example.com/jobs/516892700102118/runs/912345678901234",
        "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED", "state_message": "Task load_costs failed"},
        "tasks": [{"task_key": "load_costs", "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED",
                                                        "state_message": "AnalysisException: table not found"}},
                  {"task_key": "report", "state": {"life_cycle_state": "SKIPPED", "result_state": "SKIPPED"}}]}
    await rig.stop()
    await rig.start(DATABRICKS_HOST=rig.serving.url, DATABRICKS_TOKEN=rig.serving.token)
    await rig.send(load("jobs_webhook_on_failure_job.json"))
    await rig.delivered()
    blocks = dumps(rig.roots()[0]["blocks"])
    assert "Task load_costs failed" in blocks and "task load_costs FAILED: AnalysisException: table not found" in blocks
    assert "runs/912345678901234|Run" in blocks


async def test_teams_targets_use_the_stored_reference(rig: AlertRig) -> None:
    channel = "19:0123456789abcdef0123456789abcdef@thread.tacv2"
    await rig.stop()
    await rig.start(HEALTHBOT_ALERT_CHANNELS=f"teams:{channel},teams:19:unknown@thread.tacv2")
    await install_in_team(rig)
    await rig.send(generic())
    await rig.send(generic(state="OK"))
    await rig.delivered()
    [created] = [s for s in rig.connector.sent if s.kind == "create"]
    assert created.activity["_create"]["channelData"]["channel"]["id"] == channel
    assert "High Error Rate" in dumps(created.activity["attachments"])
    thread = f"{channel};messageid={created.activity.get('id') or ''}"
    reply = next(s for s in rig.connector.sent if s.kind == "reply" and "resolved after" in (s.activity.get("text") or ""))
    assert reply.conversation_id.startswith(f"{channel};messageid=")
    assert any(s.kind == "update" for s in rig.connector.sent)
    status = (await rig.dispatcher.status())
    assert status["failed"] == 2 and "install the healthbot app" in status["recent_failures"][0][1]
    del thread


async def test_a_chunked_body_over_the_limit_is_413(rig: AlertRig) -> None:
    async def endless():  # type: ignore[no-untyped-def]
        yield b'{"name": "x", "state": "TRIGGERED", "text": "'
        for _ in range(40):
            yield b"z" * 16_384

    async with aiohttp.ClientSession() as http, http.post(
        f"{rig.url}/alerts/databricks", data=endless(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
