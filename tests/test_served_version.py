"""Which version answered: every answer's served entity and version in the request log, from the
`served-model-name` header and the endpoint's config, streamed or whole; empty when not said."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.base import AgentRequest, ChatMessage
from bot.ops.stats import collect
from adapters.host.server import STORE
from tests.conftest import make_client
from tests.fakes.connector import FakeConnector
from tests.fakes.deployments import FakeDeployWorkspace, routes, served_entity
from tests.fakes.serving import Scripted, error, sse_fixture
from tests.fakes.slack import FakeSlack
from tests.test_access import MEMBER, Rig

REQUEST = AgentRequest([ChatMessage("user", "why?")], user_id="ana@example.com", session_id="s1")


@pytest.fixture
async def workspace() -> AsyncIterator[FakeDeployWorkspace]:
    fake = FakeDeployWorkspace()
    await fake.start()
    yield fake
    await fake.stop()


async def test_whole_and_streamed_answers_name_their_version(workspace: FakeDeployWorkspace) -> None:
    client = make_client(workspace, fmt="inputs")
    try:
        assert (await client.answer(REQUEST)).served_version == "7"
        workspace.default = Scripted(events=sse_fixture("serving_invocations_responses_agent_stream.sse"))
        streamed = [chunk async for chunk in make_client(workspace, fmt="responses").stream(REQUEST)][-1].answer
        assert streamed is not None and (streamed.served_entity, streamed.served_version) == (
            "health_monitor_orchestrator-7", "7")
    finally:
        await client.close()


async def test_a_new_entity_is_looked_up_and_a_missing_header_is_no_version(workspace: FakeDeployWorkspace) -> None:
    client = make_client(workspace, fmt="inputs")
    try:
        await client.answer(REQUEST)
        workspace.endpoint["config"]["served_entities"] = [served_entity(7), served_entity(8)]
        workspace.endpoint["config"]["traffic_config"] = routes(("health_monitor_orchestrator-7", 90),
                                                                ("health_monitor_orchestrator-8", 10))
        workspace.served_entity_name = "health_monitor_orchestrator-8"
        assert (await client.answer(REQUEST)).served_version == "8"
        workspace.served_entity_name = None
        assert (await client.answer(REQUEST)).served_version == ""
        workspace.served_entity_name = "some-other-entity"
        assert (await client.answer(REQUEST)).served_version == ""  # unknown even after a look: not guessed
    finally:
        await client.close()


async def test_a_failed_answer_keeps_the_version_its_error_response_named(workspace: FakeDeployWorkspace) -> None:
    workspace.default = error("serving_error_403_permission_denied.json")
    client = make_client(workspace, fmt="inputs")
    try:
        with pytest.raises(Exception) as raised:
            await client.answer(REQUEST)
    finally:
        await client.close()
    assert getattr(raised.value, "served_version", None) == "7"


async def test_the_request_log_and_stats_by_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    workspace: FakeDeployWorkspace) -> None:
    slack, connector = FakeSlack(), FakeConnector()
    for fake in (slack, connector):
        await fake.start()
    rig = Rig(slack, connector, workspace, tmp_path, monkeypatch)
    try:
        await rig.start(HEALTHBOT_ENDPOINT_FORMAT="inputs")
        for n, ts in enumerate(("1712345678.000001", "1712345679.000001", "1712345680.000001"), start=1):
            if n == 2:
                workspace.endpoint["config"]["served_entities"] = [served_entity(8)]
                workspace.served_entity_name = "health_monitor_orchestrator-8"
            if n == 3:
                workspace.default = error("serving_error_429_request_limit_exceeded.json")
            await rig.mention(user=MEMBER, ts=ts)
            await slack.wait_for(lambda: len(slack.posted()) >= n, timeout=30)  # answered (the first builds the SDK)
        assert rig.app is not None
        stats = json.loads((await collect(rig.app[STORE], 1)).as_json())
    finally:
        await rig.stop()
        for fake in (slack, connector):
            await fake.stop()
    by_version = stats["by_version"]
    assert sorted(by_version) == ["7", "8"]
    assert by_version["7"]["requests"] == 1 and by_version["7"]["errors"] == 0
    assert by_version["8"]["requests"] == 2 and by_version["8"]["errors"] == 1 and by_version["8"]["error_rate"] == 0.5
