"""Genuine MLflow agents: what their servers really send, recorded from MLflow's own AgentServer
(tests/mlflow_agents/, fixtures in tests/fixtures/mlflow/agent_server_*), replayed at the wire by the
fake endpoint, and — once — the real AgentServer in a subprocess behind a workspace-shaped proxy.

The three defects these pin: tool output shown as the answer, a failed stream shown as complete, and
a default request format real agents refuse.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent.base import AgentRequest, Answer, ChatMessage, Chunk
from agent.errors import EngineError, ErrorKind
from agent.serving import ServingClient
from bot.handler import ConversationHandler
from bot.models import Incoming, Membership, Platform, ThreadKey
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.serving import FakeServing, Scripted

ROOT = Path(__file__).resolve().parents[1]
MLFLOW = ROOT / "tests" / "fixtures" / "mlflow"
REQUEST = AgentRequest([ChatMessage("user", "why did costs spike?")], user_id="ana@example.com", session_id="s1")
ANSWER = "Let me check the billing data.\n\nCosts rose 42% day over day."


def recorded(name: str) -> list[str]:
    return [line[len("data: "):] for line in (MLFLOW / name).read_text().splitlines() if line.startswith("data: ")
            and line != "data: [DONE]"] + ["[DONE]"]


async def streamed(client: ServingClient) -> tuple[list[Chunk], Answer]:
    chunks = [chunk async for chunk in client.stream(REQUEST)]
    assert chunks[-1].answer is not None
    return chunks[:-1], chunks[-1].answer


async def test_a_chat_agent_streams_tool_messages_as_stages_never_as_answer_text(fake_serving: FakeServing) -> None:
    fake_serving.default = Scripted(events=recorded("agent_server_chat_agent_stream_with_tool_message.sse"))
    client = make_client(fake_serving, fmt="chat_agent")
    try:
        chunks, answer = await streamed(client)
    finally:
        await client.close()
    text = "".join(chunk.text for chunk in chunks)
    assert "TOOL OUTPUT" not in text and "TOOL OUTPUT" not in answer.content
    assert text == answer.content == "Costs rose 42% day over day."
    assert [c.stage for c in chunks if c.stage] == ["asking the cost agent…", "reading what the cost agent found…"]
    assert answer.sources == ["system.billing.usage"] and answer.confidence == 0.9


async def test_a_responses_agent_preamble_and_answer_read_the_same_streamed_and_whole(fake_serving: FakeServing) -> None:
    fake_serving.default = Scripted(events=recorded("agent_server_responses_stream_with_tool_call.sse"))
    client = make_client(fake_serving, fmt="responses")
    try:
        chunks, answer = await streamed(client)
        fake_serving.default = Scripted(body=json.loads((MLFLOW / "agent_server_responses_invoke.json").read_text()))
        whole = await client.answer(REQUEST)
    finally:
        await client.close()
    shown = "".join(chunk.text for chunk in chunks)
    assert shown == answer.content == whole.content == ANSWER
    assert "TOOL OUTPUT" not in shown
    assert [c.stage for c in chunks if c.stage] == ["asking the cost agent…", "reading the result…"]


async def test_whole_chat_agent_answers_join_every_assistant_message_and_skip_tool_messages(
        fake_serving: FakeServing) -> None:
    body = {"messages": [
        {"role": "assistant", "content": "Let me check the billing data.", "id": "m1"},
        {"role": "assistant", "content": "", "id": "m2", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "cost_agent", "arguments": "{}"}}]},
        {"role": "tool", "content": "TOOL OUTPUT", "name": "cost_agent", "tool_call_id": "c1", "id": "m3"},
        {"role": "assistant", "content": "Costs rose 42% day over day.", "id": "m4"}]}
    fake_serving.default = Scripted(body=body)
    client = make_client(fake_serving, fmt="chat_agent", streaming=False)
    try:
        assert (await client.answer(REQUEST)).content == ANSWER
    finally:
        await client.close()


@pytest.mark.parametrize("fixture, fmt, shown", [
    ("agent_server_responses_stream_error.sse", "responses", "Let me check the billing data."),
    ("agent_server_chat_agent_stream_error.sse", "chat_agent", ""),
])
async def test_an_error_event_fails_the_stream_with_the_agents_message(fake_serving: FakeServing, fixture: str,
                                                                       fmt: str, shown: str) -> None:
    fake_serving.default = Scripted(events=recorded(fixture))
    client = make_client(fake_serving, fmt=fmt)
    texts: list[str] = []
    try:
        with pytest.raises(EngineError) as raised:
            async for chunk in client.stream(REQUEST):
                assert chunk.answer is None, "a failed stream must never end as a complete answer"
                texts.append(chunk.text)
    finally:
        await client.close()
    assert raised.value.kind == ErrorKind.AGENT_FAILED and raised.value.detail == "warehouse 4b2 is stopped"
    assert "".join(texts) == shown
    assert len(fake_serving.invocation_bodies()) == 1  # the agent raised: not asked again behind the user's back


@pytest.mark.parametrize("event", [
    {"error": {"message": "upstream model overloaded", "code": "overloaded"}},
    {"type": "error", "code": "server_error", "message": "upstream model overloaded"},
    {"type": "response.failed", "response": {"error": {"code": "server_error", "message": "upstream model overloaded"}}},
    {"error_code": "INTERNAL_ERROR", "message": "upstream model overloaded"},
])
async def test_every_error_event_shape_fails_the_stream(fake_serving: FakeServing, event: dict[str, object]) -> None:
    first = {"type": "response.output_text.delta", "item_id": "m1", "delta": "Costs rose "}
    fake_serving.default = Scripted(events=[json.dumps(first), json.dumps(event), "[DONE]"])
    client = make_client(fake_serving, fmt="responses")
    try:
        with pytest.raises(EngineError) as raised:
            async for _ in client.stream(REQUEST):
                pass
    finally:
        await client.close()
    assert raised.value.kind == ErrorKind.AGENT_FAILED and "upstream model overloaded" in raised.value.detail


def mlflow_400(message: str, stack: str) -> Scripted:
    return Scripted(400, {"error_code": "BAD_REQUEST", "message": message, "stack_trace": stack})


async def test_an_agents_exception_under_mlflow_models_serve_names_the_agents_message(fake_serving: FakeServing) -> None:
    """`mlflow models serve` wraps an agent's exception as 400 BAD_REQUEST (scoring_server `invocations`)."""
    stack = 'Traceback (most recent call last):\n  File "agent.py", line 9, in predict\nRuntimeError: warehouse 4b2 is stopped\n'
    fake_serving.default = mlflow_400("Encountered an unexpected error while evaluating the model. Verify that the "
                                      "serialized input Dataframe is compatible with the model for inference.", stack)
    client = make_client(fake_serving, fmt="responses", streaming=False)
    try:
        with pytest.raises(EngineError) as raised:
            await client.answer(REQUEST)
    finally:
        await client.close()
    assert raised.value.kind == ErrorKind.AGENT_FAILED
    assert raised.value.detail == "RuntimeError: warehouse 4b2 is stopped" and "Traceback" not in raised.value.detail


