"""Typed engine failures, so every adapter can say in plain words what went wrong."""

from __future__ import annotations

from enum import StrEnum


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
