"""The follow-ups the demo engine's answers invite and the obvious next ones: "show me the trend", "and
last week?", "which one failed most?". Real figures from the same dataset, so a newcomer's first
minutes are a conversation rather than the first answer again."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from agent.demo.report_kit import Report, Scope, table, usd
from agent.demo.reports_usage import DAILY_COST_SQL

TREND_DAYS = 14

JOB_FAILURES_BY_DAY_SQL = """
SELECT date(period_start_time) AS day, SUM(result_state != 'SUCCEEDED') AS failed, COUNT(*) AS runs
FROM job_run_timeline WHERE date(period_start_time) BETWEEN :start AND :day
GROUP BY date(period_start_time) ORDER BY day
"""

JOB_FAILURES_BY_JOB_SQL = """
SELECT j.name AS job, SUM(r.result_state != 'SUCCEEDED') AS failed, COUNT(*) AS runs,
       MAX(CASE WHEN r.result_state != 'SUCCEEDED' THEN r.error_message END) AS last_error
FROM job_run_timeline r JOIN jobs j ON j.job_id = r.job_id
WHERE date(r.period_start_time) BETWEEN :start AND :day
GROUP BY r.job_id HAVING failed > 0 ORDER BY failed DESC, job LIMIT 10
"""


def _window(scope: Scope, days: int) -> dict[str, str]:
    return {"start": (scope.today - timedelta(days=days - 1)).isoformat(), "day": scope.today.isoformat()}


def _full_days(scope: Scope, days: int) -> dict[str, str]:
    """The last `days` whole days, to yesterday: spend accrues all day, so today's is not a day's worth yet."""
    return {"start": (scope.today - timedelta(days=days)).isoformat(), "day": (scope.today - timedelta(days=1)).isoformat()}


def cost_trend(db: sqlite3.Connection, scope: Scope) -> Report:
    rows = db.execute(DAILY_COST_SQL, _full_days(scope, TREND_DAYS)).fetchall()
    today = db.execute(DAILY_COST_SQL, {"start": scope.today.isoformat(), "day": scope.today.isoformat()}).fetchone()
    costs = [row["cost_usd"] for row in rows]
    average = sum(costs) / len(costs) if costs else 0.0
    peak = max(rows, key=lambda row: row["cost_usd"]) if rows else None
    lines = [f"**Daily cost, the last {TREND_DAYS} days** (whole days, to yesterday): {usd(sum(costs))} in all, "
             f"{usd(average)} a day on average"
             + (f"; the highest day was {peak['day']} at {usd(peak['cost_usd'])}." if peak else "."), "",
             table(["Day", "Cost"], [[row["day"], usd(row["cost_usd"])] for row in rows]), "",
             f"Today so far, until {scope.now:%H:%M} UTC: {usd(today['cost_usd'] if today else 0)}."]
    chart = {"type": "line", "title": f"Daily cost, the last {TREND_DAYS} days", "x": [row["day"][5:] for row in rows],
             "series": [{"name": "cost", "values": [round(c, 2) for c in costs]}], "unit": "USD",
             "threshold": round(average, 2), "threshold_label": "average", "x_label": "day"}
    return Report("\n".join(lines), ["system.billing.usage", "system.billing.list_prices"], [DAILY_COST_SQL], 0.9,
                  ["costs"], [chart] if rows else [])


def cost_week(db: sqlite3.Connection, scope: Scope) -> Report:
    rows = {row["day"]: row["cost_usd"] for row in db.execute(DAILY_COST_SQL, _full_days(scope, 14)).fetchall()}
    days = sorted(rows)
    last, before = sum(rows[d] for d in days[-7:]), sum(rows[d] for d in days[:-7])
    change = (last - before) / before * 100 if before else 0.0
    content = (f"**Last 7 days: {usd(last)}** (whole days, to yesterday), {abs(change):.0f}% "
               f"{'more' if change >= 0 else 'less'} than the 7 days before ({usd(before)}).\n\n"
               "Ask *show me the trend* for day by day.")
    return Report(content, ["system.billing.usage", "system.billing.list_prices"], [DAILY_COST_SQL], 0.9, ["costs"])


def job_trend(db: sqlite3.Connection, scope: Scope) -> Report:
    rows = db.execute(JOB_FAILURES_BY_DAY_SQL, _window(scope, TREND_DAYS)).fetchall()
    failed = sum(row["failed"] for row in rows)
    content = "\n".join([f"**Failed job runs, the last {TREND_DAYS} days**: {failed} of {sum(r['runs'] for r in rows)}.",
                         "", table(["Day", "Failed", "Runs"], [[r["day"], str(r["failed"]), str(r["runs"])] for r in rows])])
    chart = {"type": "bar", "title": f"Failed job runs per day, the last {TREND_DAYS} days",
             "x": [row["day"][5:] for row in rows], "series": [{"name": "failed runs", "values": [r["failed"] for r in rows]}],
             "unit": "runs", "x_label": "day"}
    return Report(content, ["system.lakeflow.job_run_timeline"], [JOB_FAILURES_BY_DAY_SQL], 0.9, ["jobs"],
                  [chart] if rows else [])


def job_most(db: sqlite3.Connection, scope: Scope, days: int = 7) -> Report:
    rows = db.execute(JOB_FAILURES_BY_JOB_SQL, _window(scope, days)).fetchall()
    if not rows:
        return Report(f"**No job failed in the last {days} days.**", ["system.lakeflow.job_run_timeline"],
                      [JOB_FAILURES_BY_JOB_SQL], 0.9, ["jobs"])
    top = rows[0]
    content = "\n".join([
        f"**{top['job']} failed most in the last {days} days**: {top['failed']} of its {top['runs']} runs"
        + (f", last with `{top['last_error']}`." if top["last_error"] else "."), "",
        table(["Job", "Failed", "Runs"], [[r["job"], str(r["failed"]), str(r["runs"])] for r in rows])])
    return Report(content, ["system.lakeflow.job_run_timeline", "system.lakeflow.jobs"], [JOB_FAILURES_BY_JOB_SQL],
                  0.9, ["jobs"])


def job_week(db: sqlite3.Connection, scope: Scope) -> Report:
    return job_most(db, scope, days=7)