async def test_fastapi_errors_are_read_for_their_message(fake_serving: FakeServing) -> None:
    refused = json.loads((MLFLOW / "agent_server_responses_400_inputs_format.json").read_text())
    fake_serving.default = Scripted(400, refused)
    client = make_client(fake_serving, fmt="inputs")
    try:
        with pytest.raises(EngineError) as raised:
            await client.answer(REQUEST)
    finally:
        await client.close()
    assert raised.value.kind == ErrorKind.BAD_REQUEST and "Invalid parameters for ResponsesAgent" in raised.value.detail


async def test_the_user_sees_what_was_shown_then_the_failure_in_plain_words(fake_serving: FakeServing,
                                                                            tmp_path: Path) -> None:
    fake_serving.default = Scripted(events=recorded("agent_server_responses_stream_error.sse"))
    store = SqliteStore(tmp_path / "bot.db")
    handler = ConversationHandler(store=store, engine=make_client(fake_serving, fmt="responses"))
    shown: list[str] = []

    class Sink:
        async def stage(self, words: str) -> None: ...

        async def text(self, delta: str) -> None:
            shown.append(delta)

    msg = Incoming(key=ThreadKey(platform=Platform.CONSOLE, workspace="local", channel="console", thread="t1"),
                   user_id="ana", user_email="ana@example.com", text="why did costs spike?", event_id="e1",
                   membership=Membership.OPERATOR)
    try:
        reply = await handler.handle(msg, sink=Sink())
    finally:
        await handler.close()
    assert reply is not None and reply.error == ErrorKind.AGENT_FAILED and reply.retryable
    assert reply.content == "The Health Monitor agent failed while answering: warehouse 4b2 is stopped"
    assert "".join(shown) == "Let me check the billing data."
    store = SqliteStore(tmp_path / "bot.db")
    try:
        rows = await store.requests_since(0)
    finally:
        await store.close()
    assert [row.error for row in rows] == ["agent_failed"]


@pytest.mark.parametrize("task, fmt", [("agent/v1/responses", "responses"), ("agent/v2/chat", "chat_agent"),
                                       ("llm/v1/chat", "chat_completions"), (None, "inputs")])
async def test_the_default_format_follows_the_endpoints_task(fake_serving: FakeServing, task: str | None,
                                                             fmt: str) -> None:
    fake_serving.task = task
    client = make_client(fake_serving, fmt=ServingClient.__init__.__kwdefaults__["fmt"], streaming=False)  # the default
    try:
        await client.answer(REQUEST)
        await client.answer(REQUEST)
    finally:
        await client.close()
    body = fake_serving.invocation_bodies()[0]
    assert {"responses": "input", "chat_agent": "messages", "chat_completions": "messages", "inputs": "inputs"}[fmt] in body
    assert len(fake_serving.requests_to(f"/api/2.0/serving-endpoints/{fake_serving.endpoint_name}", "GET")) == 1  # cached


