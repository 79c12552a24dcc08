"""Webhook bodies → Alert, for every format `POST /alerts/databricks` accepts.

Tolerant by design: Databricks documents that optional fields without values are omitted and that
receivers must ignore unknown fields, and parts of these formats are not verified (see
tests/fixtures/SOURCES.md), so each parser reads what is there and never requires more than an
identity and a state. Anything else is a ValueError whose message is the 400's reason.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

from bot.alerts.model import Alert, AlertSource

JOB_STATES = {
    "jobs.on_start": "started",
    "jobs.on_success": "succeeded",
    "jobs.on_failure": "failed",
    "jobs.on_duration_warning_threshold_exceeded": "warning",
    "jobs.on_streaming_backlog_exceeded": "warning",
}
SQL_STATES = {"TRIGGERED", "OK", "UNKNOWN", "ERROR"}
OPERATORS = {
    "GREATER_THAN": ">", "GREATER_THAN_OR_EQUAL": ">=", "LESS_THAN": "<", "LESS_THAN_OR_EQUAL": "<=",
    "EQUAL": "=", "NOT_EQUAL": "!=", "IS_NULL": "is null", "greater than": ">", "less than": "<", "equals": "=",
}
DOMAIN_WORDS = {
    "costs": ("cost", "spend", "billing", "dbu", "budget", "revenue", "price"),
    "jobs": ("job", "pipeline", "run", "etl", "workflow", "task"),
    "performance": ("latency", "slow", "query", "queries", "duration", "p95", "performance", "error rate"),
    "security": ("security", "login", "access", "audit", "token", "permission", "admin"),
    "data quality": ("fresh", "stale", "quality", "null", "schema", "row count"),
}


def domain_of(name: str) -> str:
    lowered = name.lower()
    for domain, words in DOMAIN_WORDS.items():
        if any(word in lowered for word in words):
            return domain
    return ""


def default_severity(state: str) -> str:
    return {"TRIGGERED": "high", "ERROR": "high", "failed": "high", "warning": "medium"}.get(state, "info")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):  # {"double_value": 1.0} / {"string_value": "x"} / {"bool_value": true}
        for key in ("double_value", "string_value", "bool_value", "value"):
            if key in value:
                return _text(value[key])
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _workspace_url(url_base: str) -> tuple[str, str]:
    """(https://host, workspace id) from a url_base like https://host/sql?o=123."""
    parsed = urlparse(url_base or "")
    host = f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme and parsed.netloc else ""
    return host, (parse_qs(parsed.query).get("o") or [""])[0]


def parse_sql_alert(body: dict[str, Any]) -> Alert:
    wrapper = _dict(body.get("alert"))
    inner = _dict(wrapper.get("alert"))
    if not inner.get("id") and not inner.get("name"):
        raise ValueError("alert_state_change without alert.alert.id or name")
    title = str(wrapper.get("title") or "")
    state = str(inner.get("state") or wrapper.get("state") or "").upper()
    if state not in SQL_STATES:
        found = re.search(r"status to (\w+)", title)
        state = found.group(1).upper() if found else "UNKNOWN"
    evaluations = inner.get("evaluations") if isinstance(inner.get("evaluations"), list) else []
    evaluation = _dict(evaluations[0] if evaluations else None)
    host, workspace = _workspace_url(str(body.get("url_base") or ""))
    alert_id = str(inner.get("id") or inner.get("name"))
    links = {"Alert": f"{host}/sql/alerts-v2/{alert_id}" + (f"?o={workspace}" if workspace else "")} if host else {}
    name = str(inner.get("name") or title)
    return Alert(
        source=AlertSource.SQL_ALERT, key=f"sql:{alert_id}", name=name, state=state,
        severity=default_severity(state), domain=domain_of(name),
        value=_text(evaluation.get("value") or evaluation.get("current_value") or inner.get("value")),
        operator=OPERATORS.get(str(evaluation.get("comparison_operator") or ""), str(evaluation.get("comparison_operator") or "")),
        threshold=_text(_dict(evaluation.get("threshold")).get("value", evaluation.get("threshold"))),
        query=str(inner.get("query_text") or ""), description=str(wrapper.get("description") or inner.get("custom_description") or ""),
        links=links, workspace=workspace,
    )


def parse_legacy_alert(body: dict[str, Any]) -> Alert:
    alert = body["alert"]
    options = _dict(alert.get("options"))
    state = str(alert.get("state") or "unknown").upper()
    host = str(body.get("url_base") or "").rstrip("/")
    name = str(alert.get("name") or alert.get("title") or f"alert {alert.get('id')}")
    description = str(alert.get("description") or "")
    return Alert(
        source=AlertSource.SQL_ALERT_LEGACY, key=f"sql-legacy:{alert.get('id')}", name=name,
        state=state if state in SQL_STATES else "UNKNOWN", severity=default_severity(state), domain=domain_of(name),
        operator=OPERATORS.get(str(options.get("op") or ""), str(options.get("op") or "")),
        threshold=_text(options.get("value")), value="", description="" if description.startswith("<") else description,
        links={"Alert": f"{host}/alerts/{alert.get('id')}"} if host and alert.get("id") is not None else {},
    )


def parse_job(body: dict[str, Any], *, workspace_host: str | None = None) -> Alert:
    event = str(body.get("event_type"))
    job = _dict(body.get("job"))
    run = _dict(body.get("run"))
    task = _dict(body.get("task"))
    if not job.get("job_id") or not run.get("run_id"):
        raise ValueError(f"{event} without job.job_id and run.run_id")
    run_id = str(run.get("parent_run_id") or run["run_id"])  # task events land in their run's thread
    state = JOB_STATES.get(event, "unknown")
    name = str(job.get("name") or f"job {job['job_id']}")
    links = {"Run": f"{workspace_host.rstrip('/')}/jobs/{job['job_id']}/runs/{run_id}"} if workspace_host else {}
    return Alert(
        source=AlertSource.JOB, key=f"job:{job['job_id']}:{run_id}", name=name, state=state,
        severity=default_severity(state), domain="jobs", workspace=str(body.get("workspace_id") or ""),
        description=f"task {task['task_key']}: {state}" if task.get("task_key") else "", links=links,
    )


def parse_generic(body: dict[str, Any]) -> Alert:
    """The documented generic shape: {name, state, severity?, value?, threshold?, operator?, url?,
    text?, key?, domain?, query?} — for custom notification templates and other tools."""
    name, state = body.get("name"), body.get("state")
    if not isinstance(name, str) or not name.strip() or not isinstance(state, str) or not state.strip():
        raise ValueError("generic alerts need string fields name and state")
    upper = state.strip().upper()
    normalized = upper if upper in SQL_STATES else {"FIRING": "TRIGGERED", "RESOLVED": "OK", "ALERT": "TRIGGERED"}.get(upper, upper)
    links = {"Link": str(body["url"])} if isinstance(body.get("url"), str) and body["url"].startswith(("http://", "https://")) else {}
    return Alert(
        source=AlertSource.GENERIC, key=f"generic:{body.get('key') or name}", name=name.strip(), state=normalized,
        severity=str(body.get("severity") or default_severity(normalized)), domain=str(body.get("domain") or domain_of(name)),
        value=_text(body.get("value")), threshold=_text(body.get("threshold")), operator=str(body.get("operator") or ""),
        query=str(body.get("query") or ""), description=str(body.get("text") or body.get("description") or ""), links=links,
        workspace=str(body.get("workspace") or ""),
    )


def parse_alert(body: Any, *, workspace_host: str | None = None) -> Alert:
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    if str(body.get("event_type", "")).startswith("jobs."):
        return parse_job(body, workspace_host=workspace_host)
    if body.get("event") == "alert_state_change" and isinstance(body.get("alert"), dict):
        if isinstance(body["alert"].get("alert"), dict):
            return parse_sql_alert(body)
        return parse_legacy_alert(body)
    if "name" in body and "state" in body:
        return parse_generic(body)
    keys = ", ".join(sorted(body)[:10]) or "none"
    raise ValueError(f"unknown alert format (top-level keys: {keys}); expected a Databricks SQL alert, a Jobs "
                     "notification, or the generic shape with name and state")


# -- pulled from the workspace API (Databricks Apps cannot receive webhooks) -------------------------

MAX_PULLED_TEXT = 4000  # query texts can be huge; the thread shows the start, the endpoint gets enough


def _clip(value: Any, limit: int = MAX_PULLED_TEXT) -> str:
    text = _text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_alert_v2(alert: dict[str, Any], *, workspace_host: str) -> Alert:
    """An alert from `GET /api/2.0/alerts` (alerts v2) as its webhook would describe it: same key, so a
    webhook and a poll of the same alert land in the same thread."""
    alert_id = _text(alert.get("id"))
    if not alert_id:
        raise ValueError("alert without an id")
    evaluation = _dict(alert.get("evaluation"))
    state = _text(evaluation.get("state")).upper()
    threshold = _dict(evaluation.get("threshold"))
    name = _clip(alert.get("display_name") or f"alert {alert_id}", 300)
    operator = _text(evaluation.get("comparison_operator"))
    host = workspace_host.rstrip("/")
    return Alert(
        source=AlertSource.SQL_ALERT, key=f"sql:{alert_id}", name=name, state=state if state in SQL_STATES else "UNKNOWN",
        severity=default_severity(state), domain=domain_of(name), operator=OPERATORS.get(operator, operator),
        threshold=_text(threshold.get("value")) or _text(_dict(threshold.get("column")).get("name")),
        query=_clip(alert.get("query_text")), description=_clip(alert.get("custom_description")),
        links={"Alert": f"{host}/sql/alerts-v2/{alert_id}"} if host else {},
    )


def parse_job_run(run: dict[str, Any], *, failed: bool) -> Alert:
    """A completed run from `GET /api/2.2/jobs/runs/list` as the failure (or recovery) of its job: one
    thread per job, so repeated failures count on one root and the next success resolves it."""
    job_id, run_id = _text(run.get("job_id")), _text(run.get("run_id"))
    if not job_id or not run_id:
        raise ValueError("run without job_id and run_id")
    state = _dict(run.get("state"))
    result = _text(state.get("result_state")) or _text(state.get("life_cycle_state"))
    message = _text(_dict(_dict(run.get("status")).get("termination_details")).get("message")) or _text(state.get("state_message"))
    page = _text(run.get("run_page_url"))
    return Alert(
        source=AlertSource.JOB, key=f"job:{job_id}", name=_clip(run.get("run_name") or f"job {job_id}", 300),
        state="failed" if failed else "succeeded", severity=default_severity("failed" if failed else "succeeded"),
        domain="jobs", description=f"run {run_id}: {result}", detail=_clip(message) if failed else "",
        links={"Run": page} if page.startswith(("http://", "https://")) else {}, run_id=run_id,
    )
