"""The demo answers what its data can answer, phrased several ways, and names what was asked: spend by
workspace, SKU, job, warehouse or user; the most expensive queries; a named job against last week; the
jobs' durations; permission changes by principal or securable. Figures are recomputed here with SQL and
arithmetic written independently of agent/demo."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import pytest

from agent.demo import DemoEngine
from tests.test_demo_engine import TODAY, ask, db, engine, money  # noqa: F401 (db, engine: the fixtures)



def spend(db: sqlite3.Connection, key: str, start: str, end: str) -> dict[str, float]:
    prices = dict(db.execute("SELECT sku_name, price_usd_per_dbu FROM list_prices"))
    names = {**dict(db.execute("SELECT workspace_id, workspace_name FROM workspaces")),
             **dict(db.execute("SELECT job_id, name FROM jobs")), **dict(db.execute("SELECT warehouse_id, name FROM warehouses"))}
    out: dict[str, float] = {}
    for ws, sku, day, qty, job, wh in db.execute(
            "SELECT workspace_id, sku_name, usage_date, usage_quantity, job_id, warehouse_id FROM billing_usage"):
        if start <= day <= end:
            name = {"workspace": names[ws], "sku": sku, "job": names.get(job or "", "other"), "warehouse": names.get(wh or "", "other")}[key]
            out[name] = out.get(name, 0.0) + qty * prices[sku]
    return out


@pytest.mark.parametrize(("question", "key", "start"), [
    ("cost by workspace this month", "workspace", TODAY.replace(day=1)),
    ("how much did each workspace spend month to date?", "workspace", TODAY.replace(day=1)),
    ("spend per SKU in the last 7 days", "sku", TODAY - timedelta(days=6)),
    ("which SKUs cost us the most?", "sku", TODAY - timedelta(days=6)),
    ("what are our most expensive warehouses?", "warehouse", TODAY - timedelta(days=6)),
    ("how much did each job cost yesterday?", "job", TODAY - timedelta(days=1)),
])
def test_spend_by_a_dimension(engine: DemoEngine, db: sqlite3.Connection, question: str, key: str, start) -> None:  # type: ignore[no-untyped-def]
    end = TODAY - timedelta(days=1) if "yesterday" in question else TODAY
    expected = spend(db, key, start.isoformat(), end.isoformat())
    answer = ask(engine, question)
    label = {"sku": "SKU"}.get(key, key)
    assert answer.content.startswith(f"**Spend by {label} ") and answer.domains == ["costs"]
    assert money(answer.content)[0] == round(sum(expected.values()))
    top = max((name for name in expected if name != "other"), key=expected.__getitem__)
    assert f"The most is **{top}** with ${round(expected[top]):,}" in answer.content
    assert (answer.confidence or 0) > 0.8 and answer.charts and answer.charts[0]["type"] == "bar"


def test_spend_by_user_splits_warehouses_by_query_time(engine: DemoEngine, db: sqlite3.Connection) -> None:
    start, end = (TODAY - timedelta(days=6)).isoformat(), TODAY.isoformat()
    prices = dict(db.execute("SELECT sku_name, price_usd_per_dbu FROM list_prices"))
    owners = dict(db.execute("SELECT job_id, owner FROM jobs"))
    busy: dict[tuple[str, str], dict[str, int]] = {}
    for day, wh, who, ms in db.execute("SELECT substr(start_time, 1, 10), warehouse_id, executed_by, total_duration_ms FROM query_history"):
        busy.setdefault((day, wh), {}).setdefault(who, 0)
        busy[(day, wh)][who] += ms
    per_user: dict[str, float] = {}
    for day, sku, qty, job, wh in db.execute("SELECT usage_date, sku_name, usage_quantity, job_id, warehouse_id FROM billing_usage"):
        if not start <= day <= end:
            continue
        cost = qty * prices[sku]
        if job:
            per_user[owners[job]] = per_user.get(owners[job], 0.0) + cost
        elif wh and (day, wh) in busy:
            total = sum(busy[(day, wh)].values())
            for who, ms in busy[(day, wh)].items():
                per_user[who] = per_user.get(who, 0.0) + cost * ms / total
    top = max(per_user, key=per_user.__getitem__)
    for question in ("which user spends the most?", "cost by user", "who spent the most in the last 7 days?",
                     "how much did ben spend?"):
        answer = ask(engine, question)
        assert f"The most is **{top}** with ${round(per_user[top]):,}" in answer.content, question
        assert "no user in billing" in answer.content


@pytest.mark.parametrize("question", ["is the nightly ETL slower than last week?", "how long does nightly_customer_etl take?",
                                      "has the nightly customer etl job gotten slower?"])
def test_a_named_job_against_the_week_before(engine: DemoEngine, db: sqlite3.Connection, question: str) -> None:
    runs = db.execute("SELECT r.period_start_time, r.period_end_time, r.result_state FROM job_run_timeline r "
                      "JOIN jobs j ON j.job_id = r.job_id WHERE j.name = 'nightly_customer_etl'").fetchall()

    def minutes(first: int, last: int) -> float:
        window = [(datetime.fromisoformat(e) - datetime.fromisoformat(s)).total_seconds() / 60 for s, e, _ in runs
                  if (TODAY - timedelta(days=first)).isoformat() <= s[:10] <= (TODAY - timedelta(days=last)).isoformat()]
        return sum(window) / len(window)

    answer = ask(engine, question)
    assert answer.content.startswith(f"**nightly_customer_etl took {minutes(6, 0):.1f} min a run in the last 7 days")
    assert f"against {minutes(13, 7):.1f} min the 7 days before" in answer.content and answer.domains == ["jobs"]
    assert (answer.confidence or 0) > 0.8


@pytest.mark.parametrize("question", ["is payroll_sync slower than last week?", "why did `hr_export_daily` fail?"])
def test_a_job_the_data_does_not_have_is_said_so(engine: DemoEngine, question: str) -> None:
    answer = ask(engine, question)
    assert "I find no job named" in answer.content and "nightly_customer_etl" in answer.content
    assert (answer.confidence or 0) < 0.5 and "|" not in answer.content


def test_job_durations(engine: DemoEngine, db: sqlite3.Connection) -> None:
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    by_job: dict[str, list[float]] = {}
    for name, s, e in db.execute("SELECT j.name, r.period_start_time, r.period_end_time FROM job_run_timeline r "
                                 "JOIN jobs j ON j.job_id = r.job_id WHERE substr(r.period_start_time, 1, 10) = ?", (yesterday,)):
        by_job.setdefault(name, []).append((datetime.fromisoformat(e) - datetime.fromisoformat(s)).total_seconds() / 60)
    longest = max(by_job, key=lambda n: sum(by_job[n]) / len(by_job[n]))
    for question in ("which job ran longest yesterday?", "what was the slowest job yesterday?"):
        answer = ask(engine, question)
        average = sum(by_job[longest]) / len(by_job[longest])
        assert answer.content.startswith(f"**{longest} ran longest yesterday: {average:.1f} min a run**"), question


@pytest.mark.parametrize("question", ["who changed permissions on the finance catalog?", "any grants on the finance schema?",
                                      "who granted access to main.finance?"])
def test_permission_changes_on_a_securable(engine: DemoEngine, db: sqlite3.Connection, question: str) -> None:
    changes = db.execute("SELECT user_email, request_params FROM access_audit WHERE action_name = 'updatePermissions' "
                         "AND request_params LIKE '%finance%'").fetchall()
    answer = ask(engine, question)
    assert f"**{len(changes)} access change(s)" in answer.content and answer.domains == ["security"]
    assert all(who in answer.content and params.split("changes=")[1] in answer.content for who, params in changes)


@pytest.mark.parametrize("question", ["who granted jane admin rights?", "failed logins for contractor.jane@example.com?",
                                      "what permissions were given to jane?"])
def test_access_of_a_principal(engine: DemoEngine, db: sqlite3.Connection, question: str) -> None:
    failures = db.execute("SELECT count(*) FROM access_audit WHERE user_email = 'contractor.jane@example.com' "
                          "AND action_name = 'login' AND status_code = 401").fetchone()[0]
    answer = ask(engine, question)
    assert "of `contractor.jane@example.com`" in answer.content and f"{failures} failed login(s)" in answer.content
    assert "addPrincipalToGroup" in answer.content and "group=admins" in answer.content


@pytest.mark.parametrize("question", ["most expensive queries this week", "which queries cost the most?"])
def test_most_expensive_queries(engine: DemoEngine, question: str) -> None:
    answer = ask(engine, question)
    assert answer.content.startswith("**The most expensive queries") and "exec-dashboard-sp@example.com" in answer.content
    assert "share of the query time" in answer.content  # says how a query's cost is estimated
