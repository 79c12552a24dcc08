"""`GET /health` checks: each says ok or, in one line, why not. No secret ever appears here.

Checks that call out (serving endpoint state, Slack auth.test, Teams token) are cached ~30 s so
load-balancer probes every few seconds never hammer the workspace or the chat platforms.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.base import Engine
from agent.errors import EngineError
from bot.store import Store

REMOTE_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail}


CheckFn = Callable[[], Awaitable[Check]]


def cached(check: CheckFn, ttl_s: float = REMOTE_TTL_S) -> CheckFn:
    last: list[tuple[float, Check]] = []
    lock = asyncio.Lock()

    async def run() -> Check:
        async with lock:  # concurrent probes share one call
            if last and time.monotonic() - last[0][0] < ttl_s:
                return last[0][1]
            result = await check()
            last[:] = [(time.monotonic(), result)]
            return result

    return run


class HealthChecks:
    def __init__(self, *, store: Store, engine: Engine) -> None:
        self.store = store
        self.engine = engine
        self.checks: dict[str, CheckFn] = {"store": self.store_check, "endpoint": cached(self.engine_check)}

    def add(self, name: str, check: CheckFn) -> None:
        self.checks[name] = check

    async def store_check(self) -> Check:
        try:
            await self.store.ping()
        except Exception as exc:  # any driver error means "not writable"
            return Check(False, f"store not writable: {type(exc).__name__}: {str(exc)[:120]}")
        return Check(True, "readable and writable")

    async def engine_check(self) -> Check:
        endpoint_state = getattr(self.engine, "endpoint_state", None)
        if endpoint_state is None:
            return Check(True, f"{self.engine.name} engine (embedded)")
        try:
            state = await endpoint_state()
        except EngineError as exc:
            return Check(False, f"endpoint {exc.kind.value}: {exc.detail}"[:200])
        return Check(state.is_ready, f"endpoint state {state.ready}" + ("" if state.is_ready else f" ({state.config_update})"))

    async def run(self) -> tuple[bool, dict[str, dict[str, object]]]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._safe(self.checks[name]) for name in names))
        return all(c.ok for c in results), {name: c.as_dict() for name, c in zip(names, results)}

    @staticmethod
    async def _safe(check: CheckFn) -> Check:
        try:
            return await check()
        except Exception as exc:  # a broken check is a failing check, never a 500
            return Check(False, f"check failed: {type(exc).__name__}: {str(exc)[:120]}")