# -- the real AgentServer, in a subprocess ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def agent_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """MLflow's AgentServer serving the two agents (uvicorn, as `AgentServer.run` does). It traces every
    request to MLflow's default local store in its working directory: a temporary one, never the checkout."""
    pytest.importorskip("mlflow.genai.agent_server")
    work = tmp_path_factory.mktemp("agent-server")
    servers, urls = [], {}
    for name in ("responses_agent", "chat_agent"):
        port = free_port()
        servers.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"tests.mlflow_agents.{name}:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"},
            stdout=subprocess.DEVNULL))
        urls[name] = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        for url in urls.values():
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=1):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "MLflow's AgentServer did not start"
                    time.sleep(0.2)
        yield urls
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)


@pytest.fixture
async def workspace_in_front(agent_servers: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    """A workspace-shaped proxy: `GET /api/2.0/serving-endpoints/{name}` tells the agent's task and
    `/serving-endpoints/{name}/invocations` is passed through to the agent's server untouched."""
    tasks = {"responses_agent": "agent/v1/responses", "chat_agent": "agent/v2/chat"}

    async def endpoint(request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["name"], "task": tasks[request.match_info["name"]],
                                  "state": {"ready": "READY", "config_update": "NOT_UPDATING"}})

    async def invoke(request: web.Request) -> web.StreamResponse:
        target = agent_servers[request.match_info["name"]] + "/invocations"
        async with aiohttp.ClientSession() as http, http.post(target, data=await request.read(),
                                                               headers={"Content-Type": "application/json"}) as up:
            response = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers["Content-Type"]})
            await response.prepare(request)
            async for piece in up.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_get("/api/2.0/serving-endpoints/{name}", endpoint)
    app.router.add_post("/serving-endpoints/{name}/invocations", invoke)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield {"DATABRICKS_HOST": f"http://127.0.0.1:{port}", "DATABRICKS_TOKEN": "dapi-test"}
    await runner.cleanup()


async def ask(env: dict[str, str], endpoint: str, question: str, tmp_path: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.host.cli", "ask", question, cwd=tmp_path,
        env={**os.environ, **env, "HEALTHBOT_ENDPOINT_NAME": endpoint, "HEALTHBOT_BACKEND": "serving",
             "HEALTHBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", "PYTHONPATH": str(ROOT),
             "MLFLOW_TRACKING_URI": ""},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize("agent", ["responses_agent", "chat_agent"])
async def test_healthbot_ask_against_mlflows_own_agent_server(workspace_in_front: dict[str, str], agent: str,
                                                              tmp_path: Path) -> None:
    code, out, err = await ask(workspace_in_front, agent, "why did costs spike?", tmp_path)
    assert code == 0, err
    assert "Costs rose 42% day over day." in out and "TOOL OUTPUT" not in out
    code, out, err = await ask(workspace_in_front, agent, "please fail", tmp_path)
    assert code == 1
    assert "The Health Monitor agent failed while answering: warehouse 4b2 is stopped" in out + err
    assert "Traceback" not in out + err


# -- an agent served from a Databricks App (HEALTHBOT_ENDPOINT_NAME=apps/<name>) ------------------


async def test_healthbot_ask_an_agent_on_a_databricks_app(agent_servers: dict[str, str], tmp_path: Path) -> None:
    """`apps/<name>`: the app's URL from `apps.get`, the question to its `/responses` (streamed) with the
    workspace's token, the answer labelled with the app's active deployment."""
    from tests.fakes.deployments import FakeDeployWorkspace
    from tests.fakes.serving import fixture as databricks_fixture

    workspace = FakeDeployWorkspace()
    app = databricks_fixture("apps_get_running.json")
    app["url"] = agent_servers["responses_agent"]
    workspace.apps[app["name"]] = app
    await workspace.start()
    try:
        env = {"DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": workspace.token}
        code, out, err = await ask(env, f"apps/{app['name']}", "why did costs spike?", tmp_path)
        stats = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.host.cli", "stats", "--json", cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **env, "HEALTHBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
                 "PYTHONPATH": str(ROOT)})
        figures = json.loads((await stats.communicate())[0])
    finally:
        await workspace.stop()
    assert code == 0, err
    assert "Costs rose 42% day over day." in out and "TOOL OUTPUT" not in out
    assert list(figures["by_version"]) == [app["active_deployment"]["deployment_id"]]
    assert [c.path for c in workspace.calls if c.path.startswith("/api/2.0/apps")][:1] == [f"/api/2.0/apps/{app['name']}"]
