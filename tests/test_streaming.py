"""Streamed answers from the serving endpoint, at the wire: the fake endpoint streams the recorded
SSE shapes (tests/fixtures/databricks/*.sse) to the real client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.base import AgentRequest, Answer, ChatMessage, Chunk
from agent.databricks_config import databricks_config
from agent.demo import DemoEngine
from agent.demo.endpoint import create_demo_endpoint_app
from agent.errors import EngineError, ErrorKind
from agent.serving import ServingClient
from bot.handler import ConversationHandler
from bot.models import Incoming, Membership, Platform, ThreadKey
from bot.ops.stats import collect as collect_stats
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.serving import FakeServing, Scripted, sse_fixture

REQUEST = AgentRequest([ChatMessage("user", "why did costs spike?")], user_id="ana@example.com", session_id="s1")
TASKS = {"chat_agent": "agent/v2/chat", "responses": "agent/v1/responses", "chat_completions": "llm/v1/chat"}


async def collect(client: ServingClient) -> tuple[list[Chunk], Answer]:
    chunks = [chunk async for chunk in client.stream(REQUEST)]
    final = chunks[-1].answer
    assert final is not None and all(chunk.answer is None for chunk in chunks[:-1])
    return chunks[:-1], final


@pytest.mark.parametrize("fmt, fixture", [
    ("chat_agent", "serving_invocations_chat_agent_stream.sse"),
    ("chat_completions", "serving_invocations_chat_completions_stream.sse"),
    ("responses", "serving_invocations_responses_agent_stream.sse"),
])
async def test_each_streaming_format_grows_the_text_then_gives_the_whole_answer(fake_serving: FakeServing, fmt: str,
                                                                               fixture: str) -> None:
    fake_serving.default = Scripted(events=sse_fixture(fixture))
    client = make_client(fake_serving, fmt=fmt)
    try:
        chunks, answer = await collect(client)
    finally:
        await client.close()
    assert [c.text for c in chunks] == ["Costs rose ", "42% day over day."]
    assert answer.content == "Costs rose 42% day over day." and answer.endpoint_latency_ms
    assert fake_serving.invocation_bodies()[0]["stream"] is True
    if fmt == "chat_agent":
        assert answer.sources == ["system.billing.usage"]  # custom_outputs on the last chunk


async def test_a_sub_agent_call_is_a_stage_and_custom_outputs_fill_the_footer(fake_serving: FakeServing) -> None:
    call = {"type": "response.output_item.done", "item": {"type": "function_call", "name": "cost_agent",
                                                           "call_id": "c1", "arguments": "{}"}}
    done = {"type": "response.output_item.done", "custom_outputs": {"sources": ["system.billing.usage"],
                                                                     "confidence": 0.9, "domains": ["costs"]},
            "item": {"type": "message", "role": "assistant", "id": "m1",
                     "content": [{"type": "output_text", "text": "Costs rose 42%."}]}}
    fake_serving.default = Scripted(events=[json.dumps(call), json.dumps(done)])
    client = make_client(fake_serving, fmt="responses")
    try:
        chunks, answer = await collect(client)
    finally:
        await client.close()
    assert [c.stage for c in chunks] == ["asking the cost agent…"]
    assert (answer.content, answer.sources, answer.confidence, answer.domains) == (
        "Costs rose 42%.", ["system.billing.usage"], 0.9, ["costs"])


async def test_off_and_the_inputs_format_send_no_stream_and_answer_whole(fake_serving: FakeServing) -> None:
    for client in (make_client(fake_serving, fmt="chat_agent", streaming=False), make_client(fake_serving, fmt="inputs")):
        try:
            chunks, answer = await collect(client)
        finally:
            await client.close()
        assert chunks == [] and answer.content == "Costs rose 42%."
    assert all("stream" not in body for body in fake_serving.invocation_bodies())


async def test_auto_streams_when_the_endpoint_task_is_streamable(fake_serving: FakeServing) -> None:
    fake_serving.task = TASKS["chat_completions"]
    fake_serving.default = Scripted(events=sse_fixture("serving_invocations_chat_completions_stream.sse"))
    client = make_client(fake_serving, fmt="auto")
    try:
        chunks, answer = await collect(client)
    finally:
        await client.close()
    assert len(chunks) == 2 and answer.content == "Costs rose 42% day over day."


async def test_a_stream_cut_after_text_was_shown_is_an_error_and_not_retried(fake_serving: FakeServing) -> None:
    events = sse_fixture("serving_invocations_chat_agent_stream.sse")
    fake_serving.default = Scripted(events=events, cut_after=1)
    client = make_client(fake_serving, fmt="chat_agent")
    shown = []
    try:
        with pytest.raises(EngineError) as caught:
            async for chunk in client.stream(REQUEST):
                shown.append(chunk.text)
    finally:
        await client.close()
    assert shown == ["Costs rose "] and caught.value.kind == ErrorKind.UNAVAILABLE
    assert len(fake_serving.invocation_bodies()) == 1


async def test_a_stream_cut_before_any_text_is_tried_again(fake_serving: FakeServing) -> None:
    events = sse_fixture("serving_invocations_chat_agent_stream.sse")
    fake_serving.invocations.append(Scripted(events=events, cut_after=0))
    fake_serving.default = Scripted(events=events)
    client = make_client(fake_serving, fmt="chat_agent")
    try:
        chunks, answer = await collect(client)
    finally:
        await client.close()
    assert answer.content == "Costs rose 42% day over day." and len(fake_serving.invocation_bodies()) == 2


async def test_a_stream_that_goes_quiet_times_out_between_events(fake_serving: FakeServing) -> None:
    fake_serving.default = Scripted(events=sse_fixture("serving_invocations_chat_agent_stream.sse"), gap_s=1.0)
    client = make_client(fake_serving, fmt="chat_agent", stream_idle_s=0.2, timeout_s=5.0)
    try:
        with pytest.raises(EngineError) as caught:
            await collect(client)
    finally:
        await client.close()
    assert caught.value.kind == ErrorKind.TIMEOUT and "after 1 events" in caught.value.detail


@pytest.mark.parametrize("fmt", ["chat_agent", "responses", "chat_completions"])
async def test_the_demo_endpoint_streams_in_every_streamable_format(tmp_path: Path, fmt: str) -> None:
    """`healthbot demo-endpoint` with the real serving client: the whole streaming path without a workspace."""
    engine = DemoEngine(data_dir=tmp_path)
    runner, url = await serve(create_demo_endpoint_app(engine, endpoint_name="health_monitor_orchestrator", token="t"))
    client = ServingClient(endpoint_name="health_monitor_orchestrator", fmt=fmt,  # type: ignore[arg-type]
                           config_factory=lambda: databricks_config(host=url, token="t"))
    try:
        chunks, answer = await collect(client)
    finally:
        await client.close()
        await runner.cleanup()
    whole = engine.respond(REQUEST)
    assert "".join(c.text for c in chunks) == whole.content == answer.content
    assert [c.stage for c in chunks if c.stage] == ["reading system.billing.usage…", "reading system.billing.list_prices…"]
    assert len([c for c in chunks if c.text]) > 5  # it grew
    assert (answer.sources, answer.domains) == (whole.sources, whole.domains)


class Recorder:
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.texts: list[str] = []

    async def stage(self, words: str) -> None:
        self.stages.append(words)

    async def text(self, delta: str) -> None:
        self.texts.append(delta)


def member_message(text: str, event_id: str) -> Incoming:
    key = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread="1.0")
    return Incoming(key=key, user_id="U1", user_email="ana@example.com", text=text, event_id=event_id,
                    membership=Membership.MEMBER)


async def test_the_handler_streams_to_a_sink_and_logs_the_time_to_first_text(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "bot.db")
    handler = ConversationHandler(store=store, engine=DemoEngine(data_dir=tmp_path / "demo"))
    sink = Recorder()
    try:
        reply = await handler.handle(member_message("why did costs spike yesterday?", "e1"), sink=sink)
        assert reply is not None and reply.error is None
        assert "".join(sink.texts) == reply.content and sink.stages[0] == "reading system.billing.usage…"
        row = await store.get_request(reply.request_id)
        assert row is not None and row.first_text_ms is not None and 0 < row.first_text_ms <= row.latency_ms
        stats = await collect_stats(store, 1)
        assert stats.first_text_p50_ms == row.first_text_ms
    finally:
        await handler.close()


async def test_no_text_streams_where_a_domain_rule_could_withhold_the_answer(tmp_path: Path) -> None:
    from bot.access import AccessGate, AccessPolicy

    gate = AccessGate(policy=AccessPolicy(domains={"security": ("platform-admins",)}))
    handler = ConversationHandler(store=SqliteStore(tmp_path / "bot.db"), engine=DemoEngine(data_dir=tmp_path / "d"),
                                  access=gate)
    sink = Recorder()
    try:
        reply = await handler.handle(member_message("why did costs spike yesterday?", "e2"), sink=sink)
    finally:
        await handler.close()
    assert reply is not None and reply.error is None and sink.texts == [] and sink.stages  # stages still show


def test_healthbot_stream_off_builds_a_client_that_asks_for_whole_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import load_settings
    from bot.engines import build_engine

    monkeypatch.setenv("DATABRICKS_HOST", "https://dbc-01234567-89ab.cloud.databricks.com")
    assert getattr(build_engine(load_settings()), "streaming") is True
    monkeypatch.setenv("HEALTHBOT_STREAM", "off")
    assert getattr(build_engine(load_settings()), "streaming") is False
