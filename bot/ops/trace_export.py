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


def export_loop(tracking_uri: str, experiment: str, inbox: Any, replies: Any, exported: Any, failed: Any) -> None:
    """The child's main: export until a None arrives. Errors are counted and logged, never raised,
    so one unreadable trace or a store outage does not stop the traces after it."""
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"  # this process is the background already
    with contextlib.suppress(OSError):
        os.nice(10)  # on a busy machine the scheduler serves the bot answering people first
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    _skip_prediction_context_probe()
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
            try:
                if one[0] == "trace":
                    replay(mlflow, one[1])
                    with exported.get_lock():
                        exported.value += 1
                else:
                    feedback(mlflow, *one[1:])
            except Exception as exc:  # the store is down, or a trace MLflow refuses: count it, carry on
                if one[0] == "trace":
                    with failed.get_lock():
                        failed.value += 1
                log.warning("trace export: %s failed: %s: %s", one[0], type(exc).__name__, str(exc)[:200])


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
            start_time_ns=span["start_ns"]))
    from mlflow.entities import SpanEvent

    for span, started in reversed(list(zip(spans, live))):  # children end before their parents
        for name, at in span.get("events") or []:
            started.add_event(SpanEvent(name=name, timestamp=at))  # type: ignore[abstract]
        started.end(outputs=span.get("outputs"), status=span["status"], end_time_ns=span["end_ns"])
    return str(live[0].trace_id) if live else ""


def feedback(mlflow: Any, request_id: str, value: int, user_id: str, comment: str = "") -> None:
    """A 👍 / 👎 on the trace of the answer with that request id (its `request_id` tag). The trace was
    queued before the vote could be cast, so it is exported by now, unless it was dropped."""
    from mlflow.entities import AssessmentSource

    found = mlflow.search_traces(filter_string=f"tags.request_id = '{request_id}'", max_results=1, return_type="list")
    if not found:
        log.info("no trace for request %s (tracing was off, or the trace was dropped): feedback kept only in the "
                 "request log", request_id)
        return
    mlflow.log_feedback(trace_id=found[0].info.trace_id, name="user_feedback", value=value > 0,
                        source=AssessmentSource(source_type="HUMAN", source_id=user_id), rationale=comment or None)


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
