"""Put the alert path on the server: the webhook route, the outbox worker over the channels' posters,
and the pollers that feed it (pulled alerts, reminders, the scheduled digest), started and stopped with it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.ports import Channel, ThreadPoster
from bot.alerts.dispatch import AlertDispatcher
from bot.alerts.routes import load_router
from bot.alerts.webhook import AlertWebhook
from bot.core import Core
from bot.ops.health import Check
from bot.models import Platform
from bot.ops.selfmon import SelfMonitor, Thresholds

PULLER = web.AppKey("alert_puller", object)
REMINDERS = web.AppKey("alert_reminders", object)
DIGEST = web.AppKey("digest", object)


def mount_alerts(app: web.Application, core: Core, channels: list[Channel]) -> AlertDispatcher:
    """The core's outbox over the channels' posters, and what feeds it; started and stopped with the app."""
    settings, handler, store = core.settings, core.handler, core.store
    sinks: dict[Platform, ThreadPoster] = {channel.platform: channel.poster() for channel in channels}
    enrich, workspace = None, None
    if settings.workspace_configured:
        from bot.alerts.enrich import JobRunEnricher
        from bot.workspace import Workspace, config_factory

        workspace = Workspace(config_factory(settings))
        enrich = JobRunEnricher(workspace)
    dispatcher = AlertDispatcher(
        alerts=store.alerts, handler=handler, router=load_router(settings.alert_routes, settings.alert_targets),
        sinks=sinks, enrich=enrich, pace_s=settings.alert_pace_s, storm_threshold=settings.alert_storm_threshold,
    )
    core.outbox = dispatcher
    webhook = AlertWebhook(dispatcher=dispatcher, token=settings.alert_token.get_secret_value() if settings.alert_token else None,
                           max_body_bytes=settings.alert_max_body_bytes, workspace_host=settings.databricks_host)
    app.router.add_post("/alerts/databricks", webhook.handle)

    monitor = SelfMonitor(store=store, dispatcher=dispatcher,
                          thresholds=Thresholds(error_rate=settings.selfmon_error_rate, p95_latency_ms=settings.selfmon_p95_ms))
    puller = None
    if settings.alert_pull and workspace is not None:
        from bot.alerts.pull import AlertPuller

        puller = app[PULLER] = AlertPuller(dispatcher=dispatcher, workspace=workspace, sources=settings.alert_pull,
                                           interval_s=settings.alert_pull_interval_s, job_globs=settings.alert_pull_jobs)

    reminders = None
    if settings.alert_remind_minutes > 0:
        from bot.alerts.reminders import AlertReminders

        reminders = app[REMINDERS] = AlertReminders(dispatcher=dispatcher,
                                                    remind_after_s=settings.alert_remind_minutes * 60)

    digest = None
    if settings.digest:
        from bot.alerts.digest_schedule import DigestScheduler, Schedule

        digest = app[DIGEST] = DigestScheduler(dispatcher=dispatcher, store=store, engine=handler.engine,
                                               schedule=Schedule.parse(settings.digest, settings.digest_tz),
                                               targets=[str(t) for t in settings.digest_targets])

    async def start(_: web.Application) -> None:
        dispatcher.start()  # resumes deliveries left pending by the last run
        if digest is not None:
            digest.start()
        monitor.start()
        if puller is not None:
            puller.start()
        if reminders is not None:
            reminders.start()

    async def stop(_: web.Application) -> None:
        if digest is not None:
            await digest.stop()
        if reminders is not None:
            await reminders.stop()
        if puller is not None:
            await puller.stop()
        await monitor.stop()
        await dispatcher.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return dispatcher


FAILURE_WINDOW_S = 3600.0


def alert_check(dispatcher: AlertDispatcher) -> Callable[[], Awaitable[Check]]:
    """Degraded while a delivery failed for good in the last hour; the backlog is reported."""
    async def check() -> Check:
        counts = await dispatcher.alerts.counts()
        recent = await dispatcher.alerts.recent_failures(1, since=time.time() - FAILURE_WINDOW_S)
        backlog = f"{counts['pending']} pending, {counts['delivered']} delivered, {counts['failed']} failed"
        if recent:
            target, reason = recent[0]
            return Check(False, f"alert delivery to {target} failed: {reason} ({backlog})")
        return Check(True, backlog)

    return check
