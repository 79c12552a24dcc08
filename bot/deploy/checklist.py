"""`healthbot checklist`: the Health Monitor's deployment checklist, every item a machine can check.

One line per item — `✓`, `✗ <reason>` or `– <why not checked>` — with what was looked at and, on a
failure, what to do; exit 1 when an item fails. `doctor` checks healthbot's own configuration; this
checks the Health Monitor's deployment (endpoint, version, inference tables, alerts, app, evaluation).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.base import AgentRequest, ChatMessage, Engine
from agent.endpoint_config import EndpointView
from agent.errors import EngineError
from bot.deploy.workspace_calls import DeployCalls, DeployError

PASS, FAIL, SKIP = "pass", "fail", "skip"
MARKS = {PASS: "✓", FAIL: "✗", SKIP: "–"}
ANSWER_WITHIN_S = 10.0
ALERT_NAMES = ("High Error Rate", "High Latency")  # the Health Monitor's two alert rules
PRODUCTION_ALIAS = "production"
ITEMS = ("endpoint_ready", "endpoint_answers", "served_version", "inference_tables", "alerts", "app", "evaluation",
         "health")


@dataclass(frozen=True, slots=True)
class Item:
    status: str
    detail: str

    def line(self, key: str) -> str:
        return f"{MARKS[self.status]} {key}: {self.detail}"


class Checklist:
    def __init__(self, *, calls: DeployCalls, engine: Engine, thresholds: dict[str, float], app_name: str | None,
                 health: Callable[[], Awaitable[tuple[bool, dict[str, dict[str, object]]]]] | None) -> None:
        self.calls, self.engine, self.thresholds, self.app_name, self.health = calls, engine, thresholds, app_name, health

    async def run(self) -> dict[str, Item]:
        try:
            view: EndpointView | None = await self.calls.endpoint()
            unread = ""
        except DeployError as exc:
            view, unread = None, str(exc)
        checks: dict[str, Awaitable[Item]] = {
            "endpoint_ready": self._ready(view, unread), "endpoint_answers": self._answers(),
            "served_version": self._served_version(view), "inference_tables": self._inference_tables(view),
            "alerts": self._alerts(), "app": self._app(), "evaluation": self._evaluation(view),
            "health": self._health(),
        }
        results = await asyncio.gather(*(_safe(check) for check in checks.values()))
        return dict(zip(checks, results))

    async def _ready(self, view: EndpointView | None, unread: str) -> Item:
        if view is None:
            return Item(FAIL, unread)
        if view.ready != "READY":
            return Item(FAIL, f"{self.calls.endpoint_name} is {view.ready or 'in no known state'} — wait for it, or "
                              "open the endpoint's events in the Serving UI")
        if view.updating:
            return Item(FAIL, f"{self.calls.endpoint_name} is READY but an update is in progress "
                              f"(config {view.pending.version if view.pending else '?'}) — check again when it ends")
        return Item(PASS, f"{self.calls.endpoint_name} READY, serving {view.config.split()}, no update in progress")

    async def _answers(self) -> Item:
        request = AgentRequest([ChatMessage("user", "Platform health overview")], user_id="healthbot-checklist",
                               session_id=f"checklist-{int(time.time())}")
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(self.engine.answer(request), ANSWER_WITHIN_S)
        except asyncio.TimeoutError:
            return Item(FAIL, f"no answer to a test question within {ANSWER_WITHIN_S:g} s — look at the endpoint's "
                              "logs and latency before announcing the release")
        except EngineError as exc:
            return Item(FAIL, f"a test question failed: {exc.kind.value} {exc.detail}"[:300])
        took = time.perf_counter() - started
        version = f" by v{answer.served_version}" if answer.served_version else ""
        return Item(PASS, f"a test question answered in {took:.1f} s{version} ({len(answer.content)} characters)")

    async def _served_version(self, view: EndpointView | None) -> Item:
        if self.calls.app:
            return Item(SKIP, "an agent on a Databricks App has deployments, not model versions with aliases")
        entity = view.config.primary if view is not None else None
        if entity is None or not entity.version:
            return Item(SKIP, "no versioned served entity (a foundation or external model, or the endpoint unread)")
        alias = await self.calls.alias_version(entity.model, PRODUCTION_ALIAS)
        if alias is None:
            return Item(SKIP, f"{entity.model} has no @{PRODUCTION_ALIAS} alias to compare with")
        if alias == entity.version:
            return Item(PASS, f"serving v{entity.version} = @{PRODUCTION_ALIAS} of {entity.model}")
        return Item(FAIL, f"drift: serving v{entity.version} but @{PRODUCTION_ALIAS} of {entity.model} is v{alias} — "
                          "moving an alias changes nothing served: update the endpoint's config, or move the alias")

    async def _inference_tables(self, view: EndpointView | None) -> Item:
        if self.calls.app:
            return Item(SKIP, "an agent on a Databricks App has no inference table (its traces go to MLflow)")
        if view is None:
            return Item(SKIP, "the endpoint could not be read")
        return inference_table_item(view.raw)

    async def _alerts(self) -> Item:
        alerts = await self.calls.sql_alerts()
        problems, found = [], []
        for wanted in ALERT_NAMES:
            matching = [a for a in alerts if wanted.lower() in str(a.get("display_name") or "").lower()]
            if not matching:
                problems.append(f"no SQL alert named like “{wanted}”")
                continue
            alert = matching[0]
            name = alert.get("display_name")
            evaluation = alert.get("evaluation") or {}
            if str((alert.get("schedule") or {}).get("pause_status") or "") == "PAUSED":
                problems.append(f"“{name}” is paused")
            elif not evaluation.get("last_evaluated_at") and evaluation.get("state") in (None, "", "UNKNOWN"):
                problems.append(f"“{name}” has never been evaluated")
            elif not ((evaluation.get("notification") or {}).get("subscriptions")):
                problems.append(f"“{name}” notifies nobody (add a destination or a user)")
            else:
                found.append(f"“{name}” ({evaluation.get('state') or 'evaluated'})")
        if problems:
            return Item(FAIL, "; ".join(problems) + " — the bundle's alerts (databricks.yml) create both")
        return Item(PASS, ", ".join(found))

    async def _app(self) -> Item:
        if not self.app_name:
            return Item(SKIP, "DATABRICKS_APP_NAME is not set (healthbot is not running as a Databricks App)")
        app = await self.calls.app_info(self.app_name)
        state = str((app.get("app_status") or {}).get("state") or "")
        compute = str((app.get("compute_status") or {}).get("state") or "")
        if state == "RUNNING" and compute in ("ACTIVE", ""):
            return Item(PASS, f"app {self.app_name} RUNNING")
        message = (app.get("app_status") or {}).get("message") or (app.get("compute_status") or {}).get("message") or ""
        return Item(FAIL, f"app {self.app_name} is {state or '?'} (compute {compute or '?'}) {message}".strip()
                    + " — see the app's logs, then `databricks apps start`")

    async def _evaluation(self, view: EndpointView | None) -> Item:
        if not self.thresholds:
            return Item(SKIP, "HEALTHBOT_EVAL_THRESHOLDS is not set")
        if self.calls.app:
            return Item(SKIP, "an agent on a Databricks App has no model version whose run to read")
        entity = view.config.primary if view is not None else None
        if entity is None or not entity.version:
            return Item(SKIP, "no versioned served entity to evaluate")
        version = await self.calls.model_version(entity.model, entity.version)
        if version is None or not version.run_id:
            return Item(FAIL, f"v{entity.version} of {entity.model} has no MLflow run to read metrics from")
        metrics = await self.calls.run_metrics(version.run_id)
        missing = [name for name in self.thresholds if name not in metrics]
        low = [f"{name} {metrics[name]:g} < {minimum:g}" for name, minimum in self.thresholds.items()
               if name in metrics and metrics[name] < minimum]
        if missing or low:
            parts = low + [f"{name} not logged" for name in missing]
            return Item(FAIL, f"v{entity.version}: " + ", ".join(parts) + " — evaluate again, or roll back")
        return Item(PASS, f"v{entity.version}: " + ", ".join(f"{n} {metrics[n]:g} ≥ {m:g}" for n, m in self.thresholds.items()))

    async def _health(self) -> Item:
        if self.health is None:
            return Item(SKIP, "healthbot's own checks are not available here")
        healthy, checks = await self.health()
        bad = [f"{name}: {check.get('detail')}" for name, check in checks.items() if not check.get("ok")]
        return Item(PASS, f"{len(checks)} checks ok") if healthy else Item(FAIL, "; ".join(bad))


async def _safe(check: Awaitable[Item]) -> Item:
    try:
        return await check
    except DeployError as exc:
        return Item(FAIL, str(exc))
    except Exception as exc:  # one broken item never hides the others
        return Item(FAIL, f"could not be checked: {type(exc).__name__}: {str(exc)[:160]}")


def render(items: dict[str, Item]) -> str:
    return "\n".join(items[key].line(key) for key in ITEMS if key in items)


def to_json(items: dict[str, Item]) -> str:
    return json.dumps({"items": {key: {"status": item.status, "detail": item.detail} for key, item in items.items()}},
                      indent=2, ensure_ascii=False)


def exit_code(items: dict[str, Item]) -> int:
    return 1 if any(item.status == FAIL for item in items.values()) else 0


def inference_table_item(endpoint: Mapping[str, Any]) -> Item:
    """Which inference table the endpoint logs to, newest kind first: Unity Gateway's
    (`telemetry_config.inference_table_config`: a table name and a sampling fraction), AI Gateway
    (legacy)'s (`ai_gateway.inference_table_config.enabled`), or the older `config.auto_capture_config`."""
    unity = (endpoint.get("telemetry_config") or {}).get("inference_table_config") or {}
    if isinstance(unity, dict) and unity.get("name") and (unity.get("sampling_fraction") is None
                                                           or float(unity["sampling_fraction"]) > 0):
        sampled = f", {float(unity['sampling_fraction']):.0%} of requests" if unity.get("sampling_fraction") is not None else ""
        return Item(PASS, f"Unity Gateway inference table {unity['name']}{sampled}")
    gateway = (endpoint.get("ai_gateway") or {}).get("inference_table_config") or {}
    legacy = (endpoint.get("config") or {}).get("auto_capture_config") or {}
    for name, table in (("AI Gateway (legacy) inference table", gateway), ("legacy inference table", legacy)):
        if isinstance(table, dict) and table.get("enabled"):
            where = ".".join(str(table.get(k)) for k in ("catalog_name", "schema_name", "table_name_prefix")
                             if table.get(k))
            return Item(PASS, f"{name} on ({where})")
    return Item(FAIL, "no inference table: turn on Unity Gateway inference tables (telemetry) for the endpoint, so "
                      "the monitoring queries and alerts have data")
