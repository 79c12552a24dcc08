"""An agent served from a Databricks App (HEALTHBOT_ENDPOINT_NAME=apps/<name>): its deployments are the
versions — a pending deployment is a rollout thread, and rollback deploys an earlier successful
deployment's code again (`apps.deploy`), confirmed by the asker only."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.connector import FakeConnector
from tests.fakes.deployments import FakeDeployWorkspace
from tests.fakes.serving import fixture
from tests.fakes.slack import FakeSlack
from tests.test_rollback import CHANNEL, POLICY, RollbackRig, rollback_rig
from tests.test_rollouts import RolloutRig

APP = fixture("apps_get_running.json")
NAME = APP["name"]
ACTIVE = APP["active_deployment"]["deployment_id"]
EARLIER = "01f0c0ffee0000000000000000000007"


def deployment(deployment_id: str, state: str, path: str) -> dict[str, Any]:
    return {"deployment_id": deployment_id, "source_code_path": path, "mode": "SNAPSHOT",
            "status": {"state": state, "message": ""}, "create_time": f"2026-12-0{deployment_id[-1]}T09:00:00Z",
            "deployment_artifacts": {"source_code_path": f"/Workspace/.../src/{deployment_id}"}}


def with_app(workspace: FakeDeployWorkspace) -> None:
    workspace.apps[NAME] = copy.deepcopy(APP)
    workspace.app_deployments[NAME] = [
        copy.deepcopy(APP["active_deployment"]), deployment(EARLIER, "SUCCEEDED", "/Workspace/releases/7"),
        deployment("01f0c0ffee0000000000000000000006", "FAILED", "/Workspace/releases/6")]


@pytest.fixture
async def rollout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[RolloutRig]:
    slack, connector, workspace = FakeSlack(), FakeConnector(), FakeDeployWorkspace()
    with_app(workspace)
    for fake in (slack, connector, workspace):
        await fake.start()
    r = RolloutRig(slack, connector, workspace, tmp_path, monkeypatch)
    r.workspace = workspace
    yield r
    await r.stop()
    for fake in (slack, connector, workspace):
        await fake.stop()


async def test_a_new_app_deployment_is_a_rollout_thread(rollout: RolloutRig) -> None:
    await rollout.start(HEALTHBOT_ENDPOINT_NAME=f"apps/{NAME}")
    await rollout.looks()
    assert rollout.roots() == []
    rollout.workspace.apps[NAME]["pending_deployment"] = {
        "deployment_id": "01f0c0ffee0000000000000000000009", "source_code_path": "/Workspace/releases/9",
        "status": {"state": "IN_PROGRESS", "message": "Building"}}
    await rollout.looks()
    [root] = rollout.roots()
    assert f"apps/{NAME}: deployment 00000008 → deployment 00000009" in root["text"]
    rollout.workspace.finish_app_deploy(NAME)
    await rollout.looks()
    [reply] = rollout.replies()
    assert "✅ deployment 00000009 is serving" in reply["text"]


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[RollbackRig]:
    workspace = FakeDeployWorkspace()
    with_app(workspace)
    async with rollback_rig(monkeypatch, tmp_path, workspace) as r:
        yield r


async def test_rollback_redeploys_the_earlier_deployments_code(rig: RollbackRig) -> None:
    await rig.start(policy=POLICY, HEALTHBOT_ENDPOINT_NAME=f"apps/{NAME}", HEALTHBOT_ALERT_CHANNELS=f"slack:{CHANNEL}",
                    HEALTHBOT_DEPLOY_CHANNELS="off")
    await rig.command("rollback")
    [request] = rig.requests()
    assert f"Roll back the app {NAME} from deployment 00000008 to deployment 00000007" in request["text"]
    await rig.click(request, "deploy_confirm")
    assert rig.workspace.app_deploys == [{"source_code_path": f"/Workspace/.../src/{EARLIER}", "mode": "SNAPSHOT"}]
    rig.workspace.finish_app_deploy(NAME)
    await rig.slack.wait_for(lambda: any("is serving apps/" in p["text"] for p in rig.slack.posted()))
    await rig.command("rollback 00000006")
    assert "Deployment 00000006 of the app health-monitor-agent is FAILED, not SUCCEEDED" in rig.ephemerals()[-1]
    assert len(rig.workspace.app_deploys) == 1
