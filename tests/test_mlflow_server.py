"""Traces against a real MLflow tracking server (`mlflow server`, the full `mlflow` package, SQLite
backend, started here on loopback) read back through MLflow's own client, as its UI and the Health
Monitor's dashboard read them: state (a failed answer is an ERROR trace, a refusal is OK and tagged),
request and response previews, `mlflow.trace.user` / `mlflow.trace.session`, tags, streamed stages as
child spans, one valid 👍 / 👎 per person, `healthbot ask` leaving no trace behind or half written, and
the dashboard's figures equal to `healthbot stats`."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from agent.demo import DemoEngine
from bot.handler import ConversationHandler
from bot.models import Incoming, Membership, Platform, ThreadKey
from bot.ops.stats import collect
from bot.ops.tracing import Tracer
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.serving import FakeServing, Scripted

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{where}/mlflow.db",
         "--artifacts-destination", str(where / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], cwd=where, stdout=subprocess.DEVNULL, stderr=open(where / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start: " + (where / "server.log").read_text()[-2000:])
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=20)


def traces(url: str, experiment: str) -> list[Any]:
    client = MlflowClient(tracking_uri=url)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    return [client.get_trace(t.info.trace_id) for t in client.search_traces(locations=[found.experiment_id])]


def ask(question: str, url: str, experiment: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "SLACK_", "HEALTHBOT_", "MLFLOW_"))}
    clean.update(MLFLOW_TRACKING_URI=url, MLFLOW_EXPERIMENT_NAME=experiment, HEALTHBOT_DEMO_PACE="0",
                 HEALTHBOT_DEMO_DATA_DIR=str(tmp_path / "demo"), XDG_STATE_HOME=str(tmp_path / "state"),
                 PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-m", "adapters.host.cli", "ask", question], cwd=tmp_path, env=clean,
                          capture_output=True, text=True, timeout=120)


async def test_healthbot_ask_writes_whole_traces_ok_and_error(mlflow_server: str, tmp_path: Path,
                                                              fake_serving: FakeServing) -> None:
    done = await asyncio.to_thread(ask, "why did costs spike yesterday?", mlflow_server, "ask-traces", tmp_path)
    assert done.returncode == 0, done.stderr
    fake_serving.invocations.append(Scripted(500, {"error_code": "INTERNAL_ERROR", "message": "upstream overloaded"}))
    failed = await asyncio.to_thread(ask, "which jobs failed today?", mlflow_server, "ask-traces", tmp_path,
                                     DATABRICKS_HOST=fake_serving.url, DATABRICKS_TOKEN=fake_serving.token,
                                     HEALTHBOT_ENDPOINT_NAME=fake_serving.endpoint_name,
                                     HEALTHBOT_ENDPOINT_FORMAT="inputs", HEALTHBOT_ENDPOINT_TIMEOUT="5")
    assert failed.returncode == 1
    found = {t.info.request_preview: t for t in traces(mlflow_server, "ask-traces")}
    assert len(found) == 2 and {t.info.state.value for t in found.values()} <= {"OK", "ERROR"}  # never IN_PROGRESS
    ok = found['{"question": "why did costs spike yesterday?"}']
    assert ok.info.state.value == "OK" and "Costs rose" in ok.info.response_preview
    assert ok.info.trace_metadata["mlflow.trace.session"] == ok.info.tags["session_id"]
    assert ok.info.trace_metadata["mlflow.trace.user"] and ok.info.tags["domains"] == "costs"
    names = [span.name for span in ok.data.spans]
    assert names[:3] == ["console.message", "handler", "endpoint"] and len(names) > 3  # the demo's stages
    endpoint = next(s for s in ok.data.spans if s.name == "endpoint")
    stages = [s for s in ok.data.spans if s.parent_id == endpoint.span_id]
    assert stages and all(s.span_type == "TOOL" and s.end_time_ns >= s.start_time_ns for s in stages)
    bad = found['{"question": "which jobs failed today?"}']
    assert bad.info.state.value == "ERROR" and bad.info.tags["error"] == "unavailable"
    assert "domains" not in bad.info.tags  # absent rather than empty
    root = next(s for s in bad.data.spans if s.parent_id is None)
    assert root.attributes["error_kind"] == "unavailable" and root.attributes["request_id"] == bad.info.tags["request_id"]
    assert root.outputs["error"] == "unavailable" and "Health Monitor" in root.outputs["answer"]


def message(text: str, number: int, *, user: str = "U0ANA", email: str = "ana@example.com",
            membership: Membership = Membership.MEMBER) -> Incoming:
    key = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread=f"1712345678.{number:06d}")
    return Incoming(key=key, user_id=user, user_email=email, text=text, event_id=f"Ev{number}", membership=membership)


class Quiet:
    async def stage(self, words: str) -> None: ...

    async def text(self, delta: str) -> None: ...


def dashboard(found: list[Any]) -> dict[str, Any]:
    """What the Health Monitor's `get_trace_metrics` reports from traces: total, errors, average
    latency and per-domain counts (its "MLflow Trace Dashboard")."""
    domains: Counter[str] = Counter()
    for trace in found:
        domains.update(d for d in trace.info.tags.get("domains", "").split(",") if d)
    durations = [t.info.execution_duration for t in found]
    return {"total": len(found), "errors": sum(1 for t in found if t.info.state.value == "ERROR"),
            "avg_latency_ms": sum(durations) / len(durations), "domains": dict(domains)}


async def test_serve_traces_feedback_and_the_dashboard_agree_with_stats(mlflow_server: str, tmp_path: Path,
                                                                        fake_serving: FakeServing) -> None:
    os.environ["MLFLOW_EXPERIMENT_NAME"] = "serve-traces"
    try:
        store = SqliteStore(tmp_path / "bot.db")
        demo = ConversationHandler(store=store, engine=DemoEngine(data_dir=tmp_path / "demo"), tracer=Tracer(mlflow_server))
        failing = ConversationHandler(store=store, engine=make_client(fake_serving), tracer=Tracer(mlflow_server))
        answered = [await demo.handle(message(q, n), sink=Quiet()) for n, q in enumerate(
            ["why did costs spike yesterday?", "which jobs failed today?", "show me slow queries"])]
        refused = await demo.handle(message("any security concerns?", 10, user="U0GUEST", email="g@example.com",
                                            membership=Membership.GUEST))
        fake_serving.invocations.append(Scripted(500, {"error_code": "INTERNAL_ERROR"}))
        failed = await failing.handle(message("platform health overview", 11))
        assert all(r is not None and r.error is None for r in answered) and refused and failed and failed.error
        first = answered[0]
        assert first is not None
        for value in (1, -1):  # ana changes her mind: the last vote is the one valid assessment
            assert await demo.record_feedback(first.request_id, user_id="U0ANA", value=value, voter="ana@example.com")
        assert await demo.record_feedback(first.request_id, user_id="U0BEN", value=1, voter="ben@example.com")
        assert await asyncio.to_thread(demo.tracer.flush, 90) and await asyncio.to_thread(failing.tracer.flush, 90)

        found = await asyncio.to_thread(traces, mlflow_server, "serve-traces")
        by_request = {t.info.tags["request_id"]: t for t in found}
        votes = [a for a in by_request[first.request_id].info.assessments if a.name == "user_feedback" and a.valid]
        assert sorted((a.source.source_id, a.feedback.value) for a in votes) == [("ana@example.com", False),
                                                                                ("ben@example.com", True)]
        assert by_request[refused.request_id].info.state.value == "OK"
        assert by_request[refused.request_id].info.tags["refused"] == "guest"
        assert by_request[failed.request_id].info.state.value == "ERROR"
        assert {t.info.trace_metadata["mlflow.trace.user"] for t in found} == {"ana@example.com", "g@example.com"}

        stats = await collect(store, 1)
        figures = dashboard(found)
        assert (figures["total"], figures["errors"]) == (stats.requests, stats.errors)
        day_domains: Counter[str] = Counter()
        for counts in stats.domains_per_day.values():
            day_domains.update(counts)
        assert figures["domains"] == dict(day_domains)
        assert figures["avg_latency_ms"] > 0 and stats.avg_latency_ms is not None
        await demo.close()
        await asyncio.to_thread(failing.tracer.close)
        await failing.engine.close()
    finally:
        os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
