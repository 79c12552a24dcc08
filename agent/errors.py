"""Typed engine failures, so every adapter can say in plain words what went wrong."""

from __future__ import annotations

import email.utils
import time
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    TIMEOUT = "timeout"
    WAKING_UP = "waking_up"  # scale-to-zero endpoint did not become ready in time
    RATE_LIMITED = "rate_limited"  # the endpoint answered 429 after our retries
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    BAD_RESPONSE = "bad_response"  # the endpoint answered something we cannot read
    UNAVAILABLE = "unavailable"  # connection refused, 5xx after retries
    AGENT_FAILED = "agent_failed"  # the agent itself raised: MLflow's error event or its evaluation error
    AUTH = "auth"  # no usable Databricks credentials
    THROTTLED = "throttled"  # the bot's own per-user / global limit, not the endpoint's
    STORE = "store_unavailable"  # healthbot's own database, after its retries (not the endpoint's fault)
    REFUSED = "refused"  # who may ask: not a member, not allowed to see the answer's domain
    SIGN_IN = "sign_in_unavailable"  # HEALTHBOT_IDENTITY=user: the workspace could not renew the asker's sign-in

    @property
    def retryable(self) -> bool:
        return self not in (ErrorKind.PERMISSION_DENIED, ErrorKind.NOT_FOUND, ErrorKind.AUTH, ErrorKind.REFUSED)


class EngineError(Exception):
    """An answer could not be had; `kind` drives the user-facing wording."""

    def __init__(self, kind: ErrorKind, detail: str = "", *, retry_after: float | None = None):
        super().__init__(f"{kind.value}: {detail}" if detail else kind.value)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
        self.served_version = ""  # the served entity's version, when the failed response named it


# -- HTTP answers of a serving endpoint, as typed failures --------------------------------------

STATUS_KINDS = {
    400: ErrorKind.BAD_REQUEST,
    401: ErrorKind.AUTH,
    403: ErrorKind.PERMISSION_DENIED,
    404: ErrorKind.NOT_FOUND,
    422: ErrorKind.BAD_REQUEST,
}
RETRY_AFTER_CAP_S = 60.0


def retry_after_s(headers: dict[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return max(0.0, min(RETRY_AFTER_CAP_S, seconds))


MLFLOW_EVALUATION_ERROR = "unexpected error while evaluating the model"
AGENT_MESSAGE_CHARS = 200


def error_detail(status: int, data: Any) -> str:
    """One line for the log: Databricks' `{error_code, message}`, or FastAPI's `{"detail": …}` (MLflow's
    AgentServer, an agent on a Databricks App)."""
    if isinstance(data, dict):
        message = data.get("message") or _detail_text(data.get("detail"))
        return f"HTTP {status} {data.get('error_code', '')}: {message}"[:300]
    return f"HTTP {status}"


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):  # FastAPI's validation errors: [{"loc", "msg", "type"}]
        return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return "" if detail is None else str(detail)


def clip(text: str, limit: int = AGENT_MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def agent_failure(status: int, data: Any) -> str | None:
    """The agent's own exception, when the error body says the agent raised rather than that the
    request was wrong: `mlflow models serve` answers 400 "unexpected error while evaluating the model"
    with the traceback in `stack_trace` (its last line is the agent's message; the rest is never shown),
    and MLflow's AgentServer answers 500 with FastAPI's `{"detail": "<the exception>"}`."""
    if not isinstance(data, dict):
        return None
    if status == 400 and MLFLOW_EVALUATION_ERROR in str(data.get("message", "")):
        lines = [line for line in str(data.get("stack_trace") or "").splitlines() if line.strip()]
        return clip(lines[-1]) if lines else "the agent raised an exception"
    if status == 500 and isinstance(data.get("detail"), str) and data["detail"].strip():
        return clip(data["detail"])
    return None


def status_error(status: int, data: Any, headers: dict[str, str]) -> EngineError:
    failure = agent_failure(status, data)
    if failure is not None:
        return EngineError(ErrorKind.AGENT_FAILED, failure)
    if status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif status == 504:
        kind = ErrorKind.TIMEOUT
    else:
        kind = STATUS_KINDS.get(status, ErrorKind.UNAVAILABLE)
    return EngineError(kind, error_detail(status, data), retry_after=retry_after_s(headers))
