"""The demo engine's answers: SQL over the synthetic system tables, rendered as markdown.

Every figure in an answer comes from a query here, and each answer names its tables and SQL as
sources, as the Health Monitor's agents do, so a reader (or a test) can check it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from agent.demo.dataset import as_of

FMT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Scope:
    """What a question is about: the day it names, and the dataset's notion of now."""

    today: date
    day: date

    @property
    def now(self) -> datetime:
        return as_of(self.today)

    @property
    def since_24h(self) -> str:
        return (self.now - timedelta(hours=24)).strftime(FMT)

    def day_word(self) -> str:
        if self.day == self.today:
            return "today"
        if self.day == self.today - timedelta(days=1):
            return "yesterday"
        return f"on {self.day.isoformat()}"


@dataclass
class Report:
    content: str
    tables: list[str]
    sql: list[str] = field(default_factory=list)
    confidence: float = 0.9
    domains: list[str] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return [*self.tables, *(f"SQL: {' '.join(query.split())}" for query in self.sql)]


def usd(value: float) -> str:
    return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def signed_usd(value: float) -> str:
    return ("+" if value >= 0 else "") + usd(value)


def duration(ms: float) -> str:
    seconds = ms / 1000
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# -- costs ------------------------------------------------------------------------------------

DAILY_COST_SQL = """
SELECT u.usage_date AS day, SUM(u.usage_quantity * p.price_usd_per_dbu) AS cost_usd
FROM billing_usage u JOIN list_prices p ON p.sku_name = u.sku_name
WHERE u.usage_date BETWEEN :start AND :day
GROUP BY u.usage_date ORDER BY u.usage_date
"""

COST_DRIVERS_SQL = """
SELECT COALESCE(j.name, w.name, 'cluster ' || u.cluster_id) AS driver, ws.workspace_name AS workspace,
       u.sku_name AS sku, u.job_id AS job_id,
       SUM(CASE WHEN u.usage_date = :day THEN u.usage_quantity * p.price_usd_per_dbu ELSE 0 END) AS day_cost,
       SUM(CASE WHEN u.usage_date < :day THEN u.usage_quantity * p.price_usd_per_dbu ELSE 0 END) / 7.0 AS avg_cost
FROM billing_usage u
JOIN list_prices p ON p.sku_name = u.sku_name
JOIN workspaces ws ON ws.workspace_id = u.workspace_id
LEFT JOIN jobs j ON j.job_id = u.job_id
LEFT JOIN warehouses w ON w.warehouse_id = u.warehouse_id
WHERE u.usage_date BETWEEN :start AND :day
GROUP BY driver, workspace, sku, u.job_id
ORDER BY day_cost - avg_cost DESC
LIMIT 3
"""

JOB_COST_DETAIL_SQL = """
SELECT u.usage_date AS day, u.sku_name AS sku, SUM(u.usage_quantity) AS dbus,
       SUM(u.usage_quantity * p.price_usd_per_dbu) AS cost_usd,
       (SELECT count(*) FROM job_run_timeline r WHERE r.job_id = u.job_id AND date(r.period_start_time) = u.usage_date) AS runs
FROM billing_usage u JOIN list_prices p ON p.sku_name = u.sku_name
WHERE u.job_id = :job_id AND u.usage_date BETWEEN :start AND :day
GROUP BY u.usage_date, u.sku_name ORDER BY u.usage_date
"""


def _cost_window(scope: Scope) -> dict[str, str]:
    return {"start": (scope.day - timedelta(days=7)).isoformat(), "day": scope.day.isoformat()}


def daily_costs(db: sqlite3.Connection, scope: Scope) -> tuple[float, float]:
    """(cost of the scope's day, average daily cost of the 7 days before it)."""
    rows = db.execute(DAILY_COST_SQL, _cost_window(scope)).fetchall()
    by_day = {row["day"]: row["cost_usd"] for row in rows}
    day_cost = by_day.pop(scope.day.isoformat(), 0.0)
    baseline = sum(by_day.values()) / 7.0
    return day_cost, baseline


