"""Rollback from the chat, at the wire: signed slash commands and button clicks into the app, the fake
workspace (databricks-sdk's real client) records the one `PUT …/config`, compared field by field with
the served entity it replaces. Refused, confirmed, confirmed by someone else, double-clicked, the alias
moved, a missing permission, an update in progress, and a crash between marking and sending."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.host.server import STORE
from bot.store.deploys import SENDING, Rollback
from tests.fakes.connector import FakeConnector
from tests.fakes.deployments import FakeDeployWorkspace, served_entity
from tests.fakes.serving import Scripted, fixture
from tests.fakes.slack import FakeSlack
from tests.fakes.slack import fixture as slack_fixture
from tests.fakes.workspace import scim_group, scim_user
from tests.test_access import MEMBER, Rig

OTHER = "U0USER5678"
POLICY = "deployers: [platform-admins]\n"
CHANNEL = "C0123ABCDEF"


class RollbackRig(Rig):
    workspace: FakeDeployWorkspace

    async def click(self, message: dict[str, Any], action_id: str, user: str = MEMBER) -> None:
        """Click the button `action_id` on a message healthbot posted (its blocks as sent)."""
        payload = slack_fixture("interactive_block_actions_thread.payload.json")
        [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                    if e["action_id"] == action_id]
        payload["user"] = {"id": user, "username": user, "name": user, "team_id": "T0123ABCDE"}
        payload["message"] = {"type": "message", "ts": message["_ts"], "text": message["text"],
                              "blocks": message["blocks"], **({"thread_ts": message["thread_ts"]}
                                                              if message.get("thread_ts") else {})}
        payload["container"] = {"type": "message", "message_ts": message["_ts"], "channel_id": CHANNEL}
        payload["actions"] = [{**button, "action_ts": f"{time.time():.6f}", "block_id": "b"}]
        body = ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()
        assert await self.slack_post(body, "application/x-www-form-urlencoded") == 200
        await self.settle()

    def requests(self) -> list[dict[str, Any]]:
        """The rollback requests as posted (with their buttons, whatever became of them since)."""
        return [p for p in self.slack.called("chat.postMessage") if any(b["type"] == "actions" for b in p.get("blocks", []))]

    def ephemerals(self) -> list[str]:
        return [c["text"] for c in self.slack.called("chat.postEphemeral")] + [h["text"] for h in self.slack.hooks]


@contextlib.asynccontextmanager
async def rollback_rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                       workspace: FakeDeployWorkspace) -> AsyncIterator[RollbackRig]:
    """Slack, the connector and the workspace running; spengler is a deployer (platform-admins), venkman a
    member who is not."""
    slack, connector = FakeSlack(), FakeConnector()
    for fake in (slack, connector, workspace):
        await fake.start()
    slack.emails[OTHER] = "venkman@ghostbusters.example.com"
    workspace.scim_users = [scim_user("spengler@ghostbusters.example.com", user_id="u-spengler"),
                            scim_user("venkman@ghostbusters.example.com", user_id="u-venkman")]
    workspace.scim_groups = [scim_group("platform-admins", members=("u-spengler",))]
    monkeypatch.setattr("bot.deploy.rollback.FOLLOW_EVERY_S", 0.05)
    r = RollbackRig(slack, connector, workspace, tmp_path, monkeypatch)
    r.workspace = workspace
    yield r
    await r.stop()
    for fake in (slack, connector, workspace):
        await fake.stop()


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[RollbackRig]:
    async with rollback_rig(monkeypatch, tmp_path, FakeDeployWorkspace()) as r:
        yield r


async def start(rig: RollbackRig, policy: str | None = POLICY, **env: str) -> None:
    await rig.start(policy=policy, HEALTHBOT_ALERT_CHANNELS=f"slack:{CHANNEL}",
                    HEALTHBOT_DEPLOY_CHANNELS="off", **env)


async def test_without_deployers_nobody_may_roll_back_and_the_refusal_says_how(rig: RollbackRig) -> None:
    await start(rig, policy=None)
    await rig.command("rollback")
    assert rig.workspace.config_puts == [] and rig.requests() == []
    assert "list the Databricks groups allowed to roll back under `deployers:`" in rig.ephemerals()[-1]


async def test_a_member_outside_the_deployers_is_refused(rig: RollbackRig) -> None:
    await start(rig)
    await rig.command("rollback", user=OTHER)
    assert rig.requests() == [] and "Only members of platform-admins" in rig.ephemerals()[-1]


async def test_confirmed_by_the_asker_sends_one_update_copying_the_entity(rig: RollbackRig) -> None:
    await start(rig, HEALTHBOT_ROLLBACK_ALIAS="production")
    current = rig.workspace.endpoint["config"]["served_entities"][0]
    await rig.command("rollback")
    [request] = rig.requests()
    assert "Roll back health_monitor_orchestrator from v7 to v6 and move @production to v6?" in request["text"]
    assert rig.workspace.config_puts == []
    await rig.click(request, "deploy_confirm", user=OTHER)  # someone else: told, nothing sent
    assert rig.workspace.config_puts == []
    assert "Only spengler@ghostbusters.example.com can confirm" in rig.ephemerals()[-1]
    await rig.click(request, "deploy_confirm")
    [put] = rig.workspace.config_puts
    [entity] = put["served_entities"]
    expected = {k: v for k, v in current.items() if k not in ("state", "creator", "creation_timestamp")}
    assert entity == {**expected, "entity_version": "6"}  # environment variables, size, scale to zero kept
    assert put["traffic_config"] == {"routes": [{"served_entity_name": current["name"], "traffic_percentage": 100}]}
    assert rig.workspace.aliases["production"] == 6
    line = next(p["text"] for p in rig.slack.posted() if p.get("thread_ts") == request["_ts"])
    assert "🔁 spengler@ghostbusters.example.com rolled back health_monitor_orchestrator v7 → v6" in line
    assert "@production now points to v6" in line
    updated = rig.slack.called("chat.update")[-1]
    assert updated["ts"] == request["_ts"] and all(b["type"] != "actions" for b in updated["blocks"])
    await rig.click(request, "deploy_confirm")  # a second click, a replayed payload: nothing more
    assert len(rig.workspace.config_puts) == 1 and "already sending" not in rig.ephemerals()[-1]
    assert "That rollback was already sent" in rig.ephemerals()[-1]
    rig.workspace.finish_update()
    await rig.slack.wait_for(lambda: any("is serving health_monitor_orchestrator again" in p["text"]
                                         for p in rig.slack.posted()))
    assert rig.app is not None
    audit = [r for r in await rig.app[STORE].requests_since(0) if r.question.startswith("rollback")]
    assert [(r.user_id, r.error) for r in audit] == [("U0USER1234", None)]


async def test_two_clicks_at_once_send_one_update(rig: RollbackRig) -> None:
    await start(rig)
    await rig.command("rollback 5")
    [request] = rig.requests()
    await asyncio.gather(rig.click(request, "deploy_confirm"), rig.click(request, "deploy_confirm"))
    assert len(rig.workspace.config_puts) == 1 and rig.workspace.config_puts[0]["served_entities"][0]["entity_version"] == "5"


async def test_cancel_and_preconditions(rig: RollbackRig) -> None:
    await start(rig)
    await rig.command("rollback 6")
    [request] = rig.requests()
    await rig.click(request, "deploy_cancel")
    await rig.click(request, "deploy_confirm")
    assert rig.workspace.config_puts == [] and "That rollback was already canceled" in rig.ephemerals()[-1]
    rig.workspace.model_versions["4"] = "PENDING_REGISTRATION"
    await rig.command("rollback 4")
    assert "Version 4 of main.health_monitor.orchestrator is PENDING_REGISTRATION, not READY" in rig.ephemerals()[-1]
    await rig.command("rollback 42")
    assert "Version 42 of main.health_monitor.orchestrator does not exist" in rig.ephemerals()[-1]
    await rig.command("rollback 7")
    assert "already serves v7" in rig.ephemerals()[-1]
    rig.workspace.begin_update(served_entity(8))
    await rig.command("rollback 6")
    assert "is being updated right now" in rig.ephemerals()[-1]
    assert len(rig.requests()) == 1 and rig.workspace.config_puts == []


async def test_a_missing_can_manage_is_named_and_nothing_is_left_unsaid(rig: RollbackRig) -> None:
    denied = fixture("serving_error_403_permission_denied.json")
    rig.workspace.fail("/api/2.0/serving-endpoints/health_monitor_orchestrator/config",
                       Scripted(denied["status"], denied["body"]))
    await start(rig)
    await rig.command("rollback 6")
    [request] = rig.requests()
    await rig.click(request, "deploy_confirm")
    line = next(p["text"] for p in rig.slack.posted() if p.get("thread_ts") == request["_ts"])
    assert "failed: 403" in line and "CAN_MANAGE on the serving endpoint health_monitor_orchestrator" in line
    assert "Nothing was changed" in line


async def test_a_rollback_interrupted_by_a_crash_is_reported_after_restart_not_resent(rig: RollbackRig) -> None:
    await start(rig)
    await rig.command("rollback 6")
    [request] = rig.requests()
    assert rig.app is not None
    store = rig.app[STORE]
    [pending] = await store.deploys.rollbacks_in("pending")
    await store.deploys.claim_rollback(pending.id, pending.asker, SENDING)  # marked, then the process died
    await rig.stop()
    await start(rig)
    await rig.slack.wait_for(lambda: any("was interrupted by a restart" in p["text"] for p in rig.slack.posted()))
    line = next(p for p in rig.slack.posted() if "interrupted" in p["text"])
    assert line["thread_ts"] == request["_ts"] and "will not send it again" in line["text"]
    assert rig.workspace.config_puts == []
    assert [r.status for r in await rig.app[STORE].deploys.rollbacks_in("interrupted")] == ["interrupted"]


async def test_the_comparisons_button_asks_for_confirmation_in_the_rollout_thread(rig: RollbackRig) -> None:
    await start(rig)
    rollout = {"_ts": "1712345000.000100", "text": "⚠️ v8 is worse than v7", "thread_ts": "1712345000.000001",
               "blocks": [{"type": "markdown", "text": "⚠️ v8 is worse"}, {"type": "actions", "elements": [
                   {"type": "button", "action_id": "deploy_rollback", "value": json.dumps({"to": "6"}),
                    "text": {"type": "plain_text", "text": "Roll back to v6"}}]}]}
    await rig.click(rollout, "deploy_rollback")
    [request] = [r for r in rig.requests() if r.get("thread_ts") == "1712345000.000001"]
    assert "from v7 to v6" in request["text"]


@pytest.mark.parametrize("clicks", [2])
async def test_concurrent_claims_on_postgresql_take_once(clicks: int) -> None:
    from bot.store.postgres import PostgresStore
    from tests.conftest import POSTGRES_DSN, postgres_schema

    async with postgres_schema() as schema:
        store = PostgresStore(POSTGRES_DSN, schema=schema)
        try:
            now = time.time()
            await store.deploys.create_rollback(Rollback("r1", "ep", "slack:U1", "ana", "8", "7", "pending", "", "{}",
                                                         now, now + 600, now))
            results = await asyncio.gather(*(store.deploys.claim_rollback("r1", "slack:U1", SENDING)
                                             for _ in range(clicks)))
        finally:
            await store.close()
    assert sorted(type(r).__name__ for r in results) == ["Rollback", "str"]
    assert "already sending" in next(r for r in results if isinstance(r, str))


async def test_the_checklist_is_posted_for_deployers_only(rig: RollbackRig) -> None:
    await start(rig)
    await rig.command("checklist", user=OTHER)
    assert "Only members of platform-admins may see the deployment checklist in the chat" in rig.ephemerals()[-1]
    await rig.command("checklist")
    await rig.slack.wait_for(lambda: any("Deployment checklist for" in json.dumps(p.get("blocks", []))
                                         for p in rig.slack.posted()), timeout=20)
    [posted] = [p for p in rig.slack.posted() if "Deployment checklist for" in json.dumps(p.get("blocks", []))]
    markdown = posted["blocks"][0]["text"]
    assert "- ✓ endpoint_ready: health_monitor_orchestrator READY" in markdown
    assert "- – app: DATABRICKS_APP_NAME is not set" in markdown
