"""Demo answers about something a question names or a breakdown it asks for: spend by workspace, SKU,
job, warehouse or user; the most expensive queries; a named job's durations and failures against the
week before; the jobs' durations; permission changes and failed logins of a principal or securable.

Before these, such questions got the nearest canned report ("is the nightly ETL slower than last week?"
got the slow queries). Every figure is SQL over the period the answer names.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from agent.demo.report_kit import FMT, Report, Scope, table, usd
from agent.demo.reports_usage import DRIVER_SOURCES

BILLING = ["system.billing.usage", "system.billing.list_prices"]
GROUP_BY = {"workspace": "ws.workspace_name", "sku": "u.sku_name",
            "job": "COALESCE(j.name, '(not a job: warehouses, clusters)')",
            "warehouse": "COALESCE(w.name, '(not a SQL warehouse)')"}

COST_BY_SQL = f"""
SELECT {{key}} AS name, SUM(u.usage_quantity * p.price_usd_per_dbu) AS cost_usd
{DRIVER_SOURCES}
GROUP BY 1 ORDER BY cost_usd DESC
"""

# Billing has no user for shared compute: a job's spend is its owner's (it runs as them), a SQL
# warehouse's spend of a day is split by each user's share of the query time on it that day.
COST_BY_USER_SQL = """
WITH priced AS (
  SELECT u.*, u.usage_quantity * p.price_usd_per_dbu AS cost FROM billing_usage u JOIN list_prices p ON p.sku_name = u.sku_name
  WHERE u.usage_date BETWEEN :start AND :day),
busy AS (
  SELECT date(start_time) AS day, warehouse_id, executed_by, SUM(total_duration_ms) AS ms,
         SUM(SUM(total_duration_ms)) OVER (PARTITION BY date(start_time), warehouse_id) AS warehouse_ms
  FROM query_history WHERE date(start_time) BETWEEN :start AND :day GROUP BY 1, 2, 3)
SELECT name, SUM(cost) AS cost_usd FROM (
  SELECT j.owner AS name, c.cost FROM priced c JOIN jobs j ON j.job_id = c.job_id
  UNION ALL
  SELECT b.executed_by, c.cost * b.ms / b.warehouse_ms FROM priced c
    JOIN busy b ON b.warehouse_id = c.warehouse_id AND b.day = c.usage_date
  UNION ALL
  SELECT '(all-purpose clusters: no user in billing)', c.cost FROM priced c WHERE c.cluster_id IS NOT NULL)
GROUP BY name ORDER BY cost_usd DESC
"""

# A query's cost: its warehouse's spend that day times its share of the warehouse's query time that day.
EXPENSIVE_QUERIES_SQL = """
WITH warehouse_day AS (
  SELECT u.usage_date AS day, u.warehouse_id, SUM(u.usage_quantity * p.price_usd_per_dbu) AS cost
  FROM billing_usage u JOIN list_prices p ON p.sku_name = u.sku_name
  WHERE u.warehouse_id IS NOT NULL AND u.usage_date BETWEEN :start AND :day GROUP BY 1, 2),
q AS (
  SELECT *, date(start_time) AS day, SUM(total_duration_ms) OVER (PARTITION BY date(start_time), warehouse_id) AS warehouse_ms
  FROM query_history WHERE date(start_time) BETWEEN :start AND :day)
SELECT q.start_time, w.name AS warehouse, q.executed_by, q.total_duration_ms, q.statement_text,
       d.cost * q.total_duration_ms / q.warehouse_ms AS cost_usd
FROM q JOIN warehouse_day d ON d.day = q.day AND d.warehouse_id = q.warehouse_id
JOIN warehouses w ON w.warehouse_id = q.warehouse_id
ORDER BY cost_usd DESC LIMIT 5
"""

JOB_RUNS_SQL = """
SELECT j.name AS job, r.period_start_time AS started, r.result_state AS result, r.error_message AS error,
       (julianday(r.period_end_time) - julianday(r.period_start_time)) * 1440 AS minutes
