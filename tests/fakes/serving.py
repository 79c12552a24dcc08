"""A fake Databricks Model Serving workspace: scripted answers, recorded requests."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "databricks"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Scripted:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    events: list[str] | None = None  # answered as server-sent events (`data: …`) when the request streams
    gap_s: float = 0.0  # between events
    cut_after: int | None = None  # drop the connection after this many events


def sse_fixture(name: str) -> list[str]:
    """The `data:` payloads of a recorded stream (tests/fixtures/databricks/*.sse)."""
    text = (FIXTURES / name).read_text()
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


def answer_body(content: str = "Costs rose 42%.", **extra: Any) -> dict[str, Any]:
    return {"predictions": [{"content": content, "sources": ["system.billing.usage"], "confidence": 0.9,
                             "domains": ["costs"], **extra}]}


def error(name: str, headers: dict[str, str] | None = None) -> Scripted:
    """A Scripted error from one of the serving_error_*.json fixtures ({status, body})."""
    data = fixture(name)
    return Scripted(data["status"], data["body"], headers or {})


@dataclass
class FakeServing(FakeServer):
    endpoint_name: str = "health_monitor_orchestrator"
    token: str = "test-token"
    invocations: deque[Scripted] = field(default_factory=deque)  # consumed in order, then `default`
    states: deque[str] = field(default_factory=deque)  # READY / NOT_READY, consumed in order
    default: Scripted = field(default_factory=lambda: Scripted(200, answer_body()))
    task: str | None = None
    runs: dict[str, Any] = field(default_factory=dict)  # run_id → Jobs API Run JSON
    in_flight: int = 0
    max_in_flight: int = 0
    served_entity_name: str | None = None  # sent as the `served-model-name` header of every invocation

    def invocation_bodies(self) -> list[Any]:
        return [c.json() for c in self.requests_to("/invocations", "POST")]

    def build(self, app: web.Application) -> None:
        app.router.add_get("/.well-known/databricks-config", self._metadata)
        app.router.add_get("/api/2.0/serving-endpoints/{name}", self._endpoint)
        app.router.add_post("/serving-endpoints/{name}/invocations", self._invoke)
        app.router.add_get("/api/2.2/jobs/runs/get", self._get_run)

    async def _get_run(self, request: web.Request) -> web.Response:
        run = self.runs.get(request.query.get("run_id", ""))
        if run is None:
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"}, status=404)
        return web.json_response(run)

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"workspace_id": "1234567890123456"})

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _endpoint(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error_code": "UNAUTHENTICATED", "message": "bad token"}, status=401)
        if request.match_info["name"] != self.endpoint_name:
            return web.json_response(fixture("serving_error_404_resource_does_not_exist.json")["body"], status=404)
        ready = self.states.popleft() if self.states else "READY"
        body = fixture("serving_endpoint_get_ready.json" if ready == "READY" else "serving_endpoint_get_not_ready.json")
        body["name"] = self.endpoint_name
        body.pop("task", None)
        if self.task:
            body["task"] = self.task
        return web.json_response(body)

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error_code": "UNAUTHENTICATED", "message": "bad token"}, status=401)
        scripted = self.invocations.popleft() if self.invocations else self.default
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if scripted.delay_s:
                await asyncio.sleep(scripted.delay_s)
        finally:
            self.in_flight -= 1
        headers = {**scripted.headers, **({"served-model-name": self.served_entity_name} if self.served_entity_name else {})}
        if scripted.events is not None and (await request.json()).get("stream") is True:
            return await self._stream(request, scripted, headers)
        if isinstance(scripted.body, bytes):
            return web.Response(status=scripted.status, body=scripted.body, headers=headers,
                                content_type="application/json")
        return web.json_response(scripted.body, status=scripted.status, headers=headers)

    async def _stream(self, request: web.Request, scripted: Scripted, headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, event in enumerate(scripted.events or []):
            if scripted.cut_after is not None and index >= scripted.cut_after:
                assert request.transport is not None
                request.transport.close()  # as a proxy or a crashed replica would
                return response
            if index and scripted.gap_s:
                await asyncio.sleep(scripted.gap_s)
            await response.write(f"data: {event}\n\n".encode())
        await response.write_eof()
        return response
