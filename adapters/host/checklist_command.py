"""`healthbot checklist [--json]`: the Health Monitor's deployment checklist, run against the configured
workspace and engine with healthbot's own health checks (it builds the server to have them)."""

from __future__ import annotations

import asyncio

from adapters.host.server import HEALTH, create_app
from bot.config import Settings
from bot.deploy.checklist import ITEMS, SKIP, Checklist, Item, exit_code, render, to_json
from bot.deploy.thresholds import load_thresholds
from bot.deploy.workspace_calls import DeployCalls
from bot.workspace import Workspace, config_factory


async def run_checklist(settings: Settings) -> dict[str, Item]:
    """As `healthbot checklist` runs it: the configured workspace and engine, healthbot's own checks."""
    if not settings.workspace_configured:
        return {key: Item(SKIP, "no workspace configured (set DATABRICKS_HOST)") for key in ITEMS}
    app = create_app(settings)
    health = app[HEALTH]
    calls = DeployCalls(Workspace(config_factory(settings)), settings.endpoint_name)
    try:
        return await Checklist(calls=calls, engine=health.engine, thresholds=load_thresholds(settings.eval_thresholds),
                               app_name=settings.app_name, health=health.run).run()
    finally:
        await health.engine.close()
        await health.store.close()


def main(settings: Settings, *, as_json: bool) -> int:
    items = asyncio.run(run_checklist(settings))
    print(to_json(items) if as_json else render(items))
    return exit_code(items)
