"""Demo answers about spend and job runs: system.billing.* and system.lakeflow.*."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from agent.demo.report_kit import Report, Scope, signed_usd, table, usd

# -- costs ------------------------------------------------------------------------------------

DAILY_COST_SQL = """
SELECT u.usage_date AS day, SUM(u.usage_quantity * p.price_usd_per_dbu) AS cost_usd
FROM billing_usage u JOIN list_prices p ON p.sku_name = u.sku_name
WHERE u.usage_date BETWEEN :start AND :day
GROUP BY u.usage_date ORDER BY u.usage_date
"""

# Spend by driver (the job, else the warehouse, else the cluster) over a range of days: shared by the
# day's-spike and month-to-date reports, so both name a driver the same way.
DRIVER_SOURCES = """FROM billing_usage u
JOIN list_prices p ON p.sku_name = u.sku_name
JOIN workspaces ws ON ws.workspace_id = u.workspace_id
LEFT JOIN jobs j ON j.job_id = u.job_id
LEFT JOIN warehouses w ON w.warehouse_id = u.warehouse_id
WHERE u.usage_date BETWEEN :start AND :day"""

COST_DRIVERS_SQL = f"""
SELECT COALESCE(j.name, w.name, 'cluster ' || u.cluster_id) AS driver, ws.workspace_name AS workspace,
       u.sku_name AS sku, u.job_id AS job_id,
       SUM(CASE WHEN u.usage_date = :day THEN u.usage_quantity * p.price_usd_per_dbu ELSE 0 END) AS day_cost,
       SUM(CASE WHEN u.usage_date < :day AND strftime('%w', u.usage_date) = strftime('%w', :day)
                THEN u.usage_quantity * p.price_usd_per_dbu ELSE 0 END) / :weeks AS avg_cost
{DRIVER_SOURCES}
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


WEEKS = 4  # a day is compared with the same weekday of the weeks before: a Saturday with Saturdays


def _cost_window(scope: Scope) -> dict[str, str]:
    return {"start": (scope.day - timedelta(days=7)).isoformat(), "day": scope.day.isoformat()}


def _same_weekdays(scope: Scope) -> dict[str, object]:
    return {"start": (scope.day - timedelta(days=7 * WEEKS)).isoformat(), "day": scope.day.isoformat(), "weeks": WEEKS}


def daily_costs(db: sqlite3.Connection, scope: Scope) -> tuple[float, float]:
    day_cost, baseline, _ = daily_cost_series(db, scope)
    return day_cost, baseline


def daily_cost_series(db: sqlite3.Connection, scope: Scope) -> tuple[float, float, dict[str, float]]:
    """(cost of the scope's day, average cost of the same weekday over the WEEKS weeks before it).

    Like with like: weekend spend is about half of a weekday's, so a Saturday against a 7-day average
    of mostly weekdays reads as a fall, and a driver's rise then looks like 281 % of the increase."""
    rows = db.execute(DAILY_COST_SQL, _same_weekdays(scope)).fetchall()
    by_day = {row["day"]: row["cost_usd"] for row in rows}
    day_cost = by_day.pop(scope.day.isoformat(), 0.0)
    same = [(scope.day - timedelta(days=7 * week)).isoformat() for week in range(WEEKS, 0, -1)]
    baseline = sum(by_day.get(day, 0.0) for day in same) / WEEKS
    return day_cost, baseline, {**{day: by_day.get(day, 0.0) for day in same}, scope.day.isoformat(): day_cost}


def costs(db: sqlite3.Connection, scope: Scope) -> Report:
    day_cost, baseline, series = daily_cost_series(db, scope)
    change = (day_cost - baseline) / baseline * 100 if baseline else 0.0
    drivers = db.execute(COST_DRIVERS_SQL, _same_weekdays(scope)).fetchall()
    verb = "rose" if change >= 0 else "fell"
    partial = scope.day == scope.today  # the day is not over: no rise or fall against whole days
    spike = change >= 15 and not partial
    weekday = scope.day.strftime("%A")
    lines = [
        f"**{usd(day_cost)} spent today so far**, until {scope.now:%H:%M} UTC where the billing data ends; an average "
        f"{weekday} of the last {WEEKS} weeks came to {usd(baseline)} for the whole day." if partial else
        f"**Costs {verb} {abs(change):.0f}% {scope.day_word()}**: {usd(day_cost)} on {weekday} {scope.day.isoformat()} "
        f"against {usd(baseline)} on an average {weekday} of the last {WEEKS} weeks ({signed_usd(day_cost - baseline)}).",
        "",
    ]
    if spike and drivers:
        top = drivers[0]
        rise, total = top["day_cost"] - top["avg_cost"], day_cost - baseline
        if rise > total:  # the rest of the platform spent less than usual: say so, not "281 % of the increase"
            share = (f"more than the whole rise of {usd(total)}: the rest of the platform spent "
                     f"{usd(rise - total)} less than usual")
        else:
            share = f"about {rise / total * 100:.0f}% of the increase"
        lines += [
            f"The biggest driver is **{top['driver']}** in `{top['workspace']}` on `{top['sku']}`: "
            f"{usd(top['day_cost'])} against its usual {usd(top['avg_cost'])} on a {weekday}, {share}.",
            "",
        ]
    elif not partial:
        lines += ["Nothing unusual: spend is within the normal range.", ""]
    lines.append(table(
        ["Driver", "Workspace", "SKU", "Today so far" if partial else scope.day_word().capitalize(),
         f"Usual {weekday}" + (" (whole day)" if partial else ""), "Change"],
        [[r["driver"], r["workspace"], r["sku"], usd(r["day_cost"]), usd(r["avg_cost"]),
          signed_usd(r["day_cost"] - r["avg_cost"])] for r in drivers],
    ))
    if spike:
        lines += ["", "Ask *which job was it?* for the run-by-run detail."]
    chart = {"type": "bar", "title": f"Cost on {weekday}s, the last {WEEKS} weeks and {scope.day_word()}",
             "x": [day[5:] for day in series], "series": [{"name": "cost", "values": [round(v, 2) for v in series.values()]}],
             "unit": "USD", "threshold": round(baseline, 2), "threshold_label": f"average {weekday}", "x_label": weekday}
    return Report("\n".join(lines), ["system.billing.usage", "system.billing.list_prices"],
                  [DAILY_COST_SQL, COST_DRIVERS_SQL], 0.92, ["costs"], [chart])


