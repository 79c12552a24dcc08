"""The conversation handler's limits and defaults (the Health Monitor's own: 60 s endpoint timeout,
30 questions per minute per person, 1000 overall, a 300 s cache of 100 quick answers)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    history_limit: int = 20
    max_concurrency: int = 10
    user_rate_per_min: int = 30
    global_rate_per_min: int = 1000
    cache_ttl_s: float = 300.0
    cache_size: int = 100
    dm_idle_s: float = 30 * 60.0
    endpoint_name: str = "health_monitor_orchestrator"
    endpoint_timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> HandlerOptions:
        return cls(
            history_limit=settings.history_limit,
            max_concurrency=settings.max_concurrency,
            user_rate_per_min=settings.user_rate_per_min,
            global_rate_per_min=settings.global_rate_per_min,
            cache_ttl_s=settings.cache_ttl_s,
            cache_size=settings.cache_size,
            dm_idle_s=settings.dm_idle_minutes * 60.0,
            endpoint_name=settings.endpoint_name,
            endpoint_timeout_s=settings.endpoint_timeout_s,
        )