FROM job_run_timeline r JOIN jobs j ON j.job_id = r.job_id
WHERE (:job = '' OR j.name = :job) AND date(r.period_start_time) BETWEEN :start AND :day
ORDER BY r.period_start_time
"""

JOB_COST_SQL = """
SELECT SUM(CASE WHEN u.usage_date > date(:day, '-7 days') THEN u.usage_quantity * p.price_usd_per_dbu ELSE 0 END) AS last_7,
       SUM(CASE WHEN u.usage_date <= date(:day, '-7 days') THEN u.usage_quantity * p.price_usd_per_dbu ELSE 0 END) AS before_7
FROM billing_usage u JOIN list_prices p ON p.sku_name = u.sku_name JOIN jobs j ON j.job_id = u.job_id
WHERE j.name = :job AND u.usage_date BETWEEN :start AND :day
"""

ACCESS_CHANGES_SQL = """
SELECT event_time, user_email, action_name, source_ip, request_params FROM access_audit
WHERE event_time >= :since AND event_time <= :now
  AND action_name IN ('updatePermissions', 'addPrincipalToGroup', 'removePrincipalFromGroup', 'changeWorkspaceAcl', 'generateDbToken')
  AND (:pattern = '' OR user_email LIKE :pattern OR request_params LIKE :pattern)
ORDER BY event_time
"""

FAILED_LOGINS_BY_SQL = """
SELECT user_email, source_ip, count(*) AS failures, min(event_time) AS first_seen, max(event_time) AS last_seen
FROM access_audit
WHERE action_name = 'login' AND status_code = 401 AND event_time >= :since AND event_time <= :now
  AND (:pattern = '' OR user_email LIKE :pattern)
