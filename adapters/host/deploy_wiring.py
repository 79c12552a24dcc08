"""Put the deployment side on the server (with a workspace): the rollout watcher, rollback and the
checklist for the adapters, a `/health` check, and the report of rollbacks a restart interrupted."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from bot.alerts.dispatch import AlertDispatcher
from bot.core import Core
from bot.deploy.checklist import Checklist
from bot.deploy.thresholds import load_thresholds
from bot.deploy.rollback import DeployActions
from bot.deploy.watcher import DeployWatcher
from bot.deploy.workspace_calls import DeployCalls
from bot.targets import parse_target

log = logging.getLogger(__name__)

WATCHER = web.AppKey("deploy_watcher", DeployWatcher)
ACTIONS = web.AppKey("deploy_actions", DeployActions)


def mount_deploys(app: web.Application, core: Core) -> None:
    settings, handler, store, health, dispatcher = core.settings, core.handler, core.store, core.health, core.outbox
    assert dispatcher is not None  # alerts are mounted first: rollout threads go through the outbox
    if not settings.use_serving:
        return  # the demo engine has no versions to watch or roll back
    from bot.workspace import Workspace, config_factory

    calls = DeployCalls(Workspace(config_factory(settings)), settings.endpoint_name)
    checklist = Checklist(calls=calls, engine=handler.engine, thresholds=load_thresholds(settings.eval_thresholds),
                          app_name=settings.app_name, health=health.run)
    actions = app[ACTIONS] = DeployActions(calls=calls, store=store, gate=handler.access, alias=settings.rollback_alias,
                                           checklist=checklist)
    core.deploys = actions
    watcher = None
    if settings.deploy_targets:
        watcher = app[WATCHER] = DeployWatcher(calls=calls, dispatcher=dispatcher, store=store,
                                               targets=settings.deploy_targets, interval_s=settings.deploy_poll_s,
                                               engine=handler.engine)
        health.add("deployments", watcher.check)

    reporting: list[asyncio.Task[None]] = []

    async def report_interrupted() -> None:
        try:
            for record, line in await actions.interrupted():
                await _report(dispatcher, record.place, line)
        except Exception as exc:  # the store is not reachable yet: the next start reports them
            log.warning("could not look for interrupted rollbacks: %s: %s", type(exc).__name__, str(exc)[:200])

    async def start(_: web.Application) -> None:
        if watcher is not None:
            watcher.start()
        reporting.append(asyncio.create_task(report_interrupted()))  # off the start-up path

    async def stop(_: web.Application) -> None:
        if watcher is not None:
            await watcher.stop()
        for task in reporting:
            task.cancel()
        await actions.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)


async def _report(dispatcher: AlertDispatcher, place_json: str, line: str) -> None:
    """A line in the rollback's thread (`place` is the alert-sink target and thread reference)."""
    try:
        place = json.loads(place_json)
        target = parse_target(str(place["target"]))
        sink = dispatcher.sinks[target.platform]
        await sink.reply(target.channel, place["ref"], line)
    except Exception as exc:  # the thread is gone, the platform is off: the log keeps it
        log.warning("%s (could not be posted in its thread: %s)", line, type(exc).__name__)
