"""MLflow traces written to a local SQLite tracking store and read back with mlflow's search API."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from bot.handler import ConversationHandler
from bot.models import Incoming, Membership, Platform, ThreadKey
from bot.store import SqliteStore
from bot.ops.tracing import Tracer
from tests.conftest import make_client
from tests.fakes.serving import FakeServing, Scripted


@pytest.fixture
async def traced(tmp_path: Path, fake_serving: FakeServing):  # type: ignore[no-untyped-def]
    tracer = Tracer(f"sqlite:///{tmp_path}/mlflow.db")
    handler = ConversationHandler(store=SqliteStore(tmp_path / "bot.db"), engine=make_client(fake_serving), tracer=tracer)
    yield handler
    await handler.engine.close()
    await handler.store.close()


def message(text: str, event_id: str) -> Incoming:
    key = ThreadKey(platform=Platform.TEAMS, workspace="tenant", channel="19:c@thread.tacv2", thread="19:c@thread.tacv2;messageid=1")
    return Incoming(key=key, user_id="aad-1", user_email="alex@contoso.example", text=text, event_id=event_id,
                    membership=Membership.MEMBER)


def find(request_id: str):  # type: ignore[no-untyped-def]
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(filter_string=f"tags.request_id = '{request_id}'", return_type="list")
    assert len(traces) == 1
    return traces[0]


async def test_every_message_is_a_trace_with_spans_and_tags(traced: ConversationHandler) -> None:
    reply = await traced.handle(message("why did costs spike?", "e1"))
    assert reply is not None
    trace = find(reply.request_id)
    tags = trace.info.tags
    assert (tags["platform"], tags["session_id"], tags["domains"]) == ("teams", reply.session_id, "costs")
    spans = {span.name: span for span in trace.data.spans}
    assert set(spans) == {"teams.message", "handler", "endpoint"}
    assert spans["endpoint"].attributes["status"] == "ok" and spans["endpoint"].attributes["latency_ms"] > 0
    assert spans["handler"].outputs["answer"] == "Costs rose 42%."


async def test_an_error_reply_request_id_finds_its_trace(traced: ConversationHandler, fake_serving: FakeServing) -> None:
    fake_serving.invocations.append(Scripted(500, {"error_code": "INTERNAL_ERROR"}))
    reply = await traced.handle(message("why did costs spike?", "e2"))
    assert reply is not None and reply.error is not None
    trace = find(reply.request_id)
    assert trace.info.tags["error"] == "unavailable"


async def test_feedback_lands_on_the_right_trace(traced: ConversationHandler) -> None:
    first = await traced.handle(message("q1", "e3"))
    second = await traced.handle(message("q2", "e4"))
    assert first and second
    mlflow.flush_trace_async_logging()
    assert await traced.record_feedback(second.request_id, user_id="aad-1", value=-1)
    trace = find(second.request_id)
    [assessment] = [a for a in trace.info.assessments if a.name == "user_feedback"]
    assert assessment.feedback.value is False and assessment.source.source_id == "aad-1"
    assert not [a for a in find(first.request_id).info.assessments if a.name == "user_feedback"]


def test_tracing_is_free_when_not_configured() -> None:
    tracer = Tracer(None)
    assert not tracer.enabled and tracer.trace_id() == ""
    with tracer.span("anything") as span:
        assert span is None
