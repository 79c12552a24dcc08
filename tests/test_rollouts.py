"""Rollouts announced, at the wire: databricks-sdk's real client watches the fake workspace's endpoint
move v7 → v8, the fake Slack shows one thread per config update — once across a restart and two
replicas — and the before / after comparison, with *Roll back* when the new version is worse."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.deploy.watcher import DeployWatcher
from adapters.host.deploy_wiring import WATCHER
from adapters.host.server import STORE
from bot.store import RequestLogRow
from tests.test_charts import native_charts
from tests.conftest import postgres_schema
from tests.fakes.connector import FakeConnector
from tests.fakes.deployments import FakeDeployWorkspace, routes, served_entity
from tests.fakes.serving import Scripted, fixture
from tests.fakes.slack import FakeSlack
from tests.test_alerts import PLATFORM, AlertRig, install_in_team

POLL = 0.1


class RolloutRig(AlertRig):
    workspace: FakeDeployWorkspace

    async def start(self, **env: str) -> None:
        await super().start(**{"DATABRICKS_HOST": self.workspace.url, "DATABRICKS_TOKEN": self.workspace.token,
                               "HEALTHBOT_DEPLOY_POLL_S": str(POLL), **env})

    @property
    def watcher(self) -> DeployWatcher:
        assert self.app is not None
        return self.app[WATCHER]

    async def looks(self, n: int = 2) -> None:
        """n more looks at the endpoint by this replica, then the outbox drained."""
        target = self.watcher.polls + n
        deadline = time.monotonic() + 15
        while self.watcher.polls < target:
            assert time.monotonic() < deadline, "the watcher did not look"
            await asyncio.sleep(0.02)
        await self.delivered()

    async def log_answers(self, version: str, n: int, *, errors: int = 0, latency_ms: float = 2000.0,
                          since: float | None = None) -> None:
        assert self.app is not None
        store = self.app[STORE]
        at = since if since is not None else time.time()
        for i in range(n):
            await store.log_request(RequestLogRow(
                request_id=uuid.uuid4().hex, ts=at + i * 0.001, platform="slack", workspace="T", channel="C", thread="t",
                session_id="s", user_id="u", question="q", answer="a", confidence=0.8, latency_ms=latency_ms,
                error="unavailable" if i < errors else None, served_version=version))


@pytest.fixture(params=["sqlite", "postgres"])
async def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[RolloutRig]:
    slack, connector, workspace = FakeSlack(), FakeConnector(), FakeDeployWorkspace()
    for fake in (slack, connector, workspace):
        await fake.start()
    r = RolloutRig(slack, connector, workspace, tmp_path, monkeypatch)
    r.workspace = workspace
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "postgres":
            r.pg_schema = await stack.enter_async_context(postgres_schema())
        yield r
        await r.stop()
    for fake in (slack, connector, workspace):
        await fake.stop()


def text_of(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, ensure_ascii=False)


async def test_a_rollout_is_one_thread_updated_in_place_with_a_reply_when_it_serves(rig: RolloutRig) -> None:
    await rig.start()
    await rig.looks()
    assert rig.roots() == []  # the first look posts nothing
    rig.workspace.begin_update(served_entity(8, deployment="DEPLOYMENT_CREATING", message="Creating container image"))
    await rig.looks()
    [root] = rig.roots()
    assert root["channel"] == PLATFORM and "health_monitor_orchestrator: v7 → v8" in root["text"]
    assert "Creating container image" in text_of([root]) and "State: IN_PROGRESS" in text_of([root])
    assert all(b.get("type") != "actions" for b in root["blocks"])  # no Acknowledge / Investigate on a rollout
    rig.workspace.endpoint["pending_config"]["served_entities"][0]["state"]["deployment"] = "DEPLOYMENT_READY"
    await rig.looks()
    assert len(rig.roots()) == 1 and rig.replies() == [] and rig.slack.called("chat.update")  # updated in place
    rig.workspace.finish_update()
    await rig.looks()
    [reply] = rig.replies()
    assert reply["thread_ts"] == root["_ts"] and "✅ v8 is serving (the update took 1 min)" in reply["text"]
    assert "State: SERVING" in text_of(rig.slack.called("chat.update")[-1:])
    await rig.looks()
    assert len(rig.roots()) == 1 and len(rig.replies()) == 1


async def test_a_failed_update_says_why_and_a_split_shows_percentages(rig: RolloutRig) -> None:
    await rig.start()
    await rig.looks()
    rig.workspace.begin_update(served_entity(7), served_entity(8),
                               traffic=routes(("health_monitor_orchestrator-7", 90), ("health_monitor_orchestrator-8", 10)))
    await rig.looks()
    [root] = rig.roots()
    assert "v7 → v7 90 % / v8 10 %" in root["text"]
    rig.workspace.finish_update("UPDATE_FAILED", "Container build failed: requirement mlflow==9.9 not found")
    await rig.looks()
    [reply] = rig.replies()
    assert "🔴 The update failed" in reply["text"] and "mlflow==9.9 not found" in reply["text"]
    assert "v7 keeps serving" in reply["text"]


async def test_a_restart_neither_reposts_nor_misses_an_update(rig: RolloutRig) -> None:
    await rig.start()
    await rig.looks()
    rig.workspace.begin_update(served_entity(8))
    await rig.looks()
    await rig.stop()
    rig.workspace.finish_update()  # it ended while healthbot was down
    await rig.start()
    await rig.looks()
    assert len(rig.roots()) == 1
    [reply] = rig.replies()
    assert "v8 is serving" in reply["text"]
    await rig.stop()
    rig.workspace.begin_update(served_entity(9))
    rig.workspace.finish_update()  # a whole update while down: announced once, as served
    await rig.start()
    await rig.looks()
    assert len(rig.roots()) == 2 and "v8 → v9" in rig.roots()[-1]["text"]


@pytest.mark.parametrize("rig", ["postgres"], indirect=True)
async def test_two_replicas_announce_once(rig: RolloutRig) -> None:
    other = RolloutRig(rig.slack, rig.connector, rig.workspace, rig.tmp_path, rig.monkeypatch)
    other.workspace, other.pg_schema = rig.workspace, rig.pg_schema
    await rig.start()
    await other.start()
    try:
        await asyncio.sleep(POLL * 5)
        rig.workspace.begin_update(served_entity(8))
        await asyncio.sleep(POLL * 5)
        rig.workspace.finish_update()
        await asyncio.sleep(POLL * 5)
        await rig.delivered()
        await other.delivered()
        assert len(rig.roots()) == 1 and len(rig.replies()) == 1
        assert [rig.watcher.fence is not None, other.watcher.fence is not None].count(True) == 1
    finally:
        await other.stop()


async def serve_v8(rig: RolloutRig) -> float:
    await rig.start()
    await rig.looks()
    rig.workspace.begin_update(served_entity(8))
    await rig.looks()
    rig.workspace.finish_update()
    await rig.looks()
    return time.time()


async def test_the_comparison_flags_a_regression_and_offers_a_rollback(rig: RolloutRig) -> None:
    served_at = await serve_v8(rig)
    await rig.log_answers("7", 40, errors=1, latency_ms=3000.0, since=served_at - 3600)
    await rig.log_answers("8", 29, errors=5, latency_ms=5000.0)
    await rig.looks()
    assert len(rig.replies()) == 1  # 29 answers: not yet
    await rig.log_answers("8", 1)
    await rig.looks()
    replies = rig.replies()
    assert len(replies) == 2
    note = replies[-1]
    markdown = note["blocks"][0]["text"]
    assert note["blocks"][0]["type"] == "markdown" and markdown.startswith("⚠️ v8 is worse than v7")
    assert "| error rate | 2.5% | 16.7% |" in markdown and "| answers | 40 | 30 |" in markdown
    [button] = note["blocks"][1]["elements"]
    assert button["action_id"] == "deploy_rollback" and json.loads(button["value"]) == {"to": "7"}
    assert button["text"]["text"] == "Roll back to v7"
    await rig.slack.wait_for(lambda: native_charts(rig.slack))
    [(posted, block)] = native_charts(rig.slack)
    assert posted["thread_ts"] == note["thread_ts"] and block["title"].startswith("Error rate: v7 before, v8 after")
    await rig.log_answers("8", 10)
    await rig.looks()
    assert len(rig.replies()) == 2  # once


async def test_a_good_version_gets_a_comparison_without_a_button(rig: RolloutRig) -> None:
    served_at = await serve_v8(rig)
    await rig.log_answers("7", 20, latency_ms=3000.0, since=served_at - 3600)
    await rig.log_answers("8", 30, latency_ms=2800.0)
    await rig.looks()
    note = rig.replies()[-1]
    assert note["blocks"][0]["text"].startswith("✅ v8 compares well with v7 after 30 answers")
    assert len(note["blocks"]) == 1


async def test_a_denied_endpoint_degrades_health_naming_the_permission(rig: RolloutRig) -> None:
    denied = fixture("serving_error_403_permission_denied.json")
    rig.workspace.fail("/api/2.0/serving-endpoints/health_monitor_orchestrator",
                       *[Scripted(denied["status"], denied["body"])] * 50)
    await rig.start()
    deadline = time.monotonic() + 10
    while not rig.watcher.errors:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{rig.url}/health") as resp:
        body = await resp.json()
    assert resp.status == 503
    assert "403" in body["checks"]["deployments"]["detail"] and "CAN_VIEW" in body["checks"]["deployments"]["detail"]


@pytest.mark.parametrize("rig", ["sqlite"], indirect=True)
async def test_a_teams_channel_gets_the_rollout_and_a_comparison_card_with_the_button(rig: RolloutRig) -> None:
    channel = "19:0123456789abcdef0123456789abcdef@thread.tacv2"
    await rig.start(HEALTHBOT_DEPLOY_CHANNELS=f"teams:{channel}")
    await install_in_team(rig)
    await rig.looks()
    rig.workspace.begin_update(served_entity(8))
    await rig.looks()
    rig.workspace.finish_update()
    await rig.looks()
    served_at = time.time()
    await rig.log_answers("7", 10, since=served_at - 3600)
    await rig.log_answers("8", 30, errors=6)
    await rig.looks()
    [created] = [s for s in rig.connector.sent if s.kind == "create"]
    assert "health_monitor_orchestrator: v7 → v8" in json.dumps(created.activity["attachments"], ensure_ascii=False)
    replies = [s for s in rig.connector.sent if s.kind == "reply"]
    assert any("v8 is serving" in (s.activity.get("text") or "") for s in replies)
    cards = [s.activity["attachments"][0]["content"] for s in replies if s.activity.get("attachments")]
    [card] = [c for c in cards if c.get("actions")]
    assert card["body"][0]["text"].startswith("⚠️ v8 is worse than v7")
    [chart] = [c for c in cards if c["body"][0]["type"].startswith("Chart.")]  # the comparison's chart, native
    assert chart["body"][0]["title"] == "Error rate: v7 before, v8 after"
    assert chart["body"][0]["fallback"]["type"] == "Image"  # today's PNG for a client without charts
    assert any(block["type"] == "Table" for block in card["body"])  # the markdown table as a card table
    assert card["actions"] == [{"type": "Action.Execute", "title": "Roll back to v7", "verb": "deploy_rollback",
                                "data": {"to": "7"}}]
