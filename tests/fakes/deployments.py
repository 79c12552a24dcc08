"""The deployment side of a fake workspace: a serving endpoint whose config moves over time, `PUT …/config`,
Unity Catalog model versions and aliases, Databricks Apps and MLflow runs — the shapes of
tests/fixtures/databricks (serving_endpoint_get_deployed / _update_in_progress, uc_model_version_get_response,
apps_get_running, mlflow_runs_get_response), for databricks-sdk's real client to be pointed at.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.serving import fixture
from tests.fakes.workspace import FakeWorkspace

MODEL = "main.health_monitor.orchestrator"
ENTITY_TEMPLATE = fixture("serving_endpoint_get_deployed.json")["config"]["served_entities"][0]


def served_entity(version: int | str, *, name: str | None = None, deployment: str = "DEPLOYMENT_READY",
                  message: str = "", **extra: Any) -> dict[str, Any]:
    entity = copy.deepcopy(ENTITY_TEMPLATE)
    entity.update(name=name or f"health_monitor_orchestrator-{version}", entity_version=str(version), **extra)
    entity["state"] = {"deployment": deployment, "deployment_state_message": message}
    return entity


def routes(*split: tuple[str, int]) -> dict[str, Any]:
    return {"routes": [{"served_entity_name": name, "traffic_percentage": pct} for name, pct in split]}


@dataclass
class FakeDeployWorkspace(FakeWorkspace):
    endpoint: dict[str, Any] = field(default_factory=lambda: fixture("serving_endpoint_get_deployed.json"))
    model_versions: dict[str, str] = field(default_factory=lambda: {str(v): "READY" for v in range(1, 10)})
    aliases: dict[str, int] = field(default_factory=lambda: {"production": 7})
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    mlflow_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    app_deployments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # app → deployments
    app_deploys: list[dict[str, Any]] = field(default_factory=list)  # POST …/deployments bodies
    invocations: list[dict[str, Any]] = field(default_factory=list)  # POST /api/invocations bodies (Agent Runtime)
    config_puts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.served_entity_name = "health_monitor_orchestrator-7"

    def build(self, app: web.Application) -> None:
        app.router.add_put("/api/2.0/serving-endpoints/{name}/config", self._put_config)
        app.router.add_get("/api/2.1/unity-catalog/models/{model}/versions/{version}", self._model_version)
        app.router.add_put("/api/2.1/unity-catalog/models/{model}/aliases/{alias}", self._set_alias)
        app.router.add_get("/api/2.1/unity-catalog/models/{model}/aliases/{alias}", self._get_alias)
        app.router.add_get("/api/2.0/apps/{name}", self._app)
        app.router.add_get("/api/2.0/apps/{name}/deployments", self._app_deployments)
        app.router.add_post("/api/2.0/apps/{name}/deployments", self._deploy_app)
        app.router.add_post("/api/invocations", self._invocation)  # an Agent Runtime app whose url is this fake
        app.router.add_get("/api/2.0/mlflow/runs/get", self._run)
        super().build(app)

    # -- moving the endpoint along, as Databricks would -----------------------------------------

    def begin_update(self, *entities: dict[str, Any], traffic: dict[str, Any] | None = None) -> None:
        """An update starts: a pending config and `IN_PROGRESS` (what `PUT …/config` does)."""
        current = int(self.endpoint["config"].get("config_version") or 0)
        self.endpoint["pending_config"] = {
            "config_version": current + 1, "start_time": int(time.time() * 1000), "served_entities": list(entities),
            "traffic_config": traffic or routes(*((e["name"], 100 // len(entities)) for e in entities))}
        self.endpoint["state"]["config_update"] = "IN_PROGRESS"

    def finish_update(self, outcome: str = "NOT_UPDATING", message: str = "") -> None:
        """The update ends: served (the pending config becomes the config), or failed / canceled. A failed
        update's pending entities keep their DEPLOYMENT_FAILED state and message here (UNVERIFIED: whether
        Databricks keeps `pending_config` after UPDATE_FAILED is not documented; the watcher also
        remembers the last pending entities it saw)."""
        pending = self.endpoint["pending_config"]
        if outcome == "NOT_UPDATING":
            del self.endpoint["pending_config"]
            for entity in pending["served_entities"]:
                entity["state"] = {"deployment": "DEPLOYMENT_READY", "deployment_state_message": ""}
            self.endpoint["config"] = {k: v for k, v in pending.items() if k != "start_time"}
        else:
            for entity in pending["served_entities"]:
                entity["state"] = {"deployment": "DEPLOYMENT_FAILED", "deployment_state_message": message}
        self.endpoint["state"]["config_update"] = outcome

    # -- routes -------------------------------------------------------------------------------

    async def _endpoint(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        if request.match_info["name"] != self.endpoint_name:
            return web.json_response(fixture("serving_error_404_resource_does_not_exist.json")["body"], status=404)
        return web.json_response({**self.endpoint, "name": self.endpoint_name})

    async def _put_config(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        body = await request.json()
        self.config_puts.append(body)
        if self.endpoint["state"].get("config_update") == "IN_PROGRESS":
            return web.json_response({"error_code": "RESOURCE_CONFLICT", "message": "Endpoint is currently being "
                                      "updated. Please wait for the update to complete."}, status=409)
        entities = [{**e, "state": {"deployment": "DEPLOYMENT_CREATING", "deployment_state_message": ""}}
                    for e in body.get("served_entities", [])]
        self.begin_update(*entities, traffic=body.get("traffic_config"))
        return web.json_response({**self.endpoint, "name": self.endpoint_name})

    async def _model_version(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        version = request.match_info["version"]
        status = self.model_versions.get(version)
        if request.match_info["model"] != MODEL or status is None:
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST",
                                      "message": f"Model Version {version} does not exist."}, status=404)
        info = fixture("uc_model_version_get_response.json")
        info.update(version=int(version), status=status)
        return web.json_response(info)

    async def _set_alias(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        body = await request.json()
        self.aliases[request.match_info["alias"]] = int(body["version_num"])
        return web.json_response({"alias_name": request.match_info["alias"], "version_num": int(body["version_num"])})

    async def _get_alias(self, request: web.Request) -> web.Response:
        version = self.aliases.get(request.match_info["alias"])
        if version is None:
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Alias not found"}, status=404)
        info = fixture("uc_model_version_get_response.json")
        info.update(version=version, aliases=[{"alias_name": request.match_info["alias"], "version_num": version}])
        return web.json_response(info)

    async def _app(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        app = self.apps.get(request.match_info["name"])
        if app is None:
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "App not found"}, status=404)
        return web.json_response(app)

    async def _app_deployments(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        return web.json_response({"app_deployments": self.app_deployments.get(request.match_info["name"], [])})

    async def _deploy_app(self, request: web.Request) -> web.Response:
        """A new deployment starts: the app's pending_deployment, IN_PROGRESS (apps.deploy)."""
        if (failure := self._scripted_error(request)) is not None:
            return failure
        body = await request.json()
        self.app_deploys.append(body)
        deployment = {**body, "deployment_id": f"01f0dep{len(self.app_deploys):025d}",
                      "status": {"state": "IN_PROGRESS", "message": "Deploying"}, "create_time": "2026-12-03T10:00:00Z"}
        self.apps[request.match_info["name"]]["pending_deployment"] = deployment
        return web.json_response(deployment)

    async def _invocation(self, request: web.Request) -> web.Response:
        """Agent Runtime's invocation API (agent_runtime_invocation_response.json), recorded in `invocations`."""
        if (failure := self._scripted_error(request)) is not None:
            return failure
        self.invocations.append(await request.json())
        return web.json_response(fixture("agent_runtime_invocation_response.json"))

    def finish_app_deploy(self, name: str) -> None:
        app = self.apps[name]
        deployment = app.pop("pending_deployment")
        deployment["status"] = {"state": "SUCCEEDED", "message": "App started successfully"}
        app["active_deployment"] = deployment
        self.app_deployments.setdefault(name, []).insert(0, deployment)

    async def _run(self, request: web.Request) -> web.Response:
        run = self.mlflow_runs.get(request.query.get("run_id", ""))
        if run is None:
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"}, status=404)
        return web.json_response(run)
