"""A serving endpoint's configuration as healthbot reads it: which served entities at which versions,
the traffic split, an update in progress — from `GET /api/2.0/serving-endpoints/{name}` (databricks-sdk
`ServingEndpointDetailed`: `config.served_entities[]`, `config.traffic_config.routes[]`,
`config.config_version`, `pending_config`, `state.ready` / `state.config_update`).

Pure functions over the JSON, so every reader (the serving client's version lookup, the rollout watcher,
the checklist, rollback) sees the same thing, and a field that is missing, of the wrong type or holds an
unknown state is shown as what it is, never a crash. A foundation or external model has no version:
its `version` is "".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.formats import INVOCATIONS_TASK


def version_label(version: str) -> str:
    """`v7` for a model version; a Databricks App deployment by its tail (its head is a timestamp that
    neighbouring deployments share)."""
    return f"v{version}" if version.isdigit() else f"deployment {version[-8:]}"


@dataclass(frozen=True, slots=True)
class ServedEntity:
    name: str  # the served entity's name, what `served-model-name` says answered
    model: str  # Unity Catalog model (`entity_name`), or the foundation / external model's name
    version: str  # `entity_version`; "" for a foundation or external model
    deployment: str = ""  # state.deployment: DEPLOYMENT_READY, DEPLOYMENT_CREATING, DEPLOYMENT_FAILED, …
    message: str = ""  # state.deployment_state_message
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def label(self) -> str:
        return version_label(self.version) if self.version else (self.model or self.name or "?")


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    version: str  # config_version ("" when absent)
    entities: tuple[ServedEntity, ...]
    traffic: tuple[tuple[str, int], ...]  # (served entity name, percentage), as routed

    def entity(self, name: str) -> ServedEntity | None:
        return next((e for e in self.entities if e.name == name), None)

    def split(self) -> str:
        """`v8` alone, or `v7 90 % / v8 10 %` when traffic is split."""
        live = [(name, pct) for name, pct in self.traffic if pct > 0]
        if len(live) <= 1:
            primary = self.primary
            return primary.label if primary is not None else "no served entities"
        return " / ".join(f"{self._label(name)} {pct} %" for name, pct in live)

    def _label(self, name: str) -> str:
        entity = self.entity(name)
        return entity.label if entity is not None else name

    @property
    def primary(self) -> ServedEntity | None:
        """The entity taking the most traffic (the first when routes say nothing)."""
        if self.traffic:
            name = max(self.traffic, key=lambda route: route[1])[0]
            found = self.entity(name)
            if found is not None:
                return found
        return self.entities[0] if self.entities else None


@dataclass(frozen=True, slots=True)
class EndpointView:
    name: str
    ready: str  # READY / NOT_READY
    config_update: str  # NOT_UPDATING, IN_PROGRESS, UPDATE_FAILED, UPDATE_CANCELED (or whatever else it says)
    task: str | None
    config: ConfigSnapshot
    pending: ConfigSnapshot | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def updating(self) -> bool:
        """An update runs: IN_PROGRESS, or a pending config whose update has not ended."""
        ended = self.config_update in ("NOT_UPDATING", "UPDATE_FAILED", "UPDATE_CANCELED")
        return self.config_update == "IN_PROGRESS" or (self.pending is not None and not ended)

    def versions(self) -> dict[str, str]:
        """Served entity name → version, for the entities serving now (the current config)."""
        return {e.name: e.version for e in self.config.entities if e.name}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def _entity(data: Any) -> ServedEntity | None:
    if not isinstance(data, Mapping):
        return None
    model = _text(data.get("entity_name")) or _text(data.get("model_name"))
    for kind in ("foundation_model", "external_model"):
        spec = data.get(kind)
        if isinstance(spec, Mapping) and not model:
            model = _text(spec.get("name")) or kind.replace("_", " ")
    state = _mapping(data.get("state"))
    return ServedEntity(
        name=_text(data.get("name")), model=model,
        version=_text(data.get("entity_version")) or _text(data.get("model_version")),
        deployment=_text(state.get("deployment")), message=_text(state.get("deployment_state_message")),
        raw=data,
    )


def _snapshot(data: Any) -> ConfigSnapshot:
    data = data if isinstance(data, Mapping) else {}
    listed = data.get("served_entities") if isinstance(data.get("served_entities"), list) else data.get("served_models")
    entities = tuple(e for e in (_entity(item) for item in (listed if isinstance(listed, list) else [])) if e)
    routes = _mapping(data.get("traffic_config")).get("routes")
    routes = routes if isinstance(routes, list) else []
    traffic = []
    for route in routes:
        if not isinstance(route, Mapping):
            continue
        name = _text(route.get("served_entity_name")) or _text(route.get("served_model_name"))
        try:
            pct = int(route.get("traffic_percentage") or 0)
        except (TypeError, ValueError, OverflowError):  # a string, NaN, infinity
            pct = 0
        if name:
            traffic.append((name, pct))
    return ConfigSnapshot(version=_text(data.get("config_version")), entities=entities, traffic=tuple(traffic))


def read_endpoint(data: Any) -> EndpointView:
    """The endpoint as `GET /api/2.0/serving-endpoints/{name}` describes it (any shape: never raises)."""
    data = data if isinstance(data, Mapping) else {}
    state = _mapping(data.get("state"))
    pending = data.get("pending_config")
    return EndpointView(
        name=_text(data.get("name")), ready=_text(state.get("ready")), config_update=_text(state.get("config_update")),
        task=_text(data.get("task")) or None, config=_snapshot(data.get("config")),
        pending=_snapshot(pending) if isinstance(pending, Mapping) else None, raw=data,
    )


# -- an agent served from a Databricks App (HEALTHBOT_ENDPOINT_NAME=apps/<name>) -------------------

APP_PREFIX = "apps/"
AGENT_RUNTIME_PREFIX = "agent-bricks-"  # Agent Runtime: `agentbricks deploy <name>` makes the app agent-bricks-<name>
APP_UPDATE = {"IN_PROGRESS": "IN_PROGRESS", "FAILED": "UPDATE_FAILED", "CANCELLED": "UPDATE_CANCELED"}


def app_name(endpoint_name: str) -> str | None:
    """`apps/<name>` (databricks-openai's spelling for an agent on a Databricks App) → the app's name."""
    if not endpoint_name.startswith(APP_PREFIX):
        return None
    return endpoint_name[len(APP_PREFIX):] or None


def _deployment(app: str, data: Any) -> ServedEntity | None:
    if not isinstance(data, Mapping) or not _text(data.get("deployment_id")):
        return None
    status = _mapping(data.get("status"))
    return ServedEntity(name=app, model=f"app {app}", version=_text(data.get("deployment_id")),
                        deployment=_text(status.get("state")), message=_text(status.get("message")), raw=data)


def read_app(data: Any) -> EndpointView:
    """A Databricks App (`apps.get`) as an endpoint: its active deployment is what serves, a pending
    deployment is an update (IN_PROGRESS, FAILED → UPDATE_FAILED, CANCELLED → UPDATE_CANCELED). An agent
    on MLflow's agent server answers the Responses API (task `agent/v1/responses`); one on Agent Runtime
    (an app named agent-bricks-<name>, DurableAgentServer) answers the invocation API instead."""
    data = data if isinstance(data, Mapping) else {}
    name = _text(data.get("name"))
    running = _text(_mapping(data.get("app_status")).get("state")) == "RUNNING"
    active, pending = _deployment(name, data.get("active_deployment")), _deployment(name, data.get("pending_deployment"))
    update = APP_UPDATE.get(pending.deployment, "NOT_UPDATING") if pending is not None else "NOT_UPDATING"

    def snapshot(entity: ServedEntity | None) -> ConfigSnapshot:
        return ConfigSnapshot(version=entity.version if entity else "", entities=(entity,) if entity else (),
                              traffic=((entity.name, 100),) if entity else ())

    task = INVOCATIONS_TASK if name.startswith(AGENT_RUNTIME_PREFIX) else "agent/v1/responses"
    return EndpointView(name=f"{APP_PREFIX}{name}", ready="READY" if running else "NOT_READY", config_update=update,
                        task=task, config=snapshot(active),
                        pending=snapshot(pending) if pending is not None else None, raw=data)
