"""A synthetic Databricks platform: 30 days of system-table-shaped data, from a fixed seed.

Tables mirror the columns the Health Monitor reads from `system.billing.usage` + `list_prices`,
`system.lakeflow.jobs` + `job_run_timeline`, `system.query.history`, `system.access.audit` and a
table-freshness view. Incidents are planted relative to the build date so the five quick questions
always have something real to find: yesterday's cost spike (one job moved to all-purpose compute),
jobs failing today, slow dashboard queries, a brute-force login and a new admin, stale tables.

The file is rebuilt once per day (its name carries the date), written to a temporary name and
renamed, so concurrent first uses never see half a database.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

SEED = 20240611
AS_OF_HOUR = 18  # "now" inside the dataset: today at 18:00 UTC
DAYS = 30
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE workspaces (workspace_id TEXT PRIMARY KEY, workspace_name TEXT NOT NULL);
CREATE TABLE list_prices (sku_name TEXT PRIMARY KEY, price_usd_per_dbu REAL NOT NULL);
CREATE TABLE billing_usage (
    record_id INTEGER PRIMARY KEY, workspace_id TEXT NOT NULL, sku_name TEXT NOT NULL,
    usage_date TEXT NOT NULL, usage_quantity REAL NOT NULL, job_id TEXT, warehouse_id TEXT, cluster_id TEXT
);
CREATE TABLE jobs (job_id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL, owner TEXT NOT NULL,
    output_table TEXT);
CREATE TABLE job_run_timeline (
    run_id INTEGER PRIMARY KEY, workspace_id TEXT NOT NULL, job_id TEXT NOT NULL,
    period_start_time TEXT NOT NULL, period_end_time TEXT NOT NULL, result_state TEXT NOT NULL,
    termination_code TEXT NOT NULL, error_message TEXT
);
CREATE TABLE warehouses (warehouse_id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE query_history (
    statement_id INTEGER PRIMARY KEY, workspace_id TEXT NOT NULL, warehouse_id TEXT NOT NULL,
    executed_by TEXT NOT NULL, statement_text TEXT NOT NULL, start_time TEXT NOT NULL,
    total_duration_ms INTEGER NOT NULL, execution_status TEXT NOT NULL, read_bytes INTEGER NOT NULL
);
CREATE TABLE access_audit (
    event_id INTEGER PRIMARY KEY, event_time TEXT NOT NULL, workspace_id TEXT NOT NULL,
    user_email TEXT NOT NULL, service_name TEXT NOT NULL, action_name TEXT NOT NULL,
    source_ip TEXT NOT NULL, status_code INTEGER NOT NULL, request_params TEXT NOT NULL DEFAULT ''
);
CREATE TABLE table_freshness (
    table_name TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, last_altered TEXT NOT NULL,
    expected_freshness_hours REAL NOT NULL, row_count INTEGER NOT NULL, failed_checks INTEGER NOT NULL,
    produced_by_job TEXT
);
"""

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
TODAY_FAILURES = {
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


def _ts(day: date, hour: int, minute: int = 0, second: int = 0) -> str:
    return datetime.combine(day, time(hour % 24, minute % 60, second % 60)).strftime("%Y-%m-%d %H:%M:%S")


def as_of(today: date) -> datetime:
    return datetime.combine(today, time(AS_OF_HOUR, 0))


def default_data_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "healthbot"


def dataset_path(today: date, data_dir: str | Path | None = None) -> Path:
    directory = Path(data_dir) if data_dir else default_data_dir()
    return directory / f"demo-v{SCHEMA_VERSION}-{SEED}-{today.isoformat()}.sqlite"


def ensure_dataset(today: date | None = None, data_dir: str | Path | None = None) -> Path:
    """The dataset file for `today`, built on first use."""
    today = today or datetime.now(timezone.utc).date()
    path = dataset_path(today, data_dir)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".demo-", suffix=".sqlite")
    os.close(fd)
    try:
        db = sqlite3.connect(tmp)
        try:
            build(db, today)
        finally:
            db.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def build(db: sqlite3.Connection, today: date) -> None:
    rng = random.Random(SEED)
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO workspaces VALUES (?, ?)", WORKSPACES)
    db.executemany("INSERT INTO list_prices VALUES (?, ?)", PRICES.items())
    db.executemany(
        "INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
        [(j.job_id, WORKSPACES[j.workspace][0], j.name, j.owner, j.output_table) for j in JOBS],
    )
    db.executemany("INSERT INTO warehouses VALUES (?, ?, ?)", [(w, WORKSPACES[i][0], n) for w, i, n, _ in WAREHOUSES])
    days = [today - timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]
    _jobs_and_usage(db, rng, days, today)
    _queries(db, rng, days, today)
    _audit(db, rng, days, today)
    _freshness(db, today)
    db.commit()