GROUP BY user_email, source_ip ORDER BY failures DESC
"""


def _days(scope: Scope, default: str) -> tuple[dict[str, str], str]:
    start, end, words = scope.window(default)
    return {"start": start.isoformat(), "day": end.isoformat()}, words


def cost_by(db: sqlite3.Connection, scope: Scope) -> Report:
    """Spend over the period broken down by the dimension asked for, biggest first."""
    params, words = _days(scope, "week")
    sql = COST_BY_USER_SQL if scope.dimension == "user" else COST_BY_SQL.format(key=GROUP_BY[scope.dimension or "workspace"])
    rows = db.execute(sql, params).fetchall()
    total = sum(r["cost_usd"] for r in rows)
    label = {"sku": "SKU"}.get(scope.dimension, scope.dimension or "workspace")
    if not rows or total <= 0:
        return Report(f"**No spend recorded {words}.**", BILLING, [sql], 0.9, ["costs"])
    top = next((r for r in rows if not r["name"].startswith("(")), rows[0])  # a name, not "(not a job: …)"
    lines = [f"**Spend by {label} {words}: {usd(total)}.** The most is **{top['name']}** with {usd(top['cost_usd'])} "
             f"({top['cost_usd'] / total * 100:.0f}%)" + (f"; {rows[0]['name']} is {usd(rows[0]['cost_usd'])}." if top is not rows[0] else "."), "",
             table([label.capitalize(), "Cost", "Share"], [[r["name"], usd(r["cost_usd"]), f"{r['cost_usd'] / total * 100:.0f}%"]
                                                          for r in rows[:10]])]
    if scope.dimension == "user":
        lines += ["", "Billing names no user for shared compute: a job's spend is its owner's (it runs as them), a SQL "
                  "warehouse's is split by each user's share of its query time that day."]
    chart = {"type": "bar", "title": f"Spend by {label} {words}"[:80], "x": [r["name"] for r in rows[:8]],
             "series": [{"name": "cost", "values": [round(r["cost_usd"], 2) for r in rows[:8]]}], "unit": "USD", "x_label": label}
    tables = BILLING + (["system.query.history", "system.lakeflow.jobs"] if scope.dimension == "user" else [])
    return Report("\n".join(lines), tables, [sql], 0.9, ["costs"], [chart])


def expensive_queries(db: sqlite3.Connection, scope: Scope) -> Report:
    params, words = _days(scope, "week")
    rows = db.execute(EXPENSIVE_QUERIES_SQL, params).fetchall()
    if not rows:
        return Report(f"**No warehouse queries {words}.**", [*BILLING, "system.query.history"], [EXPENSIVE_QUERIES_SQL], 0.85,
                      ["costs", "performance"])
    top = rows[0]
    content = "\n".join([
        f"**The most expensive queries {words}**: the top one cost about {usd(top['cost_usd'])}, on `{top['warehouse']}` as "
        f"`{top['executed_by']}`. A query's cost is its warehouse's spend that day times its share of the query time.", "",
        table(["Started", "Warehouse", "User", "Duration", "Est. cost", "Statement"],
              [[r["start_time"][5:16], r["warehouse"], r["executed_by"], f"{r['total_duration_ms'] / 60000:.1f} min",
                usd(r["cost_usd"]), r["statement_text"][:60] + ("…" if len(r["statement_text"]) > 60 else "")] for r in rows])])
    return Report(content, [*BILLING, "system.query.history"], [EXPENSIVE_QUERIES_SQL], 0.85, ["costs", "performance"])


def _run_weeks(db: sqlite3.Connection, scope: Scope, job: str) -> tuple[list[sqlite3.Row], list[sqlite3.Row], str]:
    """The runs of the period asked about (default the last 7 days) and of the 7 days before it."""
    start, end, words = scope.window("week")
    params = {"job": job, "start": (start - timedelta(days=7)).isoformat(), "day": end.isoformat()}
    runs = db.execute(JOB_RUNS_SQL, params).fetchall()
    return [r for r in runs if r["started"][:10] >= start.isoformat()], [r for r in runs if r["started"][:10] < start.isoformat()], words


def _average(runs: list[sqlite3.Row]) -> float:
    return sum(r["minutes"] for r in runs) / len(runs) if runs else 0.0


def _verdict(now: float, before: float) -> str:
    change = (now - before) / before * 100 if before else 0.0
    word = "slower" if change >= 10 else "faster" if change <= -10 else "about the same"
    return f"{change:+.0f}%, {word}"


def job_history(db: sqlite3.Connection, scope: Scope) -> Report:
    """A named job over the period (default the last 7 days) against the 7 days before: duration,
    failures, spend, its last run and last error."""
    last, before, words = _run_weeks(db, scope, scope.entity)
    cost = db.execute(JOB_COST_SQL, {"job": scope.entity, "start": (scope.today - timedelta(days=13)).isoformat(),
                                     "day": scope.today.isoformat()}).fetchone()
    failed = [r for r in last if r["result"] != "SUCCEEDED"]
    lines = [f"**{scope.entity} took {_average(last):.1f} min a run {words}, against {_average(before):.1f} min the 7 days "
             f"before ({_verdict(_average(last), _average(before))}).** {len(failed)} of its {len(last)} runs failed "
             f"({sum(r['result'] != 'SUCCEEDED' for r in before)} of {len(before)} before). Its spend: "
             f"{usd(cost['last_7'] or 0)} in the last 7 days against {usd(cost['before_7'] or 0)} the 7 days before."]
    if last:
        lines[0] += f" Its last run: {last[-1]['result']}, started {last[-1]['started'][5:16]} UTC."
    if failed:
        lines[0] += f" Last error: `{failed[-1]['error']}`."
    days = sorted({r["started"][:10] for r in last})
    rows = [[day, str(sum(r["started"][:10] == day for r in last)),
             str(sum(r["started"][:10] == day and r["result"] != "SUCCEEDED" for r in last)),
             f"{_average([r for r in last if r['started'][:10] == day]):.1f} min"] for day in days]
    lines += ["", table(["Day", "Runs", "Failed", "Avg duration"], rows)]
    chart = {"type": "line", "title": f"{scope.entity}: minutes a run"[:80], "x": [d[5:] for d in days],
             "series": [{"name": "avg duration", "values": [round(_average([r for r in last if r["started"][:10] == d]), 1)
                                                            for d in days]}],
             "unit": "min", "threshold": round(_average(before), 1), "threshold_label": "avg the 7 days before", "x_label": "day"}
    return Report("\n".join(lines), ["system.lakeflow.job_run_timeline", "system.lakeflow.jobs", *BILLING],
                  [JOB_RUNS_SQL, JOB_COST_SQL], 0.9, ["jobs"], [chart] if len(days) > 1 else [])


def job_durations(db: sqlite3.Connection, scope: Scope) -> Report:
    """Every job's average run time over the period (default the last 7 days) against the 7 days before, longest first."""
    last, before, words = _run_weeks(db, scope, "")
    now = {name: [r for r in last if r["job"] == name] for name in {r["job"] for r in last}}
    then = {name: _average([r for r in before if r["job"] == name]) for name in now}
    names = sorted(now, key=lambda n: -_average(now[n]))
    rows = [[name, str(len(now[name])), f"{_average(now[name]):.1f} min", f"{then[name]:.1f} min",
             _verdict(_average(now[name]), then[name])] for name in names]
    if not rows:
        return Report(f"**No job ran {words}.**", ["system.lakeflow.job_run_timeline"], [JOB_RUNS_SQL], 0.9, ["jobs"])
    content = "\n".join([f"**{rows[0][0]} ran longest {words}: {rows[0][2]} a run** ({rows[0][3]} the 7 days before). "
                         "Every job, longest first:", "",
                         table(["Job", "Runs", "Avg", "Avg, 7 days before", "Change"], rows)])
    return Report(content, ["system.lakeflow.job_run_timeline", "system.lakeflow.jobs"], [JOB_RUNS_SQL], 0.9, ["jobs"])


