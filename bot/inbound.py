"""What every route does with a body before anything else sees it: decode, parse, bound, normalise.

Input that is merely bad is refused with a 400 and a reason (`BadInput`), logged as one line, never
as a traceback: deeply nested JSON (which makes `json.loads` and the SDKs recurse), bodies that are
not UTF-8, and strings no store or chat platform can carry — lone UTF-16 surrogates (`"\\ud800"`
parses to a str that cannot be encoded) and NUL characters (PostgreSQL refuses them) — which are
replaced on the way in, so nothing downstream ever meets them.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_DEPTH = 32  # Slack, Bot Framework and Databricks payloads nest about 8 deep
LOG_BURST = 20  # refusal lines per route and minute before they are counted instead
_ESCAPES = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
_UNSAFE = re.compile("[\ud800-\udfff\x00]")

log = logging.getLogger(__name__)


class BadInput(ValueError):
    """A body healthbot refuses (400): the message is the reason, safe to show the sender."""


class Shape(BaseModel):
    """A payload shape checked at the edge (adapters/*/validate.py): strict types for the fields
    healthbot and the SDKs read (a number is not a string), every other field allowed through."""

    model_config = ConfigDict(extra="allow", strict=True)


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port  # both raise ValueError on a malformed netloc ("http://[::1")
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("not an http(s) URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def reason(exc: ValidationError) -> str:
    """pydantic's first complaint as a 400's reason: `event.user: Input should be a valid string`."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def clean_text(text: str) -> str:
    """Lone surrogates become U+FFFD, NULs are dropped: text any encoder and database accepts."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda match: "" if match.group() == "\x00" else "\ufffd", text)


def clean(value: Any) -> Any:
    """`clean_text` applied to every string (keys too) of a parsed JSON value."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(key): clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Iterative, so checking a deep value cannot itself overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise BadInput(f"JSON nested deeper than {limit} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"body is not UTF-8 (byte {exc.start})") from None


def has_unsafe_escapes(text: str) -> bool:
    """Whether JSON text can parse to a lone surrogate or a NUL (strict UTF-8 text cannot hold them raw)."""
    return _ESCAPES.search(text) is not None


def load_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse, refuse what is too deep, normalise unsafe strings. Raises BadInput with the reason."""
    text = decode(raw) if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadInput(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise BadInput(f"not JSON: {exc}") from None
    if text.count("{") + text.count("[") > max_depth:  # fewer openers cannot nest deeper: skip the walk
        check_depth(value, max_depth)
    return clean(value) if has_unsafe_escapes(text) else value


class RefusalLog:
    """One warning line per refused request, at most LOG_BURST per route and minute; past that the
    refusals are counted and summed up in one line when the minute is over, so a flood of bad input
    cannot fill the disk."""

    def __init__(self, burst: int = LOG_BURST, window_s: float = 60.0) -> None:
        self.burst = burst
        self.window_s = window_s
        self._windows: dict[str, tuple[float, int]] = {}

    def refused(self, route: str, reason: str, *, status: int = 400) -> None:
        now = time.monotonic()
        started, count = self._windows.get(route, (now, 0))
        if now - started >= self.window_s:
            if count > self.burst:
                log.warning("%s: %d more requests refused in the last minute (not logged one by one)",
                            route, count - self.burst)
            started, count = now, 0
        count += 1
        self._windows[route] = (started, count)
        if count <= self.burst:
            log.warning("%s refused (%d): %s", route, status, reason[:300])


refusals = RefusalLog()


class MalformedHttpFilter(logging.Filter):
    """aiohttp answers malformed HTTP with a 400 itself, then logs a traceback at ERROR; a client that
    hangs up mid-body leaves a ConnectionResetError traceback. Both are the client's doing: one
    rate-limited warning line, or a debug line, instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            refusals.refused("HTTP", f"malformed request: {str(error.message).splitlines()[0][:200]}", status=error.code)
            return False
        if isinstance(error, ConnectionResetError):
            log.debug("client disconnected mid-request")
            return False
        return True


def quiet_http_errors() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedHttpFilter) for f in server_log.filters):
        server_log.addFilter(MalformedHttpFilter())


@web.middleware
async def client_gone(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A client that disconnects while sending its body gets a 400 it will never read, and a debug line."""
    try:
        return await handler(request)
    except ConnectionResetError:
        log.debug("%s %s: client disconnected mid-request", request.method, request.path)
        return web.Response(status=400, text="client disconnected")
