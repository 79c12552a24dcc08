"""Demo answers about query performance, security, data quality, and the platform overview."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from agent.demo.report_kit import FMT, Report, Scope, duration, table, usd
from agent.demo.reports_usage import (
    DAILY_COST_SQL,
    FAILED_JOBS_SQL,
    RUN_TOTALS_SQL,
    WEEKS,
    daily_costs,
)

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


def in_order(logins: list[sqlite3.Row], actions: list[sqlite3.Row]) -> str:
    """The findings as the story the audit log tells, in the order it happened (the admin grant can
    come before the brute force: "a brute-forced login, then admin rights" would be a made-up story)."""
    steps = [(r["first_seen"], f"{r['failures']} failed logins for `{r['user_email']}` from `{r['source_ip']}`")
             for r in logins]
    steps += [(r["event_time"], f"**{r['action_name']}** by `{r['user_email']}`") for r in actions]
    told = ", then ".join(f"{what} at {when[5:16]} UTC" for when, what in sorted(steps))
    return (f"In order: {told}. Together these look like a compromised account: review it, revoke its tokens "
            "and check every change it made or received.")


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
        lines += ["", in_order(logins, actions)] if logins and actions else []
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
    yesterday, today = scope.on(scope.today - timedelta(days=1)), scope.on(scope.today)
    day_cost, baseline = daily_costs(db, yesterday)
    change = (day_cost - baseline) / baseline * 100 if baseline else 0.0
    totals = db.execute(RUN_TOTALS_SQL, today.run_window()).fetchone()
    failed = db.execute(FAILED_JOBS_SQL, today.run_window()).fetchall()
    params = {"since": today.since_24h, "now": today.now.strftime(FMT)}
    durations = [r[0] for r in db.execute(DURATIONS_SQL, params).fetchall()]
    p95 = percentile(durations, 0.95)
    logins = db.execute(FAILED_LOGINS_SQL, params).fetchall()
    actions = db.execute(SENSITIVE_ACTIONS_SQL, params).fetchall()
    stale = db.execute(STALE_TABLES_SQL, {"now": today.now.strftime(FMT)}).fetchall()

    def mark(bad: bool, warn: bool = False) -> str:
        return "🔴" if bad else ("⚠️" if warn else "✅")

    rows = [
        ["Costs", mark(change >= 30, change >= 15),
         f"yesterday {usd(day_cost)}, {change:+.0f}% vs {usd(baseline)} on an average {yesterday.day.strftime('%A')} "
         f"of the last {WEEKS} weeks"],
        ["Jobs", mark(bool(failed)), f"{len(failed)} job(s) failed in the last 24 h, {totals['failed']} of {totals['runs']} runs"],
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
