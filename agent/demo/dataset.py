"""A synthetic Databricks platform: 30 days of system-table-shaped data up to now, from a fixed seed.

Tables mirror the columns the Health Monitor reads from `system.billing.usage` + `list_prices`,
`system.lakeflow.jobs` + `job_run_timeline`, `system.query.history`, `system.access.audit` and a
table-freshness view. The data ends at the start of the current UTC hour ("now" of the dataset): no
run, query, login or cost lies later, so at 00:10 UTC today is nearly empty, as it would be. Incidents
are planted relative to now so the five quick questions always have something real to find at any
hour: yesterday's cost spike (one job moved to all-purpose compute), three jobs whose latest run
failed, slow dashboard queries, an admin grant followed by a brute-forced login, stale tables.

Every (day, job), (day, warehouse) and day of audit events draws from its own seeded generator, so the
same cell holds the same numbers whatever the hour the file is built in; only what lies after now
differs. The file is rebuilt once per hour (its name carries the hour), written to a temporary name
and renamed, so concurrent first uses never see half a database.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from agent.demo.platform import (
    BRUTE_FORCE_BEFORE_NOW,
    BRUTE_FORCE_USER,
    GRANT_BEFORE_NOW,
    INTERACTIVE,
    JOBS,
    LATEST_RUN_FAILURES,
    PERMISSION_CHANGES,
    PRICES,
    SLOW_DASHBOARD_SQL,
    SLOW_QUERY_HOURS_AGO,
    SUSPICIOUS_IP,
    USERS,
    WAREHOUSES,
    WORKSPACES,
    JobSpec,
)

SEED = 20240611
DAYS = 30
SCHEMA_VERSION = 2  # 2: data ends at the hour it is built in (1 ended at 18:00 UTC of its day)
WORKDAY_HOURS = (7, 19)  # ad hoc queries start within these UTC hours

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



def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time()) + timedelta(hours=hour, minutes=minute, seconds=second)


def _rng(*cell: object) -> random.Random:
    """The generator of one cell of the data (a day and a job, say): the same numbers at any build hour."""
    return random.Random("-".join(str(part) for part in (SEED, *cell)))


def data_hour(moment: datetime | None = None) -> datetime:
    """The dataset's now for a moment (default: the current time): the start of its UTC hour, naive."""
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.replace(minute=0, second=0, microsecond=0)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "healthbot"


def dataset_path(now: datetime, data_dir: str | Path | None = None) -> Path:
    directory = Path(data_dir) if data_dir else default_data_dir()
    return directory / f"demo-v{SCHEMA_VERSION}-{SEED}-{data_hour(now):%Y-%m-%dT%H}.sqlite"


def ensure_dataset(now: datetime | None = None, data_dir: str | Path | None = None) -> Path:
    """The dataset file that ends at `now`'s hour, built on first use; older hours' files are removed."""
    now = data_hour(now)
    path = dataset_path(now, data_dir)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".demo-", suffix=".sqlite")
    os.close(fd)
    try:
        db = sqlite3.connect(tmp)
        try:
            build(db, now)
        finally:
            db.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for old in path.parent.glob("demo-v*.sqlite"):  # an open reader keeps its file until it closes it
        if old != path and old.stat().st_mtime < path.stat().st_mtime - 3600:
            old.unlink(missing_ok=True)
    return path


def build(db: sqlite3.Connection, now: datetime) -> None:
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO workspaces VALUES (?, ?)", WORKSPACES)
    db.executemany("INSERT INTO list_prices VALUES (?, ?)", PRICES.items())
    db.executemany(
        "INSERT INTO jobs VALUES (?, ?, ?, ?, ?)",
        [(j.job_id, WORKSPACES[j.workspace][0], j.name, j.owner, j.output_table) for j in JOBS],
    )
    db.executemany("INSERT INTO warehouses VALUES (?, ?, ?)", [(w, WORKSPACES[i][0], n) for w, i, n, _ in WAREHOUSES])
    today = now.date()
    days = [today - timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]
    _jobs_and_usage(db, days, now)
    _queries(db, days, now)
    _audit(db, days, now)
    _freshness(db, now)
    db.commit()


Outcome = tuple[str, str, str | None]


def _runs(day: date, job: JobSpec, outcomes: Sequence[Outcome]) -> list[tuple[datetime, datetime, Outcome]]:
    """The job's runs on a day, one attempt an hour: (start, end, outcome). Same draws for any outcomes."""
    rng = _rng("runs", day, job.job_id)
    start_minute, minutes = rng.randrange(0, 50), [rng.randrange(8, 55) for _ in range(4)]
    runs = []
    for attempt, outcome in enumerate(outcomes):
        start = _at(day, job.hour + attempt, start_minute)
        runs.append((start, start + timedelta(minutes=120 if outcome[0] == "TIMED_OUT" else minutes[attempt]), outcome))
    return runs