def costs(db: sqlite3.Connection, scope: Scope) -> Report:
    day_cost, baseline = daily_costs(db, scope)
    change = (day_cost - baseline) / baseline * 100 if baseline else 0.0
    drivers = db.execute(COST_DRIVERS_SQL, _cost_window(scope)).fetchall()
    verb = "rose" if change >= 0 else "fell"
    spike = change >= 15
    lines = [
        f"**Costs {verb} {abs(change):.0f}% {scope.day_word()}**: {usd(day_cost)} on {scope.day.isoformat()} "
        f"against a 7-day average of {usd(baseline)} ({signed_usd(day_cost - baseline)}).",
        "",
    ]
    if spike and drivers:
        top = drivers[0]
        share = (top["day_cost"] - top["avg_cost"]) / (day_cost - baseline) * 100 if day_cost > baseline else 0
        lines += [
            f"The biggest driver is **{top['driver']}** in `{top['workspace']}` on `{top['sku']}`: "
            f"{usd(top['day_cost'])} against its usual {usd(top['avg_cost'])}, about {share:.0f}% of the increase.",
            "",
        ]
    else:
        lines += ["Nothing unusual: spend is within the normal range.", ""]
    lines.append(table(
        ["Driver", "Workspace", "SKU", scope.day_word().capitalize(), "7-day avg", "Change"],
        [[r["driver"], r["workspace"], r["sku"], usd(r["day_cost"]), usd(r["avg_cost"]),
          signed_usd(r["day_cost"] - r["avg_cost"])] for r in drivers],
    ))
    if spike:
        lines += ["", "Ask *which job was it?* for the run-by-run detail."]
    return Report("\n".join(lines), ["system.billing.usage", "system.billing.list_prices"],
                  [DAILY_COST_SQL, COST_DRIVERS_SQL], 0.92, ["costs"])


def cost_driver_detail(db: sqlite3.Connection, scope: Scope) -> Report:
    drivers = [r for r in db.execute(COST_DRIVERS_SQL, _cost_window(scope)).fetchall() if r["job_id"]]
    if not drivers:
        return costs(db, scope)
    top = drivers[0]
    job = db.execute("SELECT name, owner FROM jobs WHERE job_id = ?", (top["job_id"],)).fetchone()
    rows = db.execute(JOB_COST_DETAIL_SQL, {**_cost_window(scope), "job_id": top["job_id"]}).fetchall()
    day_rows = [r for r in rows if r["day"] == scope.day.isoformat()]
    usual_skus = sorted({r["sku"] for r in rows if r["day"] != scope.day.isoformat()})
    day = day_rows[0] if day_rows else None
    before = [r for r in rows if r["day"] != scope.day.isoformat()]
    avg_dbus = sum(r["dbus"] for r in before) / 7.0
    lines = [f"It was **{job['name']}** (job {top['job_id']}, owner {job['owner']}) in `{top['workspace']}`.", ""]
    if day is not None:
        lines.append(
            f"{scope.day_word().capitalize()} it ran {day['runs']} time(s) on `{day['sku']}` and used "
            f"{day['dbus']:,.0f} DBUs ({usd(day['cost_usd'])}); it usually runs once a day on "
            f"`{', '.join(usual_skus)}` at about {avg_dbus:,.0f} DBUs."
        )
    if day is not None and day["sku"] not in usual_skus:
        lines += ["", "The job moved from job compute to an all-purpose cluster, which is billed at a higher rate per DBU. "
                  "Pointing it back at a job cluster (and checking why it re-ran) should bring the cost back to normal."]
    lines += ["", table(["Day", "SKU", "Runs", "DBUs", "Cost"],
                        [[r["day"], r["sku"], str(r["runs"]), f"{r['dbus']:,.0f}", usd(r["cost_usd"])] for r in rows[-4:]])]
    return Report("\n".join(lines), ["system.billing.usage", "system.billing.list_prices", "system.lakeflow.jobs",
                                     "system.lakeflow.job_run_timeline"], [COST_DRIVERS_SQL, JOB_COST_DETAIL_SQL], 0.88, ["costs", "jobs"])


# -- jobs -------------------------------------------------------------------------------------

FAILED_JOBS_SQL = """
SELECT j.name AS job, ws.workspace_name AS workspace, r.job_id AS job_id,
       SUM(r.result_state != 'SUCCEEDED') AS failed_runs,
       SUM(r.result_state = 'SUCCEEDED') AS succeeded_runs,
       (SELECT r2.result_state || ' / ' || r2.termination_code FROM job_run_timeline r2
         WHERE r2.job_id = r.job_id AND date(r2.period_start_time) = :day
         ORDER BY r2.period_start_time DESC LIMIT 1) AS last_result
FROM job_run_timeline r
JOIN jobs j ON j.job_id = r.job_id
JOIN workspaces ws ON ws.workspace_id = r.workspace_id
WHERE date(r.period_start_time) = :day
GROUP BY r.job_id
HAVING failed_runs > 0
ORDER BY failed_runs DESC, job
"""

