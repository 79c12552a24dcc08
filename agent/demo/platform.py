"""The synthetic platform's fixed shape: its workspaces, prices, jobs, warehouses, users, and the
incidents the demo dataset plants (agent/demo/dataset.py builds the rows from these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

WORKSPACES = [("1234567890123456", "prod-analytics"), ("2345678901234567", "prod-ml"), ("3456789012345678", "dev-sandbox")]
PRICES = {
    "PREMIUM_JOBS_COMPUTE": 0.15,
    "PREMIUM_JOBS_SERVERLESS_COMPUTE": 0.35,
    "PREMIUM_ALL_PURPOSE_COMPUTE": 0.55,
    "PREMIUM_SERVERLESS_SQL_COMPUTE": 0.70,
}


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    workspace: int  # index into WORKSPACES
    name: str
    owner: str
    sku: str
    dbus_per_run: float
    hour: int
    output_table: str | None = None


JOBS = [
    JobSpec("101", 0, "nightly_customer_etl", "data-eng@example.com", "PREMIUM_JOBS_COMPUTE", 120, 1, "main.sales.customers_silver"),
    JobSpec("102", 0, "daily_revenue_rollup", "finance-data@example.com", "PREMIUM_JOBS_COMPUTE", 45, 3, "main.finance.revenue_daily"),
    JobSpec("103", 0, "bronze_events_ingest", "data-eng@example.com", "PREMIUM_JOBS_SERVERLESS_COMPUTE", 60, 0, "main.raw.events_bronze"),
    JobSpec("104", 0, "marketing_attribution", "marketing-analytics@example.com", "PREMIUM_JOBS_COMPUTE", 70, 4, "main.marketing.attribution"),
    JobSpec("105", 0, "orders_silver_merge", "data-eng@example.com", "PREMIUM_JOBS_COMPUTE", 55, 2, "main.sales.orders_silver"),
    JobSpec("106", 0, "inventory_snapshot", "supply-chain@example.com", "PREMIUM_JOBS_COMPUTE", 25, 5, "main.supply.inventory_daily"),
    JobSpec("201", 1, "ml_feature_refresh", "ml-platform@example.com", "PREMIUM_JOBS_COMPUTE", 90, 2, "main.ml.customer_features"),
    JobSpec("202", 1, "churn_model_training", "ml-platform@example.com", "PREMIUM_JOBS_COMPUTE", 150, 4, None),
    JobSpec("203", 1, "batch_scoring", "ml-platform@example.com", "PREMIUM_JOBS_SERVERLESS_COMPUTE", 40, 6, "main.ml.churn_scores"),
    JobSpec("204", 1, "model_monitoring", "ml-platform@example.com", "PREMIUM_JOBS_SERVERLESS_COMPUTE", 15, 7, None),
    JobSpec("301", 2, "sandbox_cleanup", "platform@example.com", "PREMIUM_JOBS_COMPUTE", 5, 0, None),
    JobSpec("302", 2, "dev_integration_tests", "platform@example.com", "PREMIUM_JOBS_COMPUTE", 20, 5, None),
]
WAREHOUSES = [("wh-bi-serving", 0, "bi-serving", 820), ("wh-adhoc", 0, "adhoc-analysts", 380), ("wh-ml", 1, "ml-exploration", 240)]
INTERACTIVE = [("0611-ds-shared", 1, 260), ("0611-dev-shared", 2, 120)]
USERS = [
    "ana.lima@example.com", "ben.okafor@example.com", "chen.wei@example.com", "dana.smith@example.com",
    "eli.cohen@example.com", "fatima.khan@example.com", "gus.berg@example.com", "hana.sato@example.com",
]
LATEST_RUN_FAILURES = {  # each of these jobs' latest run (within the last 24 h) fails like this
    "102": [("FAILED", "RUN_EXECUTION_ERROR", "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] main.finance.fx_rates_daily"),
            ("FAILED", "RUN_EXECUTION_ERROR", "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] main.finance.fx_rates_daily")],
    "201": [("TIMED_OUT", "RUN_EXECUTION_ERROR", "Run exceeded its 2 h timeout while writing main.ml.customer_features")],
    "103": [("FAILED", "CLUSTER_ERROR", "Cluster terminated: Spot instances were preempted (SPOT_INSTANCE_TERMINATION)")],
}
SLOW_DASHBOARD_SQL = (
    "SELECT c.region, date_trunc('hour', e.event_ts) AS hour, count(*) AS events, sum(o.amount) AS revenue "
    "FROM main.raw.events_bronze e JOIN main.sales.orders_silver o ON e.session_id = o.session_id "
    "JOIN main.sales.customers_silver c ON o.customer_id = c.customer_id GROUP BY ALL"
)
SUSPICIOUS_IP = "203.0.113.45"
BRUTE_FORCE_USER = "contractor.jane@example.com"

# The security story, as offsets before now: an admin grant in the evening, then (about three hours
# later) a brute-forced login to the new admin's account and a 90-day token made with it.
GRANT_BEFORE_NOW = timedelta(hours=18, minutes=55)
BRUTE_FORCE_BEFORE_NOW = timedelta(hours=15, minutes=50)
SLOW_QUERY_HOURS_AGO = (1, 3, 6, 9, 25, 27, 30, 33)  # the dashboard's slow refreshes, today's and yesterday's

# Unity Catalog permission changes over the month (days ago, hour, who, securable, change): what
# "who changed permissions on the finance schema?" finds in the audit log.
PERMISSION_CHANGES = [
    (26, 10, "ana.lima@example.com", "catalog main", "GRANT USE CATALOG TO `account users`"),
    (19, 14, "dana.smith@example.com", "schema main.sales", "GRANT SELECT TO `marketing-analytics@example.com`"),
    (12, 9, "ana.lima@example.com", "schema main.finance", "GRANT SELECT TO `finance-analysts`"),
    (6, 16, "gus.berg@example.com", "schema main.finance", "GRANT SELECT, MODIFY TO `contractor.jane@example.com`"),
    (3, 11, "dana.smith@example.com", "table main.sales.orders_silver", "REVOKE MODIFY FROM `marketing-analytics@example.com`"),
    (2, 15, "hana.sato@example.com", "table main.ml.churn_scores", "GRANT SELECT TO `ml-readers`"),
]