def _spike(day: date, job: JobSpec, today: date) -> bool:
    """The planted cost spike: yesterday's nightly_customer_etl (its runs and its spend)."""
    return day == today - timedelta(days=1) and job.name == "nightly_customer_etl"


def _outcomes(day: date, job: JobSpec, now: datetime) -> list[Outcome]:
    """How the job's runs of a day end; none if it has not run that day (yet)."""
    today = now.date()
    planted = LATEST_RUN_FAILURES.get(job.job_id)
    if planted is not None and day >= today - timedelta(days=1):
        # The latest run that has ended by now fails: today's, or yesterday's if today's is not over yet.
        # Today's run comes after it only once that failure is over: until then it has not started.
        latest = today if _runs(today, job, planted)[-1][1] <= now else today - timedelta(days=1)
        if day >= latest:
            return list(planted) if day == latest else []
    if _spike(day, job, today):
        return [("SUCCEEDED", "SUCCESS", None)] * 3  # on all-purpose compute, run three times
    # a rare failure before the last two days, which hold the planted story only
    failed = _rng("fails", day, job.job_id).random() < 0.03 and day < today - timedelta(days=1)
    return [("FAILED", "DRIVER_ERROR", "Driver is temporarily unavailable"), ("SUCCEEDED", "SUCCESS", None)] if failed \
        else [("SUCCEEDED", "SUCCESS", None)]


def _jobs_and_usage(db: sqlite3.Connection, days: list[date], now: datetime) -> None:
    today = now.date()
    elapsed = (now - _at(today, 0)) / timedelta(days=1)  # of today, for spend that accrues all day
    runs: list[tuple[Any, ...]] = []
    usage: list[tuple[Any, ...]] = []
    for day in days:
        for job in JOBS:
            day_runs = _runs(day, job, _outcomes(day, job, now))
            if not day_runs or day_runs[-1][1] > now:
                continue  # not over yet: neither its runs nor its spend are in the system tables
            ws = WORKSPACES[job.workspace][0]
            for start, end, (state, code, message) in day_runs:
                runs.append((900_000 + len(runs) + 1, ws, job.job_id, _ts(start), _ts(end), state, code, message))
            sku, dbus = job.sku, job.dbus_per_run * _rng("dbus", day, job.job_id).uniform(0.85, 1.15)
            if _spike(day, job, today):
                sku, dbus = "PREMIUM_ALL_PURPOSE_COMPUTE", job.dbus_per_run * 9.2
            usage.append((ws, sku, day.isoformat(), round(dbus, 2), job.job_id, None, None))
        share = elapsed if day == today else 1.0
        for warehouse_id, ws_index, _name, dbus in WAREHOUSES:
            weekend = day.weekday() >= 5
            quantity = dbus * _rng("warehouse", day, warehouse_id).uniform(0.9, 1.1) * (0.45 if weekend else 1.0) * share
            if quantity > 0:
                usage.append((WORKSPACES[ws_index][0], "PREMIUM_SERVERLESS_SQL_COMPUTE", day.isoformat(),
                              round(quantity, 2), None, warehouse_id, None))
        for cluster_id, ws_index, dbus in INTERACTIVE:
            quantity = dbus * _rng("cluster", day, cluster_id).uniform(0.8, 1.2) * share
            if quantity > 0:
                usage.append((WORKSPACES[ws_index][0], "PREMIUM_ALL_PURPOSE_COMPUTE", day.isoformat(),
                              round(quantity, 2), None, None, cluster_id))
    db.executemany("INSERT INTO job_run_timeline VALUES (?, ?, ?, ?, ?, ?, ?, ?)", runs)
    db.executemany(
        "INSERT INTO billing_usage (workspace_id, sku_name, usage_date, usage_quantity, job_id, warehouse_id, cluster_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        usage,
    )


