"""Rollback of an agent served from a Databricks App (HEALTHBOT_ENDPOINT_NAME=apps/<name>): there is no
model version to pin, so rolling back deploys an earlier successful deployment's code again
(`apps.deploy`). The versions are deployment ids; the same two steps, one person, guard the action.

The earlier code must still exist: a deployment's snapshot (`deployment_artifacts.source_code_path`),
or its Git source pinned to the commit it resolved to. A deployment that has neither and was made from
the folder the app still deploys from cannot be returned to — Agent Runtime (`agentbricks deploy`) syncs
every release into the same workspace folder, so deploying that folder again would run today's code.
"""

from __future__ import annotations

from typing import Any

from agent.endpoint_config import EndpointView
from agent.endpoint_config import version_label as label
from bot.deploy.workspace_calls import DeployCalls, code_of

SUCCEEDED = "SUCCEEDED"


def _lost_code(found: dict[str, Any], active: dict[str, Any]) -> bool:
    """The deployment's code is gone: no snapshot, no pinned commit, and its folder is the active one's."""
    code = code_of(found)
    return "source_code_path" in code and code["source_code_path"] == active.get("source_code_path") \
        and not (found.get("deployment_artifacts") or {}).get("source_code_path")


def _state(deployment: dict[str, Any]) -> str:
    return str((deployment.get("status") or {}).get("state") or "")


async def app_target(calls: DeployCalls, view: EndpointView, version: str | None) -> str:
    """The deployment id to go back to (default: the newest successful one before the active), or an
    error line starting with "!"."""
    active = view.config.primary
    current = active.version if active is not None else ""
    deployments = await calls.app_deployments()
    if version:
        ids = [str(d.get("deployment_id") or "") for d in deployments]
        matching = [d for d, i in zip(deployments, ids) if i and (i.startswith(version) or i.endswith(version))]
        if len(matching) != 1:
            return f"!The app {calls.app} has {'no' if not matching else 'more than one'} deployment {version[:40]}."
        found = matching[0]
        if _state(found) != SUCCEEDED:
            return f"!{label(str(found['deployment_id'])).capitalize()} of the app {calls.app} is {_state(found) or 'in no known state'}, not SUCCEEDED."
        target = str(found["deployment_id"])
    else:
        earlier = [d for d in deployments if _state(d) == SUCCEEDED and d.get("deployment_id") != current]
        if not earlier:
            return f"!The app {calls.app} has no earlier successful deployment to go back to."
        target = str(earlier[0]["deployment_id"])
    if target == current:
        return f"!The app {calls.app} already runs {label(target)}."
    found = next(d for d in deployments if str(d.get("deployment_id") or "") == target)
    if _lost_code(found, view.raw.get("active_deployment") or {}):
        return (f"!{label(target).capitalize()} of the app {calls.app} was deployed from {found.get('source_code_path')}, "
                "the folder it deploys from today, and Databricks kept no snapshot of its code: deploying it again "
                "would run the current code. Redeploy that release's code yourself (e.g. `agentbricks deploy` from "
                "its commit).")
    return target


async def redeploy(calls: DeployCalls, target: str) -> str:
    """Deploy the target's code again; "" when sent, else why not."""
    found = next((d for d in await calls.app_deployments() if d.get("deployment_id") == target), None)
    if found is None:
        return f"{label(target)} is no longer listed for the app {calls.app}"
    await calls.redeploy(found)
    return ""


def landed(view: EndpointView, from_version: str) -> bool:
    """An app's rollback is a new deployment: done when one other than the old is active and succeeded."""
    active = view.config.primary
    return active is not None and active.version != from_version and active.deployment == SUCCEEDED