def cost_driver_detail(db: sqlite3.Connection, scope: Scope) -> Report:
    drivers = [r for r in db.execute(COST_DRIVERS_SQL, _same_weekdays(scope)).fetchall() if r["job_id"]]
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

RUNS_IN_WINDOW = "r.period_end_time > :since AND r.period_end_time <= :until"  # Scope.run_window

FAILED_JOBS_SQL = f"""
SELECT j.name AS job, ws.workspace_name AS workspace, r.job_id AS job_id,
       SUM(r.result_state != 'SUCCEEDED') AS failed_runs,
       (SELECT r2.result_state || ' / ' || r2.termination_code FROM job_run_timeline r2
         WHERE r2.job_id = r.job_id AND r2.period_end_time > :since AND r2.period_end_time <= :until
         ORDER BY r2.period_start_time DESC LIMIT 1) AS last_result
FROM job_run_timeline r
JOIN jobs j ON j.job_id = r.job_id
JOIN workspaces ws ON ws.workspace_id = r.workspace_id
WHERE {RUNS_IN_WINDOW}
GROUP BY r.job_id
HAVING failed_runs > 0
ORDER BY failed_runs DESC, job
"""

RUN_TOTALS_SQL = f"""
SELECT count(*) AS runs, COALESCE(SUM(result_state != 'SUCCEEDED'), 0) AS failed
FROM job_run_timeline r WHERE {RUNS_IN_WINDOW}
"""

FAILED_RUN_DETAIL_SQL = f"""
SELECT j.name AS job, r.run_id, r.result_state, r.termination_code, r.period_start_time, r.error_message,
       (SELECT count(*) FROM job_run_timeline h WHERE h.job_id = r.job_id AND h.result_state != 'SUCCEEDED'
          AND h.period_end_time > datetime(:since, '-7 days') AND h.period_end_time <= :since) AS failures_prior_7d
FROM job_run_timeline r JOIN jobs j ON j.job_id = r.job_id
WHERE {RUNS_IN_WINDOW} AND r.result_state != 'SUCCEEDED'
ORDER BY r.period_start_time
"""


def failed_jobs(db: sqlite3.Connection, scope: Scope) -> Report:
    params = scope.run_window()
    rows = db.execute(FAILED_JOBS_SQL, params).fetchall()
    totals = db.execute(RUN_TOTALS_SQL, params).fetchone()
    when = scope.run_window_words()
    if not rows:
        content = f"**No job failed {when}**: all {totals['runs']} runs succeeded."
    else:
        still_failing = [r for r in rows if not r["last_result"].startswith("SUCCEEDED")]
        content = "\n".join([
            f"**{len(rows)} job(s) failed {when}**: {totals['failed']} of {totals['runs']} runs did not succeed"
            + (f", and {len(still_failing)} job(s) have not recovered." if still_failing else ", all recovered on retry."),
            "",
            table(["Job", "Workspace", "Failed runs", "Last result", "Recovered"],
                  [[r["job"], r["workspace"], str(r["failed_runs"]), r["last_result"],
                    "yes" if r["last_result"].startswith("SUCCEEDED") else "no"]
                   for r in rows]),
            "",
            "Ask *why did they fail?* for the error messages.",
        ])
    charts = [{"type": "bar", "title": f"Failed runs per job {when}", "x": [r["job"] for r in rows][:12],
               "series": [{"name": "failed runs", "values": [r["failed_runs"] for r in rows][:12]}], "unit": "runs",
               "x_label": "job"}] if rows else []
    return Report(content, ["system.lakeflow.job_run_timeline", "system.lakeflow.jobs"],
                  [FAILED_JOBS_SQL, RUN_TOTALS_SQL], 0.93, ["jobs"], charts)


def failed_job_detail(db: sqlite3.Connection, scope: Scope) -> Report:
    rows = db.execute(FAILED_RUN_DETAIL_SQL, scope.run_window()).fetchall()
    if not rows:
        return failed_jobs(db, scope)
    lines = [f"Failed runs {scope.run_window_words()}, with their errors:", ""]
    for r in rows:
        lines.append(f"- **{r['job']}** run {r['run_id']} at {r['period_start_time'][5:16]} UTC: "
                     f"{r['result_state']} ({r['termination_code']}), `{r['error_message']}`; "
                     f"{r['failures_prior_7d']} failure(s) in the 7 days before.")
    return Report("\n".join(lines), ["system.lakeflow.job_run_timeline", "system.lakeflow.jobs"],
                  [FAILED_RUN_DETAIL_SQL], 0.88, ["jobs"])
