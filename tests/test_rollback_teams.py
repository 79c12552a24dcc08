"""Rollback in Teams: `rollback 6` said to the bot in personal chat, the card's Confirm as an
Action.Execute invoke; only the asker's click sends the one `PUT …/config`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.deployments import FakeDeployWorkspace
from tests.fakes.workspace import scim_group, scim_user
from tests.test_teams import TeamsRig, start_rig


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[TeamsRig]:
    workspace = FakeDeployWorkspace()
    workspace.scim_users = [scim_user("alex.smith@contoso.example", user_id="u-alex")]
    workspace.scim_groups = [scim_group("platform-admins", members=("u-alex",))]
    await workspace.start()
    policy = tmp_path / "policy.yml"
    policy.write_text("deployers: [platform-admins]\n")
    r, runner = await start_rig(monkeypatch, tmp_path, workspace, DATABRICKS_HOST=workspace.url,
                                DATABRICKS_TOKEN=workspace.token, HEALTHBOT_ACCESS_POLICY=str(policy),
                                HEALTHBOT_DEPLOY_CHANNELS="off")
    yield r
    await runner.cleanup()
    await r.connector.stop()
    await workspace.stop()


def confirm_invoke(rig: TeamsRig, card: dict[str, Any], *, user: str | None = None) -> dict[str, Any]:
    [action] = [a for a in card["actions"] if a["verb"] == "deploy_confirm"]
    invoke = rig.activity("invoke_adaptive_card_action_execute.json",
                          conversation=rig.activity("message_personal.json")["conversation"])
    invoke["value"]["action"].update(verb=action["verb"], data=action["data"])
    if user is not None:
        invoke["from"] = {"id": user, "name": "Someone Else", "aadObjectId": "99999999-0000-0000-0000-000000000000"}
    return invoke


async def test_rollback_said_in_personal_chat_is_confirmed_by_the_asker_only(rig: TeamsRig) -> None:
    workspace: Any = rig.serving
    status, _ = await rig.post(rig.activity("message_personal.json", text="rollback 6"))
    assert status in (200, 201)
    await rig.connector.wait_for(lambda: rig.connector.sent)
    assert rig.connector.cards(), rig.connector.sent[-1].activity.get("text")
    [card] = rig.connector.cards()
    assert "Roll back health_monitor_orchestrator from v7 to v6?" in json.dumps(card, ensure_ascii=False)
    other = "29:1FAKEotherUser"
    rig.connector.members[other] = {**json.loads((Path(__file__).parent / "fixtures" / "teams" / "member_get_user.json")
                                                 .read_text()), "id": other, "email": "someone@contoso.example"}
    status, body = await rig.post(confirm_invoke(rig, card, user=other))
    assert status == 200 and "Only alex.smith@contoso.example can confirm" in json.dumps(body)
    assert workspace.config_puts == []
    status, body = await rig.post(confirm_invoke(rig, card))
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "rolled back health_monitor_orchestrator v7 → v6" in json.dumps(body["value"], ensure_ascii=False)
    [put] = workspace.config_puts
    assert put["served_entities"][0]["entity_version"] == "6"
    status, body = await rig.post(confirm_invoke(rig, card))
    assert "That rollback was already sent" in json.dumps(body) and len(workspace.config_puts) == 1
