"""Async client for a Databricks Model Serving endpoint (the Health Monitor orchestrator).

Host and credentials come from databricks-sdk's unified config (PAT, OAuth M2M, the service
principal Databricks Apps inject, profiles); the HTTP calls themselves go through one pooled
aiohttp session, because the SDK's own client is synchronous (requests) and would block the loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from agent.base import AgentRequest, Answer, Chunk, ProgressCallback
from agent.databricks_config import databricks_config
from agent.errors import STATUS_KINDS, EngineError, ErrorKind, clip, error_detail, retry_after_s, status_error
from agent.formats import (
    Format,
    UnreadableResponse,
    build_request,
    format_for_task,
    parse_response,
)
from agent.endpoint_config import EndpointView, app_name, read_app, read_endpoint
from agent.served_versions import ServedVersions
from agent.workspace_http import WorkspaceHTTP
from agent.streaming import Refused, StreamFailed, StreamReader, read_stream

if TYPE_CHECKING:
    from databricks.sdk.core import Config

log = logging.getLogger(__name__)

FormatSetting = Format | Literal["auto"]
STREAMABLE = frozenset({"chat_agent", "responses", "chat_completions"})




@dataclass(frozen=True, slots=True)
class EndpointState:
    ready: str  # READY / NOT_READY (EndpointStateReady)
    config_update: str
    task: str | None
    view: EndpointView | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready == "READY"


class ServingClient:
    name = "serving"

    def __init__(
        self,
        *,
        endpoint_name: str,
        fmt: FormatSetting = "auto",
        config_factory: Callable[[], Config] = databricks_config,
        timeout_s: float = 60.0,
        cold_start_wait_s: float = 600.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        poll_interval_s: float = 5.0,
        streaming: bool = True,
        stream_idle_s: float = 30.0,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.fmt = fmt
        self.cold_start_wait_s = cold_start_wait_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.poll_interval_s = poll_interval_s
        self.streaming = streaming  # HEALTHBOT_STREAM=auto
        self.stream_idle_s = stream_idle_s
        self.http = WorkspaceHTTP(config_factory, timeout_s)  # auth (the bot's, or a person's) and one pooled session
        self._resolved_format: Format | None = None if fmt == "auto" else fmt
        self.app = app_name(endpoint_name)  # `apps/<name>`: an agent served from a Databricks App
        self._app_url: str | None = None
        self.versions = ServedVersions(self.endpoint_state, default_entity=self.app or "")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter on its upper half, so replicas do not retry in step."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        return ceiling * random.uniform(0.5, 1.0)

    # -- endpoint state ---------------------------------------------------------------------

    @property
    def timeout_s(self) -> float:
        """The hard limit of one endpoint attempt (HEALTHBOT_ENDPOINT_TIMEOUT), kept by the HTTP side."""
        return self.http.timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self.http.timeout_s = value

    async def endpoint_state(self) -> EndpointState:
        path = f"/api/2.0/apps/{self.app}" if self.app else f"/api/2.0/serving-endpoints/{self.endpoint_name}"
        status, data, _ = await self.http.call("GET", path)
        if status != 200 or not isinstance(data, dict):
            raise EngineError(STATUS_KINDS.get(status, ErrorKind.UNAVAILABLE), error_detail(status, data))
        if self.app:
            self._app_url = str(data.get("url") or "").rstrip("/") or None
        view = read_app(data) if self.app else read_endpoint(data)
        self.remember_config(view)
        return EndpointState(ready=view.ready, config_update=view.config_update, task=view.task, view=view)

    def remember_config(self, view: EndpointView) -> None:
        """The version map every answer is labelled from; also fed by the rollout watcher's polls."""
        self.versions.remember(view)

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
        started = time.perf_counter()
        tries = _Tries()
        while True:
            try:
                status, data, headers = await self.http.call("POST", await self._invocations(), body, token=request.token)
            except EngineError as exc:
                await self._after_unavailable(exc, tries)
                continue
            if status == 200:
                answer = _parsed(data)
                answer.endpoint_latency_ms = (time.perf_counter() - started) * 1000
                answer.served_entity, answer.served_version = await self.versions.label(headers)
                return answer
            await self._after_refusal(status, data, headers, tries, on_progress)

    async def stream(self, request: AgentRequest, *, on_progress: ProgressCallback | None = None) -> AsyncIterator[Chunk]:
        """The answer as it is written (`"stream": true`, server-sent events), for the formats that
        stream; `inputs` endpoints and HEALTHBOT_STREAM=off answer whole, as one final chunk. A
        stream that breaks before anything was shown is tried again; after, it is an error, with what
        had arrived in the log."""
        fmt = await self._format()
        if not self.streaming or fmt not in STREAMABLE:
            yield Chunk(answer=await self.answer(request, on_progress=on_progress))
            return
        body = {**build_request(fmt, request), "stream": True}
        started = time.perf_counter()
        tries = _Tries()
        while True:
            reader = StreamReader()
            url = await self._invocations()
            host, headers = await self.http.auth(request.token)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s)
            try:
                async with self.http.session().post(url if self.app else f"{host}{url}", json=body, timeout=timeout,
                                             headers={**headers, "Accept": "text/event-stream"}) as resp:
                    served = resp.headers
                    async for chunk in read_stream(resp, reader, first_s=self.timeout_s, idle_s=self.stream_idle_s):
                        yield chunk
            except Refused as refused:
                await self._after_refusal(refused.status, refused.data, refused.headers, tries, on_progress)
                continue
            except StreamFailed as failed:  # the agent raised: not retried blindly, what was shown stays
                log.warning("endpoint stream reported an error after %d events and %d characters shown: %s",
                            reader.events, len(reader.shown), clip(str(failed), 300))
                error = EngineError(ErrorKind.AGENT_FAILED, clip(str(failed)))
                error.served_version = (await self.versions.label(served))[1]
                raise error from None
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                kind = ErrorKind.TIMEOUT if isinstance(exc, asyncio.TimeoutError) else ErrorKind.UNAVAILABLE
                error = EngineError(kind, f"the stream stopped after {reader.events} events: {type(exc).__name__}")
                if reader.shown:
                    log.warning("endpoint stream broke after %d characters shown: %r", len(reader.shown),
                                reader.shown[-200:])
                    raise error from None
                await self._after_unavailable(error, tries, retryable=True)
                continue
            answer = _parsed(reader.whole) if reader.whole is not None else reader.answer()
            if not answer.content and reader.whole is None:
                raise EngineError(ErrorKind.BAD_RESPONSE, f"the stream ended after {reader.events} events without text")
            answer.endpoint_latency_ms = (time.perf_counter() - started) * 1000
            answer.served_entity, answer.served_version = await self.versions.label(served)
            yield Chunk(answer=answer)
            return

    async def _invocations(self) -> str:
        """Model Serving's invocations path; for an App, its URL's `/responses` (the agent server answers
        the Responses API there, as databricks-openai's `apps/<name>` client calls it), or for an Agent
        Runtime app its invocation API, `/api/invocations`."""
        if not self.app:
            return f"/serving-endpoints/{self.endpoint_name}/invocations"
        if self._app_url is None:
            await self.endpoint_state()
        if self._app_url is None:
            raise EngineError(ErrorKind.UNAVAILABLE, f"the app {self.app} has no URL: is it deployed and running?")
        return f"{self._app_url}/api/invocations" if await self._format() == "invocations" else f"{self._app_url}/responses"

    async def _after_unavailable(self, exc: EngineError, tries: _Tries, *, retryable: bool = False) -> None:
        """No answer (connection refused or reset; a stream that broke before showing anything):
        back off and try again, a few times."""
        if not (retryable or exc.kind == ErrorKind.UNAVAILABLE) or tries.attempt >= self.max_retries:
            raise exc
        tries.attempt += 1
        await asyncio.sleep(self._backoff(tries.attempt))

    async def _after_refusal(self, status: int, data: Any, headers: dict[str, str], tries: _Tries,
                             on_progress: ProgressCallback | None) -> None:
        """After an error status: wait for a waking endpoint, or back off on 429 / 5xx, or raise."""
        if status in (503, 504) and not tries.woke and await self._is_waking():
            tries.woke = True
            await self._wait_until_ready(on_progress)
            return
        if status in (429, 502, 503, 504) and tries.attempt < self.max_retries:
            tries.attempt += 1
            retry_after = retry_after_s(headers) if status == 429 else None
            delay = retry_after if retry_after is not None else self._backoff(tries.attempt)
            log.info("endpoint answered %s; retry %d in %.1f s", status, tries.attempt, delay)
            await asyncio.sleep(delay)
            return
        error = status_error(status, data, headers)
        error.served_version = (await self.versions.label(headers))[1]
        raise error

    async def _is_waking(self) -> bool:
        try:
            return not (await self.endpoint_state()).is_ready
        except EngineError:
            return False

    async def warm_up(self) -> None:
        await self.http.warm_up()

    async def close(self) -> None:
        await self.http.close()


@dataclass(slots=True)
class _Tries:
    attempt: int = 0
    woke: bool = False


def _parsed(data: Any) -> Answer:
    try:
        return parse_response(data)
    except UnreadableResponse as exc:
        raise EngineError(ErrorKind.BAD_RESPONSE, str(exc)) from None