RUN_TOTALS_SQL = """
SELECT count(*) AS runs, SUM(result_state != 'SUCCEEDED') AS failed
FROM job_run_timeline WHERE date(period_start_time) = :day
"""

FAILED_RUN_DETAIL_SQL = """
SELECT j.name AS job, r.run_id, r.result_state, r.termination_code, r.period_start_time, r.error_message,
       (SELECT count(*) FROM job_run_timeline h WHERE h.job_id = r.job_id AND h.result_state != 'SUCCEEDED'
          AND date(h.period_start_time) BETWEEN date(:day, '-7 days') AND date(:day, '-1 day')) AS failures_prior_7d
FROM job_run_timeline r JOIN jobs j ON j.job_id = r.job_id
WHERE date(r.period_start_time) = :day AND r.result_state != 'SUCCEEDED'
ORDER BY r.period_start_time
"""


def failed_jobs(db: sqlite3.Connection, scope: Scope) -> Report:
    params = {"day": scope.day.isoformat()}
    rows = db.execute(FAILED_JOBS_SQL, params).fetchall()
    totals = db.execute(RUN_TOTALS_SQL, params).fetchone()
    when = scope.day_word()
    if not rows:
        content = f"**No job failed {when}**: all {totals['runs']} runs succeeded."
    else:
        still_failing = [r for r in rows if r["succeeded_runs"] == 0]
        content = "\n".join([
            f"**{len(rows)} job(s) failed {when}**: {totals['failed']} of {totals['runs']} runs did not succeed"
            + (f", and {len(still_failing)} job(s) have not recovered." if still_failing else ", all recovered on retry."),
            "",
            table(["Job", "Workspace", "Failed runs", "Last result", "Recovered"],
                  [[r["job"], r["workspace"], str(r["failed_runs"]), r["last_result"], "yes" if r["succeeded_runs"] else "no"]
                   for r in rows]),
            "",
            "Ask *why did they fail?* for the error messages.",
        ])
    return Report(content, ["system.lakeflow.job_run_timeline", "system.lakeflow.jobs"],
                  [FAILED_JOBS_SQL, RUN_TOTALS_SQL], 0.93, ["jobs"])


def failed_job_detail(db: sqlite3.Connection, scope: Scope) -> Report:
    rows = db.execute(FAILED_RUN_DETAIL_SQL, {"day": scope.day.isoformat()}).fetchall()
    if not rows:
        return failed_jobs(db, scope)
    lines = [f"Failed runs {scope.day_word()}, with their errors:", ""]
    for r in rows:
        lines.append(f"- **{r['job']}** run {r['run_id']} at {r['period_start_time'][11:16]} UTC: "
                     f"{r['result_state']} ({r['termination_code']}), `{r['error_message']}`; "
                     f"{r['failures_prior_7d']} failure(s) in the 7 days before.")
    return Report("\n".join(lines), ["system.lakeflow.job_run_timeline", "system.lakeflow.jobs"],
                  [FAILED_RUN_DETAIL_SQL], 0.88, ["jobs"])


# -- query performance ------------------------------------------------------------------------

SLOW_QUERIES_SQL = """
SELECT q.statement_id, w.name AS warehouse, q.executed_by, q.total_duration_ms, q.read_bytes, q.start_time,
       q.statement_text
FROM query_history q JOIN warehouses w ON w.warehouse_id = q.warehouse_id
WHERE q.start_time >= :since AND q.start_time < :now AND q.execution_status = 'FINISHED'
ORDER BY q.total_duration_ms DESC
LIMIT 5
"""

DURATIONS_SQL = """
SELECT total_duration_ms FROM query_history
WHERE start_time >= :since AND start_time < :now AND execution_status = 'FINISHED'
ORDER BY total_duration_ms
"""


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: always a value that was actually observed."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-round(q * 100) * len(sorted_values) // 100))  # ceil(q * n) without float error
    return sorted_values[min(rank, len(sorted_values)) - 1]


