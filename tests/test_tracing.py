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
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")  # where this test reads them back
    tracer = Tracer(f"sqlite:///{tmp_path}/mlflow.db")
    handler = ConversationHandler(store=SqliteStore(tmp_path / "bot.db"), engine=make_client(fake_serving), tracer=tracer)
    yield handler
    await handler.close()


def message(text: str, event_id: str) -> Incoming:
    key = ThreadKey(platform=Platform.TEAMS, workspace="tenant", channel="19:c@thread.tacv2", thread="19:c@thread.tacv2;messageid=1")
    return Incoming(key=key, user_id="aad-1", user_email="alex@contoso.example", text=text, event_id=event_id,
                    membership=Membership.MEMBER)


def find(request_id: str, tracer: Tracer):  # type: ignore[no-untyped-def]
    assert tracer.flush(timeout=60)
    mlflow.set_experiment(tracer.experiment)  # created by the exporter process
    traces = mlflow.search_traces(filter_string=f"tags.request_id = '{request_id}'", return_type="list")
    assert len(traces) == 1
    return traces[0]


async def test_every_message_is_a_trace_with_spans_and_tags(traced: ConversationHandler) -> None:
    reply = await traced.handle(message("why did costs spike?", "e1"))
    assert reply is not None
    trace = find(reply.request_id, traced.tracer)
    tags = trace.info.tags
    assert (tags["platform"], tags["session_id"], tags["domains"]) == ("teams", reply.session_id, "costs")
    spans = {span.name: span for span in trace.data.spans}
    assert set(spans) == {"teams.message", "handler", "endpoint"}
    assert spans["endpoint"].attributes["status"] == "ok" and spans["endpoint"].attributes["latency_ms"] > 0
    assert spans["teams.message"].outputs["answer"] == "Costs rose 42%." and trace.info.state == "OK"
    assert spans["teams.message"].inputs == {"question": "why did costs spike?"}


async def test_an_error_reply_request_id_finds_its_trace(traced: ConversationHandler, fake_serving: FakeServing) -> None:
    fake_serving.invocations.append(Scripted(500, {"error_code": "INTERNAL_ERROR"}))
    reply = await traced.handle(message("why did costs spike?", "e2"))
    assert reply is not None and reply.error is not None
    trace = find(reply.request_id, traced.tracer)
    assert trace.info.tags["error"] == "unavailable"


async def test_feedback_lands_on_the_right_trace(traced: ConversationHandler) -> None:
    first = await traced.handle(message("q1", "e3"))
    second = await traced.handle(message("q2", "e4"))
    assert first and second
    assert await traced.record_feedback(second.request_id, user_id="aad-1", value=-1, comment="Wrong day's figure.")
    trace = find(second.request_id, traced.tracer)
    [assessment] = [a for a in trace.info.assessments if a.name == "user_feedback"]
    assert assessment.feedback.value is False and assessment.source.source_id == "aad-1"
    assert assessment.rationale == "Wrong day's figure."  # the Teams feedback loop's words
    assert not [a for a in find(first.request_id, traced.tracer).info.assessments if a.name == "user_feedback"]


def test_tracing_is_free_when_not_configured() -> None:
    tracer = Tracer(None)
    assert not tracer.enabled
    with tracer.span("anything") as span:
        assert span is None


async def test_a_full_export_queue_drops_traces_counts_them_and_still_answers(tmp_path: Path,
                                                                             fake_serving: FakeServing) -> None:
    from bot.ops.metrics import Metrics

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    tracer = Tracer(f"sqlite:///{tmp_path}/mlflow.db", queue_size=2, start=False)  # the exporter is not running yet
    handler = ConversationHandler(store=SqliteStore(tmp_path / "bot.db"), engine=make_client(fake_serving), tracer=tracer)
    try:
        replies = [await handler.handle(message(f"question {i}", f"drop{i}")) for i in range(5)]
        assert all(r is not None and r.error is None for r in replies)  # nobody waited for a trace
        assert tracer.dropped == 3
        metrics = Metrics()
        metrics.watch_tracer(tracer)
        text = (await metrics.handle(None)).text  # type: ignore[arg-type]
        assert "healthbot_traces_dropped_total 3.0" in text and "healthbot_traces_waiting 2.0" in text
        assert tracer.flush(timeout=60) and tracer.exported == 2  # the queued two, once the exporter runs
        mlflow.set_experiment(tracer.experiment)
        found = mlflow.search_traces(return_type="list")
        assert sorted(t.info.tags["request_id"] for t in found) == sorted(r.request_id for r in replies[:2] if r)
    finally:
        await handler.close()


async def test_a_streamed_answer_marks_its_first_token_on_the_trace(tmp_path: Path) -> None:
    from agent.demo import DemoEngine

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    tracer = Tracer(f"sqlite:///{tmp_path}/mlflow.db")
    handler = ConversationHandler(store=SqliteStore(tmp_path / "bot.db"), engine=DemoEngine(data_dir=tmp_path / "d"),
                                  tracer=tracer)

    class Quiet:
        async def stage(self, words: str) -> None: ...

        async def text(self, delta: str) -> None: ...

    try:
        reply = await handler.handle(message("why did costs spike yesterday?", "e9"), sink=Quiet())
        assert reply is not None
        endpoint = next(s for s in find(reply.request_id, tracer).data.spans if s.name == "endpoint")
        assert [event.name for event in endpoint.events] == ["first_token"]
    finally:
        await handler.close()
