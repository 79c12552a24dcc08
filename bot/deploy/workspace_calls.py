"""The workspace calls the deployment side makes, through databricks-sdk's real client (bot.workspace):
the endpoint and its config update, Unity Catalog model versions and aliases, Databricks Apps, MLflow
runs. Each returns plain data or raises `DeployError` with one line that names the permission to grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.endpoint_config import EndpointView, ServedEntity, app_name, read_app, read_endpoint
from bot.workspace import Workspace, describe_error


class DeployError(Exception):
    """A workspace call failed; `status` is the HTTP status when the SDK said (403, 404, 409, …)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _status(exc: BaseException) -> int | None:
    detail = describe_error(exc)
    head = detail.split(" ", 1)[0]
    if head.isdigit():
        return int(head)
    code = str(getattr(exc, "error_code", "") or "")
    return {"RESOURCE_CONFLICT": 409, "INVALID_PARAMETER_VALUE": 400, "BAD_REQUEST": 400}.get(code)


def failed(what: str, exc: BaseException, *, permission: str = "") -> DeployError:
    status = _status(exc)
    hint = f" — {permission}" if permission and status in (401, 403) else ""
    return DeployError(f"{what} failed: {describe_error(exc)}{hint}", status)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    version: str
    status: str  # READY, PENDING_REGISTRATION, FAILED_REGISTRATION, …
    run_id: str