def _jobs_and_usage(db: sqlite3.Connection, rng: random.Random, days: list[date], today: date) -> None:
    yesterday = today - timedelta(days=1)
    runs: list[tuple[Any, ...]] = []
    usage: list[tuple[Any, ...]] = []
    run_id = 900_000
    for day in days:
        for job in JOBS:
            ws = WORKSPACES[job.workspace][0]
            outcomes: list[tuple[str, str, str | None]] | None = (
                list(TODAY_FAILURES[job.job_id]) if day == today and job.job_id in TODAY_FAILURES else None
            )
            if outcomes is None:
                failed = rng.random() < 0.03 and day != today  # today's failures are the planted ones
                outcomes = [("FAILED", "DRIVER_ERROR", "Driver is temporarily unavailable")] if failed else []
                outcomes.append(("SUCCEEDED", "SUCCESS", None))
            sku, dbus = job.sku, job.dbus_per_run * rng.uniform(0.85, 1.15)
            if day == yesterday and job.name == "nightly_customer_etl":
                # The planted spike: the job was pointed at an all-purpose cluster and ran 3x.
                sku, dbus = "PREMIUM_ALL_PURPOSE_COMPUTE", job.dbus_per_run * 9.2
                outcomes = [("SUCCEEDED", "SUCCESS", None)] * 3
            start_minute = rng.randrange(0, 50)
            for attempt, (state, code, message) in enumerate(outcomes):
                run_id += 1
                start = _ts(day, job.hour + attempt, start_minute)
                minutes = rng.randrange(8, 55) if state != "TIMED_OUT" else 120
                end = _ts(day, job.hour + attempt + minutes // 60, start_minute + minutes % 60)
                runs.append((run_id, ws, job.job_id, start, end, state, code, message))
            usage.append((ws, sku, day.isoformat(), round(dbus, 2), job.job_id, None, None))
        for warehouse_id, ws_index, _name, dbus in WAREHOUSES:
            weekend = day.weekday() >= 5
            quantity = dbus * rng.uniform(0.9, 1.1) * (0.45 if weekend else 1.0)
            usage.append((WORKSPACES[ws_index][0], "PREMIUM_SERVERLESS_SQL_COMPUTE", day.isoformat(), round(quantity, 2), None, warehouse_id, None))
        for cluster_id, ws_index, dbus in INTERACTIVE:
            quantity = dbus * rng.uniform(0.8, 1.2)
            usage.append((WORKSPACES[ws_index][0], "PREMIUM_ALL_PURPOSE_COMPUTE", day.isoformat(), round(quantity, 2), None, None, cluster_id))
    db.executemany("INSERT INTO job_run_timeline VALUES (?, ?, ?, ?, ?, ?, ?, ?)", runs)
    db.executemany(
        "INSERT INTO billing_usage (workspace_id, sku_name, usage_date, usage_quantity, job_id, warehouse_id, cluster_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        usage,
    )


def _queries(db: sqlite3.Connection, rng: random.Random, days: list[date], today: date) -> None:
    tables = ["main.sales.orders_silver", "main.finance.revenue_daily", "main.marketing.attribution", "main.ml.churn_scores"]
    rows = []
    for day in days:
        for warehouse_id, ws_index, _name, _dbus in WAREHOUSES:
            for _ in range(60 if day.weekday() < 5 else 20):
                duration = int(rng.lognormvariate(7.2, 1.1))  # median ~1.3 s, a long tail
                status = "FAILED" if rng.random() < 0.02 else "FINISHED"
                text = f"SELECT * FROM {rng.choice(tables)} WHERE event_date >= current_date() - INTERVAL {rng.randrange(1, 30)} DAYS"
                rows.append((WORKSPACES[ws_index][0], warehouse_id, rng.choice(USERS), text,
                             _ts(day, rng.randrange(7, AS_OF_HOUR), rng.randrange(60), rng.randrange(60)),
                             duration, status, duration * rng.randrange(20_000, 200_000)))
    for day in (today - timedelta(days=1), today):
        for hour in (8, 9, 11, 14):
            # The planted slow queries: a dashboard's three-way join over bronze events.
            duration = int(rng.uniform(420_000, 760_000))
            rows.append((WORKSPACES[0][0], "wh-bi-serving", "exec-dashboard-sp@example.com", SLOW_DASHBOARD_SQL,
                         _ts(day, hour, rng.randrange(60)), duration, "FINISHED", 2_400_000_000_000 + duration * 1000))
    db.executemany(
        "INSERT INTO query_history (workspace_id, warehouse_id, executed_by, statement_text, start_time, "
        "total_duration_ms, execution_status, read_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _audit(db: sqlite3.Connection, rng: random.Random, days: list[date], today: date) -> None:
    rows = []
    normal = [("accounts", "login", 200), ("clusters", "start", 200), ("notebook", "runCommand", 200),
              ("unityCatalog", "getTable", 200), ("accounts", "login", 401), ("unityCatalog", "getTable", 403)]
    for day in days:
        for _ in range(120):
            service, action, status = rng.choices(normal, weights=[30, 10, 40, 30, 2, 2])[0]
            rows.append((_ts(day, rng.randrange(24), rng.randrange(60)), WORKSPACES[rng.randrange(3)][0],
                         rng.choice(USERS), service, action, f"10.20.{rng.randrange(1, 9)}.{rng.randrange(2, 250)}", status, ""))
    for attempt in range(37):  # brute force from one outside address, ending in a success
        rows.append((_ts(today, 2, 10 + attempt // 2, attempt * 7), WORKSPACES[0][0], BRUTE_FORCE_USER,
                     "accounts", "login", SUSPICIOUS_IP, 401, ""))
    rows.append((_ts(today, 2, 31), WORKSPACES[0][0], BRUTE_FORCE_USER, "accounts", "login", SUSPICIOUS_IP, 200, ""))
    rows.append((_ts(today, 2, 40), WORKSPACES[0][0], BRUTE_FORCE_USER, "accounts", "generateDbToken", SUSPICIOUS_IP, 200,
                 "lifetime_seconds=7776000"))
    rows.append((_ts(today - timedelta(days=1), 23, 5), WORKSPACES[0][0], "gus.berg@example.com", "accounts",
                 "addPrincipalToGroup", "10.20.3.17", 200, f"group=admins principal={BRUTE_FORCE_USER}"))
    db.executemany("INSERT INTO access_audit (event_time, workspace_id, user_email, service_name, action_name, "
                   "source_ip, status_code, request_params) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _freshness(db: sqlite3.Connection, today: date) -> None:
    """Produced tables are as fresh as their job's last success; two are planted stale."""
    now = as_of(today)
    rows: list[tuple[Any, ...]] = []
    for job in JOBS:
        if job.output_table is None:
            continue
        last_success = db.execute(
            "SELECT max(period_end_time) FROM job_run_timeline WHERE job_id = ? AND result_state = 'SUCCEEDED' "
            "AND period_end_time <= ?", (job.job_id, now.strftime("%Y-%m-%d %H:%M:%S")),
        ).fetchone()[0]
        failed_checks = 2 if job.job_id == "102" else 0
        rows.append((job.output_table, WORKSPACES[job.workspace][0], last_success, 24.0, 1_000_000 + int(job.job_id) * 7919,
                     failed_checks, job.job_id))
    rows.append(("main.finance.fx_rates_daily", WORKSPACES[0][0], (now - timedelta(hours=75)).strftime("%Y-%m-%d %H:%M:%S"),
                 24.0, 0, 1, None))
    db.executemany("INSERT INTO table_freshness VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