def slow_queries(db: sqlite3.Connection, scope: Scope) -> Report:
    params = {"since": scope.since_24h, "now": scope.now.strftime(FMT)}
    rows = db.execute(SLOW_QUERIES_SQL, params).fetchall()
    durations = [r[0] for r in db.execute(DURATIONS_SQL, params).fetchall()]
    p95 = percentile(durations, 0.95)
    over_minute = sum(1 for d in durations if d > 60_000)
    lines = [
        f"**{over_minute} of {len(durations)} queries in the last 24 h took over a minute**; "
        f"p95 latency is {duration(p95)}.",
        "",
        table(["Started", "Warehouse", "User", "Duration", "Read"],
              [[r["start_time"][5:16], r["warehouse"], r["executed_by"], duration(r["total_duration_ms"]),
                f"{r['read_bytes'] / 1e12:.1f} TB" if r["read_bytes"] >= 1e12 else f"{r['read_bytes'] / 1e9:.1f} GB"]
               for r in rows]),
    ]
    if rows and rows[0]["total_duration_ms"] > 300_000:
        lines += ["", f"The slowest are the same statement from `{rows[0]['executed_by']}` on `{rows[0]['warehouse']}`: "
                  "a three-way join over the bronze events table. Ask *what is that query?* for its text."]
    return Report("\n".join(lines), ["system.query.history"], [SLOW_QUERIES_SQL, DURATIONS_SQL], 0.9, ["performance"])


def slow_query_detail(db: sqlite3.Connection, scope: Scope) -> Report:
    params = {"since": scope.since_24h, "now": scope.now.strftime(FMT)}
    top = db.execute(SLOW_QUERIES_SQL, params).fetchone()
    if top is None:
        return slow_queries(db, scope)
    content = "\n".join([
        f"The slowest query ({duration(top['total_duration_ms'])}, {top['read_bytes'] / 1e12:.1f} TB read) ran on "
        f"`{top['warehouse']}` as `{top['executed_by']}` at {top['start_time']} UTC:",
        "",
        "```sql",
        top["statement_text"],
        "```",
        "",
        "It scans the whole bronze events table on every refresh. Filtering on a date range, or reading a "
        "pre-aggregated silver table, would cut both time and cost.",
    ])
    return Report(content, ["system.query.history"], [SLOW_QUERIES_SQL], 0.85, ["performance"])


# -- security ---------------------------------------------------------------------------------

FAILED_LOGINS_SQL = """
SELECT user_email, source_ip, count(*) AS failures, min(event_time) AS first_seen, max(event_time) AS last_seen
FROM access_audit
WHERE action_name = 'login' AND status_code = 401 AND event_time >= :since AND event_time < :now
GROUP BY user_email, source_ip HAVING count(*) >= 10
ORDER BY failures DESC
"""

SENSITIVE_ACTIONS_SQL = """
SELECT event_time, user_email, action_name, source_ip, request_params
FROM access_audit
WHERE event_time >= :since AND event_time < :now
  AND action_name IN ('generateDbToken', 'addPrincipalToGroup', 'changeWorkspaceAcl', 'deleteUser')
ORDER BY event_time
"""


def security(db: sqlite3.Connection, scope: Scope) -> Report:
    params = {"since": scope.since_24h, "now": scope.now.strftime(FMT)}
    logins = db.execute(FAILED_LOGINS_SQL, params).fetchall()
    actions = db.execute(SENSITIVE_ACTIONS_SQL, params).fetchall()
    findings = len(logins) + len(actions)
    if not findings:
        content = "**No security concerns in the last 24 h**: no repeated failed logins and no sensitive changes."
    else:
        lines = [f"**{findings} security finding(s) in the last 24 h.**", ""]
        for r in logins:
            lines.append(f"- 🔴 **{r['failures']} failed logins** for `{r['user_email']}` from `{r['source_ip']}` "
                         f"between {r['first_seen'][11:16]} and {r['last_seen'][11:16]} UTC.")
        for r in actions:
            detail = f" ({r['request_params']})" if r["request_params"] else ""
            lines.append(f"- ⚠️ `{r['user_email']}` did **{r['action_name']}**{detail} from `{r['source_ip']}` at "
                         f"{r['event_time'][5:16]} UTC.")
        lines += ["", "Together these look like a compromised account: a brute-forced login, then a long-lived token "
                  "and admin rights. Review the account and revoke its tokens."] if logins and actions else []
        content = "\n".join(lines)
    return Report(content, ["system.access.audit"], [FAILED_LOGINS_SQL, SENSITIVE_ACTIONS_SQL], 0.87, ["security"])


# -- data quality -----------------------------------------------------------------------------

