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
    AUTH = "auth"  # no usable Databricks credentials
    THROTTLED = "throttled"  # the bot's own per-user / global limit, not the endpoint's
    STORE = "store_unavailable"  # healthbot's own database, after its retries (not the endpoint's fault)
    REFUSED = "refused"  # who may ask: not a member, not allowed to see the answer's domain

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


def error_detail(status: int, data: Any) -> str:
    if isinstance(data, dict):
        return f"HTTP {status} {data.get('error_code', '')}: {data.get('message', '')}"[:300]
    return f"HTTP {status}"


def status_error(status: int, data: Any, headers: dict[str, str]) -> EngineError:
    if status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif status == 504:
        kind = ErrorKind.TIMEOUT
    else:
        kind = STATUS_KINDS.get(status, ErrorKind.UNAVAILABLE)
    return EngineError(kind, error_detail(status, data), retry_after=retry_after_s(headers))
