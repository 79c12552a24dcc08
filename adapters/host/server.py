"""The aiohttp application behind `healthbot serve`: the core (bot.core.build_core), the channels around
it (Slack, Teams: each mounts its own routes), the alert and deployment wiring, /health and /metrics.
Nothing here is a module-level singleton."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.host.alert_wiring import PULLER, alert_check, mount_alerts
from adapters.host.deploy_wiring import mount_deploys
from adapters.host.identity_wiring import mount_identities
from adapters.slack import mount_slack
from adapters.teams import mount_teams
from agent.base import Engine
from bot.alerts.dispatch import AlertDispatcher
from bot.config import Settings
from bot.core import Core, build_core
from bot.handler import ConversationHandler
from bot.inbound import client_gone, quiet_http_errors
from bot.models import Platform
from bot.ops.health import REMOTE_TTL_S, HealthChecks, cached
from bot.ops.housekeeping import Retention
from bot.ops.logs import log_request
from bot.ops.metrics import Metrics
from bot.ports import Channel
from bot.store import Store

if TYPE_CHECKING:  # the channels' SDKs load only when they are mounted (mount_slack, mount_teams)
    from adapters.slack.app import SlackChannel
    from adapters.teams.app import TeamsChannel

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
HANDLER = web.AppKey("handler", ConversationHandler)
HEALTH = web.AppKey("health", HealthChecks)
CORE = web.AppKey("core", Core)
SLACK: web.AppKey[SlackChannel | None] = web.AppKey("slack")  # None when Slack is off
TEAMS: web.AppKey[TeamsChannel] = web.AppKey("teams")
WARM_UP = web.AppKey("warm_up", asyncio.Task)
ALERTS = web.AppKey("alerts", AlertDispatcher)

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings, *, store: Store | None = None, engine: Engine | None = None) -> web.Application:
    core = build_core(settings, store=store, engine=engine)
    handler, store, engine = core.handler, core.store, core.engine

    quiet_http_errors()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[client_gone])
    app[CORE] = core
    app[SETTINGS] = settings
    app[STORE] = store
    app[HANDLER] = handler
    app[HEALTH] = core.health
    app.router.add_get("/health", health)
    mount_identities(app, core.identities, core.health)
    slack, teams = mount_slack(app, core), mount_teams(app, core)
    app[SLACK], app[TEAMS] = slack, teams
    channels: list[Channel] = [teams] if slack is None else [slack, teams]
    app[ALERTS] = mount_alerts(app, core, channels)
    mount_deploys(app, core)
    metrics = Metrics()
    handler.observers += [metrics.observe, log_request]
    metrics.watch_alerts(app[ALERTS])
    metrics.watch_tracer(handler.tracer)
    app.router.add_get("/metrics", metrics.handle)
    checks = app[HEALTH]
    for channel in channels:  # Teams off or in emulator mode says so, and is ok
        checks.add(channel.platform.value, cached(channel.health, ttl_s=300 if channel.platform is Platform.TEAMS else REMOTE_TTL_S))
    checks.add("alerts", alert_check(app[ALERTS]))
    if PULLER in app:
        checks.add("alert_pull", app[PULLER].check)  # type: ignore[attr-defined]
        metrics.watch_puller(app[PULLER])

    async def freeze_startup_objects(_: web.Application) -> None:
        # Everything imported and built so far lives as long as the process: move it out of the
        # cyclic GC's view, so a full collection during a burst scans only request-time objects
        # (measured: Slack ack p99 under load, bench/slack_events.py).
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze_startup_objects)

    async def check_credentials(_: web.Application) -> None:
        """Lakebase: a wrong instance or a missing permission stops start-up, saying which."""
        password = getattr(store, "password", None)
        if password is not None:
            from bot.config import ConfigError
            from bot.store.lakebase import CredentialError

            try:
                await password()
            except CredentialError as exc:
                raise ConfigError(str(exc)) from None

    app.on_startup.append(check_credentials)

    retention = Retention(store=store, days=settings.retention_days)

    async def warm_up(_: web.Application) -> None:
        retention.start()
        start_checkpointing = getattr(store, "start_checkpointing", None)
        if start_checkpointing is not None:
            start_checkpointing()
        warm = getattr(engine, "warm_up", None)
        if warm is not None:  # in the background: /health must answer at once
            app[WARM_UP] = asyncio.create_task(warm())

    app.on_startup.append(warm_up)

    async def close(_: web.Application) -> None:
        await retention.stop()
        await asyncio.to_thread(handler.tracer.close)  # what is queued is exported, for at most 5 s
        if WARM_UP in app:
            await app[WARM_UP]  # its worker thread cannot be cancelled; let it finish while peers are up
        await engine.close()
        await store.close()

    app.on_cleanup.append(close)
    return app


async def health(request: web.Request) -> web.Response:
    healthy, checks = await request.app[HEALTH].run()
    return web.json_response(
        {"status": "healthy" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503
    )
