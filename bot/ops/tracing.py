"""MLflow tracing of every handled message, and 👍 / 👎 as feedback on its trace.

Off, and free, unless MLFLOW_TRACKING_URI is set: mlflow (≈1 s to import) is imported only then.
Each message is a trace: a root span per platform message, a `handler` span and an `endpoint` span
(status and latency), tagged with platform, session id, domains and request id, so the request id
an error message shows finds its trace (`tags.request_id = '…'`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


class Tracer:
    def __init__(self, tracking_uri: str | None = None) -> None:
        self.enabled = bool(tracking_uri)
        self._mlflow: Any = None
        if self.enabled:
            import mlflow

            mlflow.set_tracking_uri(str(tracking_uri))
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or (
                "/Shared/healthbot" if str(tracking_uri).startswith("databricks") else "healthbot")
            mlflow.set_experiment(experiment)
            self._mlflow = mlflow
            _skip_prediction_context_probe()

    @contextlib.contextmanager
    def span(self, name: str, span_type: str = "UNKNOWN", **attributes: Any) -> Iterator[Any]:
        if not self.enabled:
            yield None
            return
        with self._mlflow.start_span(name=name, span_type=span_type) as span:
            if attributes:
                span.set_attributes(attributes)
            yield span

    def trace_id(self) -> str:
        if not self.enabled:
            return ""
        return str(self._mlflow.get_active_trace_id() or "")

    def tag(self, **tags: Any) -> None:
        if self.enabled:
            self._mlflow.update_current_trace(tags={k: str(v) for k, v in tags.items() if v is not None})

    def log_feedback(self, trace_id: str, *, value: int, user_id: str) -> None:
        """The user's vote as an MLflow assessment on the answer's trace."""
        if not self.enabled or not trace_id:
            return
        from mlflow.entities import AssessmentSource

        try:
            self._mlflow.log_feedback(trace_id=trace_id, name="user_feedback", value=value > 0,
                                      source=AssessmentSource(source_type="HUMAN", source_id=user_id))
        except Exception as exc:  # the vote is already in the request log; tracing is best effort
            log.warning("could not attach feedback to trace %s: %s", trace_id, exc)

    def flush(self) -> None:
        if self.enabled:
            self._mlflow.flush_trace_async_logging()


def _skip_prediction_context_probe() -> None:
    """Workaround: on every span, mlflow-skinny tries `from mlflow.pyfunc.context import …`, which
    needs numpy and pandas; without them the failed import is re-attempted each time (~1 ms of
    module loading per span, measured in bench/tracing.py). A chat bot never runs inside a pyfunc
    prediction, so when that import fails once, tell mlflow there is no prediction context."""
    import mlflow.tracing.utils as tracing_utils

    try:
        from mlflow.pyfunc.context import get_prediction_context  # noqa: F401
    except (ImportError, KeyError):
        tracing_utils._try_get_prediction_context = lambda: None
