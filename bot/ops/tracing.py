"""MLflow tracing of every handled message, recorded in the request and exported off it.

Off, and free, unless MLFLOW_TRACKING_URI is set. Each message is a trace: a root span per platform
message, a `handler` span and an `endpoint` span (status and latency), tagged with platform,
session id, domains and request id, so the request id an error message shows finds its trace
(`tags.request_id = '…'`); 👍 / 👎 become feedback on that trace.

In the request, a span is a small record (name, times, attributes): microseconds, no MLflow, no I/O.
A finished trace is appended to a bounded list; a sender thread hands the list to the exporter
process (bot/ops/trace_export.py) in batches, and the exporter builds the MLflow traces. When the
exporter falls behind and the list is full, traces are dropped and counted
(`healthbot_traces_dropped_total`): an answer never waits for its trace.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # traces waiting to be handed over; at a few hundred bytes each, memory is no concern
BATCH = 256  # traces per hand-over to the exporter process
INBOX_BATCHES = 4  # hand-overs the exporter may have waiting: at most QUEUE_SIZE + 4 x BATCH in memory
SEND_EVERY_S = 0.25  # a few hand-overs a second: each wakes a thread that takes the GIL


@dataclass(slots=True)
class SpanRecord:
    """What MLflow's LiveSpan offers the handler (`set_inputs`, `set_outputs`, `set_attributes`),
    kept as plain data until the exporter replays it."""

    name: str
    type: str
    parent: int
    start_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    inputs: Any = None
    outputs: Any = None
    end_ns: int = 0
    status: str = "OK"
    events: list[tuple[str, int]] = field(default_factory=list)  # (name, time ns): the first token

    def set_inputs(self, inputs: Any) -> None:
        self.inputs = inputs

    def set_outputs(self, outputs: Any) -> None:
        self.outputs = outputs

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self.attributes.update(attributes)

    def add_event(self, name: str) -> None:
        self.events.append((name, time.time_ns()))

    def end(self) -> None:
        """For a span ended by hand (`Tracer.child`): a streamed stage ends when the next begins."""
        if not self.end_ns:
            self.end_ns = time.time_ns()


@dataclass
class _Trace:
    spans: list[SpanRecord] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # mlflow.trace.user, mlflow.trace.session

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled for the exporter as plain data: the child need not import this module."""
        return dict, (self.as_dict(),)

    def as_dict(self) -> dict[str, Any]:
        return {"tags": self.tags, "metadata": self.metadata, "spans": [
            {"name": s.name, "type": s.type, "parent": s.parent, "start_ns": s.start_ns, "end_ns": s.end_ns,
             "attributes": s.attributes, "inputs": s.inputs, "outputs": s.outputs, "status": s.status,
             "events": s.events}
            for s in self.spans]}


_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


class _SpanContext:
    """A class, not a @contextmanager generator: a span costs a few microseconds in the request."""

    __slots__ = ("tracer", "record", "trace", "token")

    def __init__(self, tracer: Tracer, name: str, span_type: str, attributes: dict[str, Any]) -> None:
        self.tracer = tracer
        current = _current.get()
        self.trace, parent = current if current is not None else (_Trace(), -1)
        self.record = SpanRecord(name, span_type, parent, time.time_ns(), attributes)

    def __enter__(self) -> SpanRecord:
        self.trace.spans.append(self.record)
        self.token = _current.set((self.trace, len(self.trace.spans) - 1))
        return self.record

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        record = self.record
        record.end_ns = time.time_ns()
        if kind is not None:
            record.status = "ERROR"
        _current.reset(self.token)
        if record.parent < 0:
            self.tracer._submit(("trace", self.trace))  # pickled by the queue's feeder thread, not here


_current: contextvars.ContextVar[tuple[_Trace, int] | None] = contextvars.ContextVar("healthbot_trace", default=None)


