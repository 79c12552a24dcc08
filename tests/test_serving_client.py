"""The Model Serving client against a local server playing Databricks, through the real SDK auth."""

from __future__ import annotations

import time

import pytest

from agent.base import AgentRequest, ChatMessage
from agent.errors import EngineError, ErrorKind
from tests.conftest import make_client
from tests.fakes.serving import FakeServing, Scripted, answer_body, error, fixture

REQUEST = AgentRequest(
    [ChatMessage("user", "why did costs spike"), ChatMessage("assistant", "It rose."), ChatMessage("user", "which job?")],
    user_id="ana@example.com", session_id="0f7c6a52-1111-4222-8333-444455556666",
)


async def test_inputs_format_is_the_original_apps_request(fake_serving: FakeServing, serving_client) -> None:
    answer = await serving_client.answer(REQUEST)
    call = fake_serving.requests_to("/serving-endpoints/health_monitor_orchestrator/invocations")[0]
    assert call.headers["Authorization"] == "Bearer test-token"
    assert call.json() == {"inputs": {
        "messages": [{"role": "user", "content": "why did costs spike"}, {"role": "assistant", "content": "It rose."},
                     {"role": "user", "content": "which job?"}],
        "params": {"user_id": "ana@example.com", "session_id": REQUEST.session_id}}}
    assert (answer.content, answer.sources, answer.confidence, answer.domains) == (
        "Costs rose 42%.", ["system.billing.usage"], 0.9, ["costs"])
    assert answer.endpoint_latency_ms is not None and answer.endpoint_latency_ms > 0


@pytest.mark.parametrize(
    ("fmt", "fixture_name", "request_key"),
    [
        ("chat_agent", "serving_invocations_chat_agent_response.json", "messages"),
        ("responses", "serving_invocations_responses_agent_response.json", "input"),
        ("responses", "serving_invocations_responses_agent_response_with_tools.json", "input"),
        ("chat_completions", "serving_invocations_chat_completions_response.json", "messages"),
        ("inputs", "serving_invocations_pyfunc_response.json", "inputs"),
    ],
)
async def test_every_response_format(fake_serving: FakeServing, fmt: str, fixture_name: str, request_key: str) -> None:
    fake_serving.default = Scripted(200, fixture(fixture_name))
    client = make_client(fake_serving, fmt=fmt)
    try:
        answer = await client.answer(REQUEST)
    finally:
        await client.close()
    body = fake_serving.invocation_bodies()[0]
    assert request_key in body
    if fmt in ("chat_agent", "responses"):
        assert body["context"] == {"conversation_id": REQUEST.session_id, "user_id": "ana@example.com"}
    assert answer.content.startswith("Costs rose 42% day over day")
    if "custom_outputs" in fixture(fixture_name):
        assert answer.sources == ["system.billing.usage"]


async def test_auto_format_reads_the_endpoint_task(fake_serving: FakeServing) -> None:
    fake_serving.task = "agent/v1/responses"
    fake_serving.default = Scripted(200, fixture("serving_invocations_responses_agent_response.json"))
    client = make_client(fake_serving, fmt="auto")
    try:
        await client.answer(REQUEST)
        await client.answer(REQUEST)
    finally:
        await client.close()
    assert all("input" in body for body in fake_serving.invocation_bodies())
    assert len(fake_serving.requests_to("/api/2.0/serving-endpoints/health_monitor_orchestrator")) == 1  # cached


async def test_429_honours_retry_after(fake_serving: FakeServing, serving_client) -> None:
    fake_serving.invocations.append(error("serving_error_429_request_limit_exceeded.json", {"Retry-After": "0.3"}))
    started = time.monotonic()
    answer = await serving_client.answer(REQUEST)
    assert time.monotonic() - started >= 0.3
    assert answer.content == "Costs rose 42%."
    assert len(fake_serving.invocation_bodies()) == 2


async def test_429_every_time_is_rate_limited(fake_serving: FakeServing) -> None:
    fake_serving.default = error("serving_error_429_request_limit_exceeded.json", {"Retry-After": "0"})
    client = make_client(fake_serving, max_retries=2)
    with pytest.raises(EngineError) as caught:
        await client.answer(REQUEST)
    await client.close()
    assert caught.value.kind == ErrorKind.RATE_LIMITED
    assert len(fake_serving.invocation_bodies()) == 3


