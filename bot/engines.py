"""Choose the answer engine from settings: Model Serving when a workspace is configured."""

from __future__ import annotations

from agent.base import Engine
from bot.config import Settings


def build_engine(settings: Settings) -> Engine:
    """`HEALTHBOT_BACKEND=auto` picks serving when DATABRICKS_HOST or a profile is set, else demo."""
    if settings.use_serving:
        from agent.serving import ServingClient
        from bot.workspace import config_factory

        return ServingClient(
            endpoint_name=settings.endpoint_name,
            fmt=settings.endpoint_format,
            config_factory=config_factory(settings),
            timeout_s=settings.endpoint_timeout_s,
            cold_start_wait_s=settings.cold_start_wait_s,
            streaming=settings.stream == "auto",
        )
    from agent.demo import DemoEngine

    return DemoEngine(data_dir=settings.demo_data_dir, pace_s=settings.demo_pace_s)
