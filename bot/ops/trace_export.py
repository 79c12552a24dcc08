"""The trace exporter: a child process that turns recorded traces into MLflow traces.

Why a process and not a thread: exporting is CPU-bound Python (MLflow's OpenTelemetry pipeline,
SQLAlchemy for a local store), and a thread doing it takes the GIL from the event loop that answers
people — measured in bench/tracing.py as the difference between 0.03 x and 0.9 x of tracing off.
The child has its own interpreter; the bot hands it plain dicts through a bounded queue.

Messages on the queue: ("batch", [items…]) and ("flush", token); an item is ("trace", trace) or
("feedback", request_id, value, user_id, comment).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
from typing import Any

log = logging.getLogger(__name__)


def connect(tracking_uri: str, experiment: str) -> Any:
    """mlflow, pointed at the tracking server and experiment, logging synchronously: each trace is
    written whole when its root span ends (never left IN_PROGRESS by a process that exits)."""
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"  # the exporter is the background already
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    _skip_prediction_context_probe()
    return mlflow


def export_one(mlflow: Any, one: tuple[Any, ...]) -> bool | None:
    """One item: True for an exported trace, False for one that failed, None for a vote. Errors are
    logged, never raised, so one unreadable trace or a store outage does not stop the rest."""
    try:
        if one[0] == "trace":
            replay(mlflow, one[1])
            return True
        feedback(mlflow, *one[1:])
    except Exception as exc:  # the store is down, or a trace MLflow refuses: count it, carry on
        log.warning("trace export: %s failed: %s: %s", one[0], type(exc).__name__, str(exc)[:200])
        return False if one[0] == "trace" else None
    return None


def export_loop(tracking_uri: str, experiment: str, inbox: Any, replies: Any, exported: Any, failed: Any) -> None:
    """The child's main: export until a None arrives."""
    with contextlib.suppress(OSError):
        os.nice(10)  # on a busy machine the scheduler serves the bot answering people first
    mlflow = connect(tracking_uri, experiment)
    while True:
        try:
            item = inbox.get(timeout=1.0)
        except queue.Empty:
            continue
        if item is None:
            replies.put(("closed", None))
            return
        if item[0] == "flush":
            replies.put(("flushed", item[1]))
            continue
        for one in item[1]:
            done = export_one(mlflow, one)
            if done is not None:
                counter = exported if done else failed
                with counter.get_lock():
                    counter.value += 1


def replay(mlflow: Any, trace: dict[str, Any]) -> str:
    """Create the MLflow trace from a recorded one: the same spans, parents, times, attributes,
    inputs, outputs and tags, as if they had been traced live."""
    live: list[Any] = []
    spans = trace["spans"]
    for span in spans:
        parent = live[span["parent"]] if span["parent"] >= 0 else None
        live.append(mlflow.start_span_no_context(
            name=span["name"], span_type=span["type"], parent_span=parent, inputs=span.get("inputs"),
            attributes=span["attributes"] or None, tags=trace["tags"] if parent is None else None,
            metadata=(trace.get("metadata") or None) if parent is None else None, start_time_ns=span["start_ns"]))
    from mlflow.entities import SpanEvent

    for index in reversed(range(len(spans))):  # children end before their parents
        span, started = spans[index], live[index]
        for name, at in span.get("events") or []:
            started.add_event(SpanEvent(name=name, timestamp=at))  # type: ignore[abstract]
        end_ns = (span["end_ns"] or spans[span["parent"]]["end_ns"]) if span["parent"] >= 0 else span["end_ns"]
        started.end(outputs=span.get("outputs"), status=span["status"], end_time_ns=end_ns)
    return str(live[0].trace_id) if live else ""


def feedback(mlflow: Any, request_id: str, value: int, user_id: str, comment: str = "") -> None:
    """A 👍 / 👎 on the trace of the answer with that request id (its `request_id` tag). The trace was
    queued before the vote could be cast, so it is exported by now, unless it was dropped. One vote per
    person and trace: a changed vote overrides that person's earlier one (MLflow keeps it, marked no
    longer valid), so exactly one valid assessment per person remains."""
    from mlflow.entities import AssessmentSource

    found = mlflow.search_traces(filter_string=f"tags.request_id = '{request_id}'", max_results=1, return_type="list")
    if not found:
        log.info("no trace for request %s (tracing was off, or the trace was dropped): feedback kept only in the "
                 "request log", request_id)
        return
    trace_id = found[0].info.trace_id
    source = AssessmentSource(source_type="HUMAN", source_id=user_id)
    earlier = [a for a in mlflow.get_trace(trace_id).info.assessments or []
               if a.name == "user_feedback" and a.source.source_id == user_id and a.valid is not False]
    if earlier:
        mlflow.override_feedback(trace_id=trace_id, assessment_id=earlier[-1].assessment_id, value=value > 0,
                                 source=source, rationale=comment or None)
        return
    mlflow.log_feedback(trace_id=trace_id, name="user_feedback", value=value > 0, source=source,
                        rationale=comment or None)


def _skip_prediction_context_probe() -> None:
    """Workaround: on every span, mlflow-skinny tries `from mlflow.pyfunc.context import …`, which
    needs numpy and pandas; without them the failed import is re-attempted each time (~1 ms of
    module loading per span). A chat bot never runs inside a pyfunc prediction, so when that import
    fails once, tell mlflow there is no prediction context."""
    import mlflow.tracing.utils as tracing_utils

    try:
        from mlflow.pyfunc.context import get_prediction_context  # noqa: F401
    except (ImportError, KeyError):
        tracing_utils._try_get_prediction_context = lambda: None
