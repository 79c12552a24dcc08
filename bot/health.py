"""`GET /health` checks: each says ok or, in one line, why not. No secret ever appears here."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.base import Engine
from agent.errors import EngineError
from bot.store import Store

ENDPOINT_STATE_TTL_S = 30.0  # probes every few seconds must not hammer the workspace


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail}


class HealthChecks:
    def __init__(self, *, store: Store, engine: Engine) -> None:
        self.store = store
        self.engine = engine
        self._endpoint: tuple[float, Check] | None = None

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
        now = time.monotonic()
        if self._endpoint is not None and now - self._endpoint[0] < ENDPOINT_STATE_TTL_S:
            return self._endpoint[1]
        try:
            state = await endpoint_state()
            check = Check(state.is_ready, f"endpoint state {state.ready}" + ("" if state.is_ready else f" ({state.config_update})"))
        except EngineError as exc:
            check = Check(False, f"endpoint {exc.kind.value}: {exc.detail}"[:200])
        self._endpoint = (now, check)
        return check

    async def run(self) -> tuple[bool, dict[str, dict[str, object]]]:
        checks = {"store": await self.store_check(), "endpoint": await self.engine_check()}
        return all(c.ok for c in checks.values()), {name: c.as_dict() for name, c in checks.items()}