def _queries(db: sqlite3.Connection, days: list[date], now: datetime) -> None:
    tables = ["main.sales.orders_silver", "main.finance.revenue_daily", "main.marketing.attribution", "main.ml.churn_scores"]
    rows = []
    for day in days:
        for warehouse_id, ws_index, _name, _dbus in WAREHOUSES:
            rng = _rng("queries", day, warehouse_id)
            for _ in range(60 if day.weekday() < 5 else 20):
                duration = int(rng.lognormvariate(7.2, 1.1))  # median ~1.3 s, a long tail
                status = "FAILED" if rng.random() < 0.02 else "FINISHED"
                text = f"SELECT * FROM {rng.choice(tables)} WHERE event_date >= current_date() - INTERVAL {rng.randrange(1, 30)} DAYS"
                start = _at(day, rng.randrange(*WORKDAY_HOURS), rng.randrange(60), rng.randrange(60))
                row = (WORKSPACES[ws_index][0], warehouse_id, rng.choice(USERS), text, _ts(start), duration, status,
                       duration * rng.randrange(20_000, 200_000))
                if start + timedelta(milliseconds=duration) <= now:
                    rows.append(row)
    rng = _rng("slow-dashboard", now.date())
    for hours_ago in SLOW_QUERY_HOURS_AGO:
        # The planted slow queries: a dashboard's three-way join over bronze events.
        duration = int(rng.uniform(420_000, 760_000))
        start = now - timedelta(hours=hours_ago, minutes=rng.randrange(20, 45))
        rows.append((WORKSPACES[0][0], "wh-bi-serving", "exec-dashboard-sp@example.com", SLOW_DASHBOARD_SQL,
                     _ts(start), duration, "FINISHED", 2_400_000_000_000 + duration * 1000))
    db.executemany(
        "INSERT INTO query_history (workspace_id, warehouse_id, executed_by, statement_text, start_time, "
        "total_duration_ms, execution_status, read_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _audit(db: sqlite3.Connection, days: list[date], now: datetime) -> None:
    rows = []
    normal = [("accounts", "login", 200), ("clusters", "start", 200), ("notebook", "runCommand", 200),
              ("unityCatalog", "getTable", 200), ("accounts", "login", 401), ("unityCatalog", "getTable", 403)]
    for day in days:
        rng = _rng("audit", day)
        for _ in range(120):
            service, action, status = rng.choices(normal, weights=[30, 10, 40, 30, 2, 2])[0]
            moment = _at(day, rng.randrange(24), rng.randrange(60))
            row = (_ts(moment), WORKSPACES[rng.randrange(3)][0], rng.choice(USERS), service, action,
                   f"10.20.{rng.randrange(1, 9)}.{rng.randrange(2, 250)}", status, "")
            if moment <= now:
                rows.append(row)
    for days_ago, hour, who, securable, change in PERMISSION_CHANGES:
        rows.append((_ts(_at(now.date() - timedelta(days=days_ago), hour, 7)), WORKSPACES[0][0], who, "unityCatalog",
                     "updatePermissions", f"10.20.{len(who) % 8 + 1}.{hour * 9}", 200,
                     f"securable={securable} changes={change}"))
    rows.append((_ts(now - GRANT_BEFORE_NOW), WORKSPACES[0][0], "gus.berg@example.com", "accounts",
                 "addPrincipalToGroup", "10.20.3.17", 200, f"group=admins principal={BRUTE_FORCE_USER}"))
    first = now - BRUTE_FORCE_BEFORE_NOW
    for attempt in range(37):  # brute force from one outside address, ending in a success
        rows.append((_ts(first + timedelta(minutes=attempt // 2, seconds=attempt * 7 % 60)), WORKSPACES[0][0],
                     BRUTE_FORCE_USER, "accounts", "login", SUSPICIOUS_IP, 401, ""))
    rows.append((_ts(first + timedelta(minutes=21)), WORKSPACES[0][0], BRUTE_FORCE_USER, "accounts", "login", SUSPICIOUS_IP, 200, ""))
    rows.append((_ts(first + timedelta(minutes=30)), WORKSPACES[0][0], BRUTE_FORCE_USER, "accounts", "generateDbToken",
                 SUSPICIOUS_IP, 200, "lifetime_seconds=7776000"))
    db.executemany("INSERT INTO access_audit (event_time, workspace_id, user_email, service_name, action_name, "
                   "source_ip, status_code, request_params) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _freshness(db: sqlite3.Connection, now: datetime) -> None:
    """Produced tables are as fresh as their job's last success; the failing jobs' tables go stale."""
    rows: list[tuple[Any, ...]] = []
    for job in JOBS:
        if job.output_table is None:
            continue
        last_success = db.execute(
            "SELECT max(period_end_time) FROM job_run_timeline WHERE job_id = ? AND result_state = 'SUCCEEDED'",
            (job.job_id,),
        ).fetchone()[0]
        failed_checks = 2 if job.job_id == "102" else 0
        rows.append((job.output_table, WORKSPACES[job.workspace][0], last_success, 24.0, 1_000_000 + int(job.job_id) * 7919,
                     failed_checks, job.job_id))
    rows.append(("main.finance.fx_rates_daily", WORKSPACES[0][0], _ts(now - timedelta(hours=75)), 24.0, 0, 1, None))
    db.executemany("INSERT INTO table_freshness VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
