"""Async client for a Databricks Model Serving endpoint (the Health Monitor orchestrator).

Host and credentials come from databricks-sdk's unified config (PAT, OAuth M2M, the service
principal Databricks Apps inject, profiles); the HTTP calls themselves go through one pooled
aiohttp session, because the SDK's own client is synchronous (requests) and would block the loop.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from agent.base import AgentRequest, Answer, ProgressCallback
from agent.errors import EngineError, ErrorKind
from agent.formats import (
    Format,
    UnreadableResponse,
    build_request,
    format_for_task,
    parse_response,
)

if TYPE_CHECKING:
    from databricks.sdk.core import Config

log = logging.getLogger(__name__)

FormatSetting = Format | Literal["auto"]
_STATUS_KINDS = {
    400: ErrorKind.BAD_REQUEST,
    401: ErrorKind.AUTH,
    403: ErrorKind.PERMISSION_DENIED,
    404: ErrorKind.NOT_FOUND,
    422: ErrorKind.BAD_REQUEST,
}
_RETRY_AFTER_CAP_S = 60.0


@dataclass(frozen=True, slots=True)
class EndpointState:
    ready: str  # READY / NOT_READY (EndpointStateReady)
    config_update: str
    task: str | None

    @property
    def is_ready(self) -> bool:
        return self.ready == "READY"


_SDK_IMPORT = threading.Lock()  # worker threads (warm-up, alert poller, Lakebase) may import it at once


def databricks_config(*, host: str | None = None, token: str | None = None, profile: str | None = None) -> Config:
    """Build the SDK's config; imported here, lazily, because importing databricks-sdk costs ~2 s.

    `retry_timeout_seconds` is lowered from the SDK's 300 s: on construction the SDK probes
    `{host}/.well-known/databricks-config` and, against an unreachable host, retried for five
    minutes before falling back to the explicit configuration. The import is serialised: two
    threads importing databricks-sdk at once hit Python's module-lock deadlock detection
    (`_DeadlockError`, seen when the endpoint warm-up and the alert poller started together).
    """
    with _SDK_IMPORT:
        from databricks.sdk.core import Config

    kwargs: dict[str, Any] = {"retry_timeout_seconds": 20, "http_timeout_seconds": 10}
    if host:
        kwargs["host"] = host
    if token:
        kwargs["token"] = token
    if profile:
        kwargs["profile"] = profile
    return Config(**kwargs)


class ServingClient:
    name = "serving"

    def __init__(
        self,
        *,
        endpoint_name: str,
        fmt: FormatSetting = "inputs",
        config_factory: Callable[[], Config] = databricks_config,
        timeout_s: float = 60.0,
        cold_start_wait_s: float = 600.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.fmt = fmt
        self.timeout_s = timeout_s
        self.cold_start_wait_s = cold_start_wait_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.poll_interval_s = poll_interval_s
        self._config_factory = config_factory
        self._config: Config | None = None
        self._config_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._resolved_format: Format | None = None if fmt == "auto" else fmt

    # -- plumbing ---------------------------------------------------------------------------

    async def _auth(self) -> tuple[str, dict[str, str]]:
        """Host and fresh auth headers; the SDK refreshes OAuth tokens itself (off the loop)."""
        async with self._config_lock:
            if self._config is None:
                try:
                    self._config = await asyncio.to_thread(self._config_factory)
                except Exception as exc:  # the SDK raises ValueError with its own explanation
                    raise EngineError(ErrorKind.AUTH, str(exc).splitlines()[0][:300]) from None
        config = self._config
        try:
            headers = await asyncio.to_thread(config.authenticate)
        except Exception as exc:
            raise EngineError(ErrorKind.AUTH, str(exc).splitlines()[0][:300]) from None
        return (config.host or "").rstrip("/"), dict(headers)

    async def warm_up(self) -> None:
        """Build the SDK config (its import alone takes seconds) before the first question needs it."""
        try:
            await self._auth()
        except EngineError as exc:
            log.warning("Databricks configuration is not usable yet: %s", exc.detail)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32), headers={"User-Agent": "healthbot/0.1"}
            )
        return self._session

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        """One HTTP attempt with the hard per-attempt timeout; returns status, parsed JSON, headers."""
        host, headers = await self._auth()
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self._http().request(method, f"{host}{path}", json=body, headers=headers, timeout=timeout) as resp:
                raw = await resp.read()
                try:
                    data = json.loads(raw) if raw else None
                except ValueError:
                    data = raw[:200].decode("utf-8", "replace")
                return resp.status, data, dict(resp.headers)
        except asyncio.TimeoutError:
            raise EngineError(ErrorKind.TIMEOUT, f"no answer within {self.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise EngineError(ErrorKind.UNAVAILABLE, f"{type(exc).__name__}: {exc}"[:300]) from None

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter on its upper half, so replicas do not retry in step."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        return ceiling * random.uniform(0.5, 1.0)

    # -- endpoint state ---------------------------------------------------------------------

    async def endpoint_state(self) -> EndpointState:
        status, data, _ = await self._call("GET", f"/api/2.0/serving-endpoints/{self.endpoint_name}")
        if status != 200 or not isinstance(data, dict):
            raise EngineError(_STATUS_KINDS.get(status, ErrorKind.UNAVAILABLE), _error_detail(status, data))
        state = data.get("state") or {}
        return EndpointState(
            ready=str(state.get("ready", "")), config_update=str(state.get("config_update", "")), task=data.get("task")
        )

    async def _format(self) -> Format:
        if self._resolved_format is None:
            try:
                task = (await self.endpoint_state()).task
            except EngineError as exc:
                if exc.kind in (ErrorKind.AUTH, ErrorKind.PERMISSION_DENIED, ErrorKind.NOT_FOUND):
                    raise
                return "inputs"  # state unknown for now: the original format, and ask again next time
            self._resolved_format = format_for_task(task)
            log.info("endpoint %s task %r: using the %s request format", self.endpoint_name, task, self._resolved_format)
        return self._resolved_format

    async def _wait_until_ready(self, on_progress: ProgressCallback | None) -> None:
        """A scale-to-zero endpoint takes minutes to wake; poll its state instead of re-posting."""
        if on_progress is not None:
            await on_progress("waking_up")
        deadline = time.monotonic() + self.cold_start_wait_s
        while True:
            state = await self.endpoint_state()
            if state.is_ready:
                if on_progress is not None:
                    await on_progress("ready")
                return
            if time.monotonic() >= deadline:
                raise EngineError(ErrorKind.WAKING_UP, f"not READY after {self.cold_start_wait_s:g} s")
            await asyncio.sleep(min(self.poll_interval_s, max(0.0, deadline - time.monotonic())))

    # -- answering --------------------------------------------------------------------------

    async def answer(self, request: AgentRequest, *, on_progress: ProgressCallback | None = None) -> Answer:
        fmt = await self._format()
        body = build_request(fmt, request)
        path = f"/serving-endpoints/{self.endpoint_name}/invocations"
        started = time.perf_counter()
        attempt = 0
        woke = False
        while True:
            try:
                status, data, headers = await self._call("POST", path, body)
            except EngineError as exc:
                if exc.kind != ErrorKind.UNAVAILABLE or attempt >= self.max_retries:
                    raise
                attempt += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            if status == 200:
                try:
                    answer = parse_response(data)
                except UnreadableResponse as exc:
                    raise EngineError(ErrorKind.BAD_RESPONSE, str(exc)) from None
                answer.endpoint_latency_ms = (time.perf_counter() - started) * 1000
                return answer
            if status in (503, 504) and not woke and await self._is_waking():
                woke = True
                await self._wait_until_ready(on_progress)
                continue
            if status in (429, 502, 503, 504) and attempt < self.max_retries:
                attempt += 1
                retry_after = _retry_after_s(headers) if status == 429 else None
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                log.info("endpoint answered %s; retry %d in %.1f s", status, attempt, delay)
                await asyncio.sleep(delay)
                continue
            raise _status_error(status, data, headers)

    async def _is_waking(self) -> bool:
        try:
            return not (await self.endpoint_state()).is_ready
        except EngineError:
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after_s(headers: dict[str, str]) -> float | None:
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
    return max(0.0, min(_RETRY_AFTER_CAP_S, seconds))


def _error_detail(status: int, data: Any) -> str:
    if isinstance(data, dict):
        return f"HTTP {status} {data.get('error_code', '')}: {data.get('message', '')}"[:300]
    return f"HTTP {status}"


def _status_error(status: int, data: Any, headers: dict[str, str]) -> EngineError:
    if status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif status == 504:
        kind = ErrorKind.TIMEOUT
    else:
        kind = _STATUS_KINDS.get(status, ErrorKind.UNAVAILABLE)
    return EngineError(kind, _error_detail(status, data), retry_after=_retry_after_s(headers))
