"""Demo answers over a calendar period rather than a day: "what's our biggest cost driver this month?".

Before these existed, such questions got yesterday's cost spike at 92 % confidence: a report about
something else. The period is said in the answer and every figure is summed over exactly that period.
"""

from __future__ import annotations

import sqlite3

from agent.demo.report_kit import Report, Scope, table, usd
from agent.demo.reports_usage import DRIVER_SOURCES

MONTH_DRIVERS_SQL = f"""
SELECT COALESCE(j.name, w.name, 'cluster ' || u.cluster_id) AS driver, ws.workspace_name AS workspace,
       u.sku_name AS sku, SUM(u.usage_quantity * p.price_usd_per_dbu) AS cost_usd
{DRIVER_SOURCES}
GROUP BY driver, workspace, sku
ORDER BY cost_usd DESC
"""

MONTH_BY_WORKSPACE_SQL = """
SELECT ws.workspace_name AS workspace, SUM(u.usage_quantity * p.price_usd_per_dbu) AS cost_usd
FROM billing_usage u
JOIN list_prices p ON p.sku_name = u.sku_name
JOIN workspaces ws ON ws.workspace_id = u.workspace_id
WHERE u.usage_date BETWEEN :start AND :day
GROUP BY workspace ORDER BY cost_usd DESC
"""

TOP = 5


def cost_month(db: sqlite3.Connection, scope: Scope) -> Report:
    """Month to date: the total, the biggest drivers and each workspace's share."""
    start = scope.today.replace(day=1)
    params = {"start": start.isoformat(), "day": scope.today.isoformat()}
    drivers = db.execute(MONTH_DRIVERS_SQL, params).fetchall()
    workspaces = db.execute(MONTH_BY_WORKSPACE_SQL, params).fetchall()
    total = sum(r["cost_usd"] for r in workspaces)
    period = f"{start.strftime('%B')} 1–{scope.today.day} (today so far)"
    if not drivers or total <= 0:
        return Report(f"**No spend recorded {period}.**", ["system.billing.usage", "system.billing.list_prices"],
                      [MONTH_DRIVERS_SQL, MONTH_BY_WORKSPACE_SQL], 0.9, ["costs"])
    top = drivers[0]
    lines = [
        f"**{usd(total)} spent month to date**, {period}. The biggest driver is **{top['driver']}** in "
        f"`{top['workspace']}` on `{top['sku']}`: {usd(top['cost_usd'])}, {top['cost_usd'] / total * 100:.0f}% of the total.",
        "",
        table(["Driver", "Workspace", "SKU", "Cost", "Share"],
              [[r["driver"], r["workspace"], r["sku"], usd(r["cost_usd"]), f"{r['cost_usd'] / total * 100:.0f}%"]
               for r in drivers[:TOP]]),
        "",
        "By workspace: " + ", ".join(f"`{r['workspace']}` {usd(r['cost_usd'])}" for r in workspaces) + ".",
    ]
    chart = {"type": "bar", "title": f"Biggest cost drivers, {period}", "x": [r["driver"] for r in drivers[:TOP]],
             "series": [{"name": "cost", "values": [round(r["cost_usd"], 2) for r in drivers[:TOP]]}], "unit": "USD"}
    return Report("\n".join(lines), ["system.billing.usage", "system.billing.list_prices", "system.lakeflow.jobs"],
                  [MONTH_DRIVERS_SQL, MONTH_BY_WORKSPACE_SQL], 0.9, ["costs"], [chart])