class DeployCalls:
    def __init__(self, workspace: Workspace, endpoint_name: str) -> None:
        self.workspace = workspace
        self.endpoint_name = endpoint_name
        self.app = app_name(endpoint_name)  # an agent served from a Databricks App

    async def endpoint(self) -> EndpointView:
        if self.app:
            return read_app(await self.app_info(self.app))
        name = self.endpoint_name
        try:
            data = await self.workspace.call(lambda c: c.serving_endpoints.get(name).as_dict())
        except Exception as exc:
            raise failed(f"reading the serving endpoint {name}", exc,
                         permission=f"grant healthbot's principal CAN_VIEW (or CAN_QUERY) on {name}") from None
        return read_endpoint(data)

    async def update_config(self, view: EndpointView, entity: ServedEntity, version: str) -> None:
        """The one `PUT …/config`: the current served entity copied with only `entity_version` changed,
        all traffic to it, and the legacy inference-table config kept. The PUT replaces the entity
        list, so anything left out (environment variables, workload size, scale to zero) would be lost."""
        from databricks.sdk.service.serving import AutoCaptureConfigInput, ServedEntityInput, TrafficConfig

        spec = rollback_entity(entity, version)
        capture = (view.raw.get("config") or {}).get("auto_capture_config")
        kwargs: dict[str, Any] = {
            "served_entities": [ServedEntityInput.from_dict(spec)],
            "traffic_config": TrafficConfig.from_dict(
                {"routes": [{"served_entity_name": spec["name"], "traffic_percentage": 100}]}),
        }
        if isinstance(capture, dict):
            kwargs["auto_capture_config"] = AutoCaptureConfigInput.from_dict(
                {k: v for k, v in capture.items() if k in ("catalog_name", "schema_name", "table_name_prefix", "enabled")})
        name = self.endpoint_name
        try:
            await self.workspace.call(lambda c: c.serving_endpoints.update_config(name, **kwargs))
        except Exception as exc:
            raise failed(f"updating {name}", exc,
                         permission=f"healthbot's principal needs CAN_MANAGE on the serving endpoint {name}") from None

    async def model_version(self, model: str, version: str) -> ModelVersion | None:
        """None when the version does not exist."""
        try:
            info = await self.workspace.call(lambda c: c.model_versions.get(model, int(version)).as_dict())
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise failed(f"reading {model} version {version}", exc,
                         permission=f"grant healthbot's principal EXECUTE (or BROWSE) on the model {model}") from None
        return ModelVersion(str(info.get("version", version)), str(info.get("status") or ""), str(info.get("run_id") or ""))

    async def alias_version(self, model: str, alias: str) -> str | None:
        try:
            info = await self.workspace.call(lambda c: c.model_versions.get_by_alias(model, alias).as_dict())
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise failed(f"reading the alias @{alias} of {model}", exc,
                         permission=f"grant healthbot's principal EXECUTE on the model {model}") from None
        return str(info.get("version") or "") or None

    async def set_alias(self, model: str, alias: str, version: str) -> None:
        try:
            await self.workspace.call(lambda c: c.registered_models.set_alias(model, alias, int(version)))
        except Exception as exc:
            raise failed(f"moving the alias @{alias} of {model}", exc,
                         permission=f"moving an alias needs ownership of the model {model} (or MANAGE on it)") from None

    async def run_metrics(self, run_id: str) -> dict[str, float]:
        try:
            run = await self.workspace.call(lambda c: c.experiments.get_run(run_id).as_dict())
        except Exception as exc:
            raise failed(f"reading the MLflow run {run_id}", exc,
                         permission="grant healthbot's principal CAN_READ on the model's experiment") from None
        metrics = ((run.get("run") or {}).get("data") or {}).get("metrics") or []
        return {str(m["key"]): float(m["value"]) for m in metrics if isinstance(m, dict) and "key" in m and "value" in m}

    async def app_deployments(self) -> list[dict[str, Any]]:
        """The app's deployments, newest first."""
        name = self.app or ""
        try:
            found = await self.workspace.call(lambda c: [d.as_dict() for d in c.apps.list_deployments(name)])
        except Exception as exc:
            raise failed(f"listing the deployments of the app {name}", exc,
                         permission=f"grant healthbot's principal CAN_MANAGE on the app {name}") from None
        return sorted(found, key=lambda d: str(d.get("create_time") or ""), reverse=True)

    async def redeploy(self, deployment: dict[str, Any]) -> None:
        """Deploy an earlier deployment's code again (code_of decides from what),
        with its own command and environment variables when it had them, in the same mode."""
        from databricks.sdk.service.apps import AppDeployment

        name = self.app or ""
        body = {**code_of(deployment), **{k: deployment[k] for k in ("mode", "command", "env_vars") if deployment.get(k)}}
        try:
            await self.workspace.call(lambda c: c.apps.deploy(name, AppDeployment.from_dict(body)))
        except Exception as exc:
            raise failed(f"redeploying the app {name}", exc,
                         permission=f"healthbot's principal needs CAN_MANAGE on the app {name}") from None

    async def app_info(self, name: str) -> dict[str, Any]:
        try:
            return dict(await self.workspace.call(lambda c: c.apps.get(name).as_dict()))
        except Exception as exc:
            raise failed(f"reading the app {name}", exc, permission=f"grant healthbot's principal CAN_USE on the app {name}") from None

    async def sql_alerts(self) -> list[dict[str, Any]]:
        try:
            return await self.workspace.call(lambda c: [a.as_dict() for a in c.alerts_v2.list_alerts(page_size=100)])
        except Exception as exc:
            raise failed("listing SQL alerts", exc, permission="grant healthbot's principal CAN_VIEW on the alerts") from None


OUTPUT_ONLY = frozenset({"state", "creator", "creation_timestamp"})


def rollback_entity(entity: ServedEntity, version: str) -> dict[str, Any]:
    """The served entity as it is, minus what only the API writes, with `entity_version` changed."""
    spec = {k: v for k, v in entity.raw.items() if k not in OUTPUT_ONLY}
    spec["entity_version"] = version
    return spec


def code_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """What `apps.deploy` needs to run this deployment's code again: its snapshot, else its Git source at
    the commit it resolved to, else the folder it was deployed from."""
    snapshot = (deployment.get("deployment_artifacts") or {}).get("source_code_path")
    if snapshot:
        return {"source_code_path": snapshot}
    git = deployment.get("git_source") or {}
    commit = git.get("resolved_commit") or git.get("commit")
    if git and commit:
        return {"git_source": {**{k: v for k, v in git.items() if k not in ("branch", "tag", "resolved_commit")},
                               "commit": commit}}
    return {"source_code_path": deployment.get("source_code_path")}
