"""The platform-neutral half of healthbot, built once: settings, store, answer engine, the conversation
handler with its access gate and identities, health checks, and — once the server wires them — the
outbox for proactive posts and the deployment actions.

`build_core` is what `healthbot serve` (adapters/host/server.py) and the terminal (`ask`, `chat`) both
start from, so every surface answers through the same gate and identity rules. Channels (Slack, Teams)
receive the core in their constructor and read `outbox` / `deploys` from it when they need them: nothing
is wired into an adapter by assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.base import Engine
from bot.access import gate_for
from bot.config import Settings
from bot.engines import build_engine
from bot.handler import ConversationHandler, HandlerOptions
from bot.identity.wiring import identities_for
from bot.identity.service import Identities
from bot.ops.health import HealthChecks
from bot.ops.tracing import Tracer
from bot.store import Store, open_store_for

if TYPE_CHECKING:
    from bot.alerts.dispatch import AlertDispatcher
    from bot.deploy.rollback import DeployActions


@dataclass
class Core:
    settings: Settings
    store: Store
    engine: Engine
    handler: ConversationHandler
    health: HealthChecks
    identities: Identities | None
    outbox: AlertDispatcher | None = None  # every proactive post (alerts, rollouts, digests, reminders, late answers)
    deploys: DeployActions | None = None  # rollback and the checklist, with a workspace


def build_core(settings: Settings, *, store: Store | None = None, engine: Engine | None = None,
               one_shot: bool = False) -> Core:
    """`one_shot`: a command that answers once and exits (`healthbot ask`): its trace is exported in
    this process before it exits, not by a background exporter it would have to wait for."""
    store = store if store is not None else open_store_for(settings)
    engine = engine if engine is not None else build_engine(settings)
    identities = identities_for(settings, store)
    handler = ConversationHandler(store=store, engine=engine, options=HandlerOptions.from_settings(settings),
                                  tracer=Tracer(settings.mlflow_tracking_uri, in_process=one_shot),
                                  access=gate_for(settings),
                                  identity=identities)
    return Core(settings=settings, store=store, engine=engine, handler=handler,
                health=HealthChecks(store=store, engine=engine), identities=identities)