def access_changes(db: sqlite3.Connection, scope: Scope) -> Report:
    """Permission and group changes, tokens and failed logins of the last 30 days, of a principal or
    securable when one is named (matched as a word of the audit entry)."""
    since = (scope.now - timedelta(days=30)).strftime(FMT)
    params = {"since": since, "now": scope.now.strftime(FMT), "pattern": f"%{scope.entity}%" if scope.entity else ""}
    changes = db.execute(ACCESS_CHANGES_SQL, params).fetchall()
    logins = db.execute(FAILED_LOGINS_BY_SQL, params).fetchall() if "@" in scope.entity or not scope.entity else []
    logins = [r for r in logins if r["failures"] >= (1 if scope.entity else 10)]
    about = (f"of `{scope.entity}`" if "@" in scope.entity else f"on securables named `…{scope.entity}…`" if scope.entity
             else "of any principal or securable")
    if not changes and not logins:
        content = f"**No permission changes, tokens or failed logins {about} in the last 30 days.**"
    else:
        lines = [f"**{len(changes)} access change(s) and {sum(r['failures'] for r in logins)} failed login(s) {about} "
                 "in the last 30 days**, oldest first:", ""]
        lines += [f"- {r['event_time'][5:16]} UTC: `{r['user_email']}` did **{r['action_name']}**"
                  + (f" ({r['request_params']})" if r["request_params"] else "") + f" from `{r['source_ip']}`" for r in changes]
        lines += [f"- {r['failures']} failed login(s) for `{r['user_email']}` from `{r['source_ip']}`, {r['first_seen'][5:16]}–"
                  f"{r['last_seen'][5:16]} UTC" for r in logins]
        content = "\n".join(lines)
    return Report(content, ["system.access.audit"], [ACCESS_CHANGES_SQL, FAILED_LOGINS_BY_SQL], 0.88, ["security"])


JOB_NAMES_SQL = "SELECT name FROM jobs ORDER BY name"


def no_such_job(db: sqlite3.Connection, scope: Scope) -> Report:
    names = [name for (name,) in db.execute(JOB_NAMES_SQL)]
    return Report(f"I find no job named `{scope.entity}` in the job data. The jobs I know: "
                  + ", ".join(f"`{n}`" for n in names) + ". Ask e.g. *is nightly_customer_etl slower than last week?*",
                  ["system.lakeflow.jobs"], [JOB_NAMES_SQL], 0.3, ["jobs"])