async def test_cold_start_reports_waking_up_then_answers(fake_serving: FakeServing, serving_client) -> None:
    fake_serving.invocations.append(error("serving_error_503_temporarily_unavailable.json"))
    fake_serving.states.extend(["NOT_READY", "NOT_READY", "NOT_READY", "READY"])
    stages: list[str] = []

    async def progress(stage: str) -> None:
        stages.append(stage)

    answer = await serving_client.answer(REQUEST, on_progress=progress)
    assert stages == ["waking_up", "ready"]
    assert answer.content == "Costs rose 42%."
    assert len(fake_serving.requests_to("/api/2.0/serving-endpoints/health_monitor_orchestrator")) == 4


async def test_cold_start_gives_up_after_the_limit(fake_serving: FakeServing) -> None:
    fake_serving.invocations.append(error("serving_error_503_temporarily_unavailable.json"))
    fake_serving.states.extend(["NOT_READY"] * 1000)
    client = make_client(fake_serving, cold_start_wait_s=0.2)
    with pytest.raises(EngineError) as caught:
        await client.answer(REQUEST)
    await client.close()
    assert caught.value.kind == ErrorKind.WAKING_UP


async def test_503_while_ready_is_retried_with_backoff(fake_serving: FakeServing, serving_client) -> None:
    fake_serving.invocations.extend([Scripted(503, {"error_code": "TEMPORARILY_UNAVAILABLE"}), Scripted(504, {})])
    answer = await serving_client.answer(REQUEST)
    assert answer.content == "Costs rose 42%."
    assert len(fake_serving.invocation_bodies()) == 3


async def test_timeout_per_attempt(fake_serving: FakeServing) -> None:
    fake_serving.invocations.append(Scripted(200, answer_body(), delay_s=2.0))
    client = make_client(fake_serving, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(EngineError) as caught:
        await client.answer(REQUEST)
    await client.close()
    assert caught.value.kind == ErrorKind.TIMEOUT
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("scripted", "kind"),
    [
        (error("serving_error_403_permission_denied.json"), ErrorKind.PERMISSION_DENIED),
        (error("serving_error_404_resource_does_not_exist.json"), ErrorKind.NOT_FOUND),
        (error("serving_error_400_bad_request_mlflow.json"), ErrorKind.BAD_REQUEST),
        (Scripted(200, b"{not json"), ErrorKind.BAD_RESPONSE),
        (Scripted(200, {"unexpected": True}), ErrorKind.BAD_RESPONSE),
        (Scripted(500, {"error_code": "INTERNAL_ERROR"}), ErrorKind.UNAVAILABLE),
    ],
)
async def test_failures_are_typed(fake_serving: FakeServing, serving_client, scripted: Scripted, kind: ErrorKind) -> None:
    fake_serving.invocations.append(scripted)
    with pytest.raises(EngineError) as caught:
        await serving_client.answer(REQUEST)
    assert caught.value.kind == kind
    assert len(fake_serving.invocation_bodies()) == 1  # not retried


async def test_wrong_token_is_an_auth_error(fake_serving: FakeServing) -> None:
    client = make_client(fake_serving)
    fake_serving.token = "rotated-token"  # the workspace no longer accepts the client's token
    with pytest.raises(EngineError) as caught:
        await client.answer(REQUEST)
    await client.close()
    assert caught.value.kind == ErrorKind.AUTH


async def test_unreachable_host_is_unavailable_after_retries() -> None:
    fake = FakeServing()
    await fake.start()
    await fake.stop()  # the port is now closed
    client = make_client(fake, max_retries=1)
    client.http._config = fixture_config(fake.url)
    with pytest.raises(EngineError) as caught:
        await client.answer(REQUEST)
    await client.close()
    assert caught.value.kind == ErrorKind.UNAVAILABLE


def fixture_config(url: str):  # type: ignore[no-untyped-def]
    """A config built without the SDK's host probe (which would itself retry a closed port)."""
    class Static:
        host = url

        def authenticate(self) -> dict[str, str]:
            return {"Authorization": "Bearer test-token"}

    return Static()