class Tracer:
    def __init__(self, tracking_uri: str | None = None, *, queue_size: int = QUEUE_SIZE, start: bool = True,
                 in_process: bool = False) -> None:
        """`in_process`: for one-shot commands (`healthbot ask`): no exporter process; what was recorded
        is exported here, in full, on `close` — a process about to exit cannot wait for a child that
        needs seconds just to import mlflow, and a trace must never be left half written."""
        self.enabled = bool(tracking_uri)
        self.tracking_uri = str(tracking_uri or "")
        self.experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or (
            "/Shared/healthbot" if self.tracking_uri.startswith("databricks") else "healthbot")
        self.dropped = 0
        self._queue_size = queue_size
        self._context = multiprocessing.get_context("spawn")  # a clean interpreter: no event loop, no sockets
        self._inbox: Any = self._context.Queue(maxsize=INBOX_BATCHES) if self.enabled else None
        self._replies: Any = None
        self._exported: Any = self._context.Value("q", 0) if self.enabled else None
        self._failed: Any = self._context.Value("q", 0) if self.enabled else None
        self._process: Any = None
        self._lock = threading.Lock()
        self._autostart = start
        self._pending: list[tuple[Any, ...]] = []  # recorded, not yet handed to the exporter
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._sender: threading.Thread | None = None
        self._sent = 0
        self._in_process = in_process

    # -- in the request ------------------------------------------------------------------------

    def span(self, name: str, span_type: str = "UNKNOWN", **attributes: Any) -> _SpanContext | contextlib.nullcontext[None]:
        """A span around a block: yields its SpanRecord (None when tracing is off)."""
        if not self.enabled:
            return _OFF
        return _SpanContext(self, name, span_type, attributes)

    def tag(self, **tags: Any) -> None:
        current = _current.get()
        if current is not None:
            current[0].tags.update({k: str(v) for k, v in tags.items() if v is not None})

    def metadata(self, values: dict[str, str]) -> None:
        """Trace metadata (MLflow's standard keys: `mlflow.trace.user`, `mlflow.trace.session`)."""
        current = _current.get()
        if current is not None:
            current[0].metadata.update({k: v for k, v in values.items() if v})

    def child(self, name: str, span_type: str = "UNKNOWN", **attributes: Any) -> SpanRecord | None:
        """A span under the current one that its caller ends (`record.end()`), for work that is not a
        block of code: a stage the endpoint streams lasts from its event to the next one."""
        current = _current.get()
        if current is None:
            return None
        trace, parent = current
        record = SpanRecord(name, span_type, parent, time.time_ns(), attributes)
        trace.spans.append(record)
        return record

    def log_feedback(self, request_id: str, *, value: int, user_id: str, comment: str = "") -> None:
        """The user's vote as an MLflow assessment on the answer's trace (found by its request id), one
        per person and trace (a changed vote overrides the earlier); their words, where the platform asks
        for them (Teams' feedback loop), as its rationale."""
        if self.enabled:
            self._submit(("feedback", request_id, value, user_id, comment))

    def _submit(self, item: tuple[Any, ...]) -> None:
        """Hand a finished trace (or a vote) over: a list append. The sender thread ships them to the
        exporter in batches, a few times a second, so the event loop never waits on a pipe and
        threads do not trade the GIL per message."""
        if self._process is None and self._autostart and not self._in_process:
            self.start()
        if len(self._pending) >= self._queue_size:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("trace export is behind: %d traces dropped so far (answers are not affected)", self.dropped)
            return
        self._pending.append(item)

    # -- the exporter ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the exporter process and the sender thread (on the first trace, so commands that
        never trace never pay)."""
        from bot.ops.trace_export import export_loop

        with self._lock:
            if self._process is not None or not self.enabled:
                return
            self._replies = self._context.Queue()
            self._process = self._context.Process(
                target=export_loop, name="healthbot-trace-export", daemon=True,
                args=(self.tracking_uri, self.experiment, self._inbox, self._replies, self._exported, self._failed))
            self._process.start()
            self._stopping.clear()
            self._sender = threading.Thread(target=self._send_forever, name="healthbot-trace-sender", daemon=True)
            self._sender.start()

    def _send_forever(self) -> None:
        while not self._stopping.wait(SEND_EVERY_S):
            self._send()

    def _send(self, timeout: float | None = None) -> bool:
        """Move pending items to the exporter's queue in batches; False when it stayed full."""
        with self._send_lock:
            while self._pending:
                batch = self._pending[:BATCH]
                try:
                    if timeout is None:
                        self._inbox.put_nowait(("batch", batch))
                    else:
                        self._inbox.put(("batch", batch), timeout=timeout)
                except queue.Full:
                    return False
                del self._pending[:len(batch)]  # appends meanwhile went to the end: only these leave
                self._sent += sum(1 for item in batch if item[0] == "trace")
            return True

    @property
    def exported(self) -> int:
        return int(self._exported.value) if self._exported is not None else 0

    @property
    def failed(self) -> int:
        return int(self._failed.value) if self._failed is not None else 0

    @property
    def waiting(self) -> int:
        """Traces recorded and not yet exported (or failed)."""
        pending = sum(1 for item in self._pending if item[0] == "trace")
        return max(0, self._sent - self.exported - self.failed) + pending

    def flush(self, timeout: float = 60.0) -> bool:
        """Block until every trace queued so far is exported (tests, benches, shutdown); False on timeout."""
        if not self.enabled:
            return True
        if self._in_process:
            return self._export_here()
        self.start()
        token = f"{os.getpid()}-{time.monotonic_ns()}"
        deadline = time.monotonic() + timeout
        try:
            if not self._send(timeout=timeout):
                raise queue.Full
            self._inbox.put(("flush", token), timeout=max(0.1, deadline - time.monotonic()))
            while (left := deadline - time.monotonic()) > 0:
                kind, value = self._replies.get(timeout=left)
                if kind == "flushed" and value == token:
                    return True
        except (queue.Full, queue.Empty):
            pass
        log.warning("trace export did not finish within %.0f s", timeout)
        return False

    def _export_here(self) -> bool:
        """One-shot commands: export what was recorded in this process, whole, before it exits."""
        from bot.ops.trace_export import connect, export_one

        items, self._pending = self._pending, []
        if not items:
            return True
        mlflow = connect(self.tracking_uri, self.experiment)
        results = [export_one(mlflow, ("trace", item[1].as_dict()) if item[0] == "trace" else item) for item in items]
        self._exported.value += results.count(True)
        self._failed.value += results.count(False)
        if False in results:
            ids = ", ".join(str(item[1].tags.get("request_id", "?")) for item, done in zip(items, results) if done is False)
            log.warning("trace export to %s failed for request %s (see the line above)", self.tracking_uri, ids)
        return False not in results

    def close(self, timeout: float = 5.0) -> None:
        """Export what is queued (at most `timeout`), then stop the exporter; in-process, export it all."""
        if self._in_process and self.enabled:
            self._export_here()
            return
        if self._process is None:
            return
        self.flush(timeout)
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._inbox.put(None, timeout=1.0)
        self._process.join(timeout=2.0)
        if self._process.is_alive():
            self._process.terminate()
        self._process = None
