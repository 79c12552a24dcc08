"""The aiohttp application behind `healthbot serve`: one factory, explicit dependencies.

Adapters mount their own routes on the app this returns; nothing here is a module-level singleton.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from aiohttp import web

from adapters.slack import mount_slack
from adapters.teams import mount_teams
from agent.base import Engine
from bot.access import gate_for
from bot.alerts.dispatch import AlertDispatcher
from bot.alerts.wiring import PULLER, alert_check, mount_alerts
from bot.deploy.wiring import mount_deploys
from bot.config import Settings
from bot.engines import build_engine
from bot.handler import ConversationHandler, HandlerOptions
from bot.identity.wiring import identities_for, mount_identities
from bot.ops.health import HealthChecks, cached
from bot.ops.housekeeping import Retention
from bot.inbound import client_gone, quiet_http_errors
from bot.ops.logs import log_request
from bot.ops.metrics import Metrics
from bot.store import Store, open_store_for
from bot.ops.tracing import Tracer

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
HANDLER = web.AppKey("handler", ConversationHandler)
HEALTH = web.AppKey("health", HealthChecks)
SLACK = web.AppKey("slack", object)
TEAMS = web.AppKey("teams", object)
WARM_UP = web.AppKey("warm_up", asyncio.Task)
ALERTS = web.AppKey("alerts", AlertDispatcher)

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings, *, store: Store | None = None, engine: Engine | None = None) -> web.Application:
    store = store if store is not None else open_store_for(settings)
    engine = engine if engine is not None else build_engine(settings)
    handler = ConversationHandler(store=store, engine=engine, options=HandlerOptions.from_settings(settings),
                                  tracer=Tracer(settings.mlflow_tracking_uri), access=gate_for(settings),
                                  identity=identities_for(settings, store))

    quiet_http_errors()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[client_gone])
    app[SETTINGS] = settings
    app[STORE] = store
    app[HANDLER] = handler
    app[HEALTH] = HealthChecks(store=store, engine=engine)
    app.router.add_get("/health", health)
    mount_identities(app, handler.identity, app[HEALTH])
    app[SLACK] = mount_slack(app, settings=settings, handler=handler)
    app[TEAMS] = mount_teams(app, settings=settings, handler=handler)
    app[ALERTS] = mount_alerts(app, settings=settings, handler=handler, store=store,
                               adapters=[a for a in (app[SLACK], app[TEAMS]) if a is not None])
    mount_deploys(app, settings=settings, handler=handler, store=store, dispatcher=app[ALERTS], health=app[HEALTH],
                  adapters=[a for a in (app[SLACK], app[TEAMS]) if a is not None])
    metrics = Metrics()
    handler.observers += [metrics.observe, log_request]
    metrics.watch_alerts(app[ALERTS])
    metrics.watch_tracer(handler.tracer)
    app.router.add_get("/metrics", metrics.handle)
    checks = app[HEALTH]
    if app[SLACK] is not None:
        checks.add("slack", cached(app[SLACK].health))  # type: ignore[attr-defined]
    checks.add("teams", cached(app[TEAMS].health, ttl_s=300))  # type: ignore[attr-defined]  # off / emulator: said, ok
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
