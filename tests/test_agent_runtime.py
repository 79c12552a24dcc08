"""An agent on Agent Runtime (`agentbricks deploy` → a Databricks App named agent-bricks-<name>, running
DurableAgentServer): questions go to its invocation API (`/api/invocations`, not `/responses`), a new
deployment is a rollout thread, and rollback goes back to an earlier deployment's code — or says in the
thread why it cannot (Agent Runtime redeploys one workspace folder, so without a snapshot or a pinned
commit the earlier code is gone)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.databricks_config import databricks_config
from agent.base import AgentRequest, ChatMessage
from agent.serving import ServingClient
from tests.fakes.deployments import FakeDeployWorkspace
from tests.fakes.serving import fixture
from tests.test_rollback import CHANNEL, POLICY, RollbackRig, rollback_rig

NAME = "agent-bricks-health-monitor"
FOLDER = "/Workspace/Users/agent-sp/.agentbricks/health-monitor/src"


def deployment(number: int, *, snapshot: bool = True, state: str = "SUCCEEDED") -> dict[str, Any]:
    found: dict[str, Any] = {"deployment_id": f"01f0a9e1c0de000000000000000000{number:02d}", "source_code_path": FOLDER,
                             "mode": "SNAPSHOT", "status": {"state": state, "message": ""},
                             "create_time": f"2026-12-0{number}T09:00:00Z"}
    if snapshot:
        found["deployment_artifacts"] = {"source_code_path": f"/Workspace/.snapshots/{found['deployment_id']}"}
    return found


def agent_runtime_app(workspace: FakeDeployWorkspace, *earlier: dict[str, Any]) -> None:
    app = copy.deepcopy(fixture("apps_get_running.json"))
    active = deployment(9)
    app.update(name=NAME, url=workspace.url, active_deployment=active)
    workspace.apps[NAME] = app
    workspace.app_deployments[NAME] = [active, *earlier]


async def test_questions_go_to_the_invocation_api() -> None:
    workspace = FakeDeployWorkspace()
    await workspace.start()
    agent_runtime_app(workspace)  # its url: this fake, now that it listens
    client = ServingClient(config_factory=lambda: databricks_config(host=workspace.url, token=workspace.token),
                           endpoint_name=f"apps/{NAME}", streaming=True)
    try:
        request = AgentRequest([ChatMessage("user", "why did costs spike yesterday?")], user_id="ana@example.com",
                               session_id="thread-session-1", request_id="0190c0ffee0070008000000000000001")
        answer = await client.answer(request)
        assert answer.content == "Costs rose 42% yesterday, driven by the nightly ETL job."  # tool turns left out
        [sent] = workspace.invocations
        assert sent["session_id"] == "thread-session-1" and sent["id"] == "0190c0ff-ee00-7000-8000-000000000001"
        assert sent["input"]["actor"] == "ana@example.com"
        assert sent["input"]["messages"] == [{"role": "user", "content": "why did costs spike yesterday?"}]
        chunks = [chunk async for chunk in client.stream(request)]  # the invocation API is answered whole
        assert chunks[-1].answer is not None and chunks[-1].answer.content.startswith("Costs rose 42%")
    finally:
        await client.close()
        await workspace.stop()


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[RollbackRig]:
    workspace = FakeDeployWorkspace()
    async with rollback_rig(monkeypatch, tmp_path, workspace) as r:
        yield r


async def start(rig: RollbackRig) -> None:
    await rig.start(policy=POLICY, HEALTHBOT_ENDPOINT_NAME=f"apps/{NAME}", HEALTHBOT_ALERT_CHANNELS=f"slack:{CHANNEL}",
                    HEALTHBOT_DEPLOY_CHANNELS="off")


async def test_rollback_to_a_snapshot_deployment_is_sent_and_lands(rig: RollbackRig) -> None:
    agent_runtime_app(rig.workspace, deployment(8))
    await start(rig)
    await rig.command("rollback")
    [request] = rig.requests()
    await rig.click(request, "deploy_confirm")
    assert rig.workspace.app_deploys == [{"source_code_path": "/Workspace/.snapshots/01f0a9e1c0de00000000000000000008",
                                          "mode": "SNAPSHOT"}]
    rig.workspace.finish_app_deploy(NAME)
    await rig.slack.wait_for(lambda: any("is serving apps/" in p["text"] for p in rig.slack.posted()))


async def test_a_git_deployment_is_redeployed_at_its_resolved_commit(rig: RollbackRig) -> None:
    git = fixture("agent_runtime_app_git_deployment.json")
    agent_runtime_app(rig.workspace, git)
    await start(rig)
    await rig.command("rollback")
    await rig.click(rig.requests()[0], "deploy_confirm")
    [sent] = rig.workspace.app_deploys
    assert sent["git_source"]["commit"] == git["git_source"]["resolved_commit"] and "branch" not in sent["git_source"]
    assert sent["command"] == ["uv", "run", "start-server"] and sent["env_vars"] == git["env_vars"]


async def test_an_earlier_deployment_whose_code_is_gone_is_refused_saying_why(rig: RollbackRig) -> None:
    agent_runtime_app(rig.workspace, deployment(8, snapshot=False))
    await start(rig)
    await rig.command("rollback")
    assert rig.requests() == [] and rig.workspace.app_deploys == []
    assert "deploying it again would run the current code" in rig.ephemerals()[-1]


async def test_a_new_agent_runtime_deployment_is_a_rollout_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.fakes.connector import FakeConnector
    from tests.fakes.slack import FakeSlack
    from tests.test_rollouts import RolloutRig

    slack, connector, workspace = FakeSlack(), FakeConnector(), FakeDeployWorkspace()
    for fake in (slack, connector, workspace):
        await fake.start()
    agent_runtime_app(workspace, deployment(8))
    rollout = RolloutRig(slack, connector, workspace, tmp_path, monkeypatch)
    rollout.workspace = workspace
    try:
        await rollout.start(HEALTHBOT_ENDPOINT_NAME=f"apps/{NAME}")
        await rollout.looks()
        workspace.apps[NAME]["pending_deployment"] = {**deployment(10), "status": {"state": "IN_PROGRESS",
                                                                                     "message": "Deploying"}}
        await rollout.looks()
        [root] = rollout.roots()
        assert f"apps/{NAME}: deployment 00000009 → deployment 00000010" in root["text"]
        workspace.finish_app_deploy(NAME)
        await rollout.looks()
        assert "✅ deployment 00000010 is serving" in rollout.replies()[0]["text"]
    finally:
        await rollout.stop()
        for fake in (slack, connector, workspace):
            await fake.stop()