STALE_TABLES_SQL = """
SELECT t.table_name, ws.workspace_name AS workspace, t.last_altered,
       (julianday(:now) - julianday(t.last_altered)) * 24 AS hours_since, t.expected_freshness_hours,
       t.failed_checks, j.name AS job
FROM table_freshness t
JOIN workspaces ws ON ws.workspace_id = t.workspace_id
LEFT JOIN jobs j ON j.job_id = t.produced_by_job
WHERE (julianday(:now) - julianday(t.last_altered)) * 24 > t.expected_freshness_hours OR t.failed_checks > 0
ORDER BY hours_since DESC
"""


def data_quality(db: sqlite3.Connection, scope: Scope) -> Report:
    rows = db.execute(STALE_TABLES_SQL, {"now": scope.now.strftime(FMT)}).fetchall()
    total = db.execute("SELECT count(*) FROM table_freshness").fetchone()[0]
    if not rows:
        content = f"**All {total} monitored tables are fresh** and pass their checks."
    else:
        content = "\n".join([
            f"**{len(rows)} of {total} monitored tables are stale or failing checks.**",
            "",
            table(["Table", "Last updated", "Age", "Expected", "Failed checks", "Written by"],
                  [[r["table_name"], r["last_altered"][:16], f"{r['hours_since']:.0f} h", f"{r['expected_freshness_hours']:.0f} h",
                    str(r["failed_checks"]), r["job"] or "—"] for r in rows]),
        ])
    return Report(content, ["system.information_schema.tables", "data quality monitoring results"],
                  [STALE_TABLES_SQL], 0.86, ["data quality"])


# -- overview ---------------------------------------------------------------------------------


def overview(db: sqlite3.Connection, scope: Scope) -> Report:
    yesterday = Scope(scope.today, scope.today - timedelta(days=1))
    today = Scope(scope.today, scope.today)
    day_cost, baseline = daily_costs(db, yesterday)
    change = (day_cost - baseline) / baseline * 100 if baseline else 0.0
    totals = db.execute(RUN_TOTALS_SQL, {"day": scope.today.isoformat()}).fetchone()
    failed = db.execute(FAILED_JOBS_SQL, {"day": scope.today.isoformat()}).fetchall()
    params = {"since": today.since_24h, "now": today.now.strftime(FMT)}
    durations = [r[0] for r in db.execute(DURATIONS_SQL, params).fetchall()]
    p95 = percentile(durations, 0.95)
    logins = db.execute(FAILED_LOGINS_SQL, params).fetchall()
    actions = db.execute(SENSITIVE_ACTIONS_SQL, params).fetchall()
    stale = db.execute(STALE_TABLES_SQL, {"now": today.now.strftime(FMT)}).fetchall()

    def mark(bad: bool, warn: bool = False) -> str:
        return "🔴" if bad else ("⚠️" if warn else "✅")

    rows = [
        ["Costs", mark(change >= 30, change >= 15), f"yesterday {usd(day_cost)}, {change:+.0f}% vs 7-day avg"],
        ["Jobs", mark(bool(failed)), f"{len(failed)} job(s) failed today, {totals['failed']} of {totals['runs']} runs"],
        ["Performance", mark(p95 > 60_000, p95 > 10_000), f"query p95 {duration(p95)} over {len(durations)} queries (24 h)"],
        ["Security", mark(bool(logins), bool(actions)), f"{len(logins)} brute-force pattern(s), {len(actions)} sensitive change(s)"],
        ["Data quality", mark(len(stale) > 2, bool(stale)), f"{len(stale)} table(s) stale or failing checks"],
    ]
    issues = sum(1 for r in rows if r[1] != "✅")
    content = "\n".join([
        f"**Platform health: {issues} of 5 areas need attention.**",
        "",
        table(["Area", "Status", "Finding"], rows),
        "",
        "Ask about any area (costs, jobs, queries, security, data quality) for the detail.",
    ])
    return Report(content, ["system.billing.usage", "system.billing.list_prices", "system.lakeflow.job_run_timeline",
                            "system.query.history", "system.access.audit", "system.information_schema.tables"],
                  [DAILY_COST_SQL, FAILED_JOBS_SQL, DURATIONS_SQL, FAILED_LOGINS_SQL, STALE_TABLES_SQL], 0.9,
                  ["costs", "jobs", "performance", "security", "data quality"])


ReportFn = Callable[[sqlite3.Connection, Scope], Report]
