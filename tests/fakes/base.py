"""A recording aiohttp server on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run an aiohttp app on a free loopback port: its runner (to clean up) and base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)  # fakes: do not wait for a slow handler
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def strict_json(raw: bytes | str) -> Any:
    """JSON as Slack and the Bot Framework read it: standard JSON, so NaN and Infinity (which Python's
    json writes and reads by default) are refused."""
    return json.loads(raw, parse_constant=_not_json)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeServer:
    """Subclasses add routes in `build`; every request is recorded in `calls`."""

    calls: list[Recorded] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    def build(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.calls.append(Recorded(request.method, request.path, dict(request.headers), await request.read()))
            return await handler(request)

        app = web.Application(middlewares=[record])
        self.build(app)
        self._runner, self.url = await serve(app)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, predicate: Any, timeout: float = 8.0) -> None:
        """Poll until `predicate()` holds; the failure message lists what the fake received."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received so far: {[(c.method, c.path) for c in self.calls]}")
            await asyncio.sleep(0.01)

    def requests_to(self, suffix: str, method: str | None = None) -> list[Recorded]:
        return [c for c in self.calls if c.path.endswith(suffix) and (method is None or c.method == method)]
