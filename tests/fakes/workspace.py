"""A fake Databricks workspace beyond Model Serving: SQL alerts v2, job runs, Lakebase credentials, SCIM.

Answers in the shapes of tests/fixtures/databricks (alerts v2 list, runs list 2.2, database
credentials, SCIM users and groups), pages and filters like the real API, and records every call, so databricks-sdk's
real client can be pointed at it (`DATABRICKS_HOST`).
"""

from __future__ import annotations

import copy
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from tests.fakes.serving import FakeServing, Scripted, fixture

ACTIVE_STATES = {"QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY"}
ALERT_TEMPLATE = fixture("sql_alerts_v2_list_response.json")["alerts"][0]
RUN_TEMPLATE = fixture("jobs_runs_list_2_2_response.json")["runs"][0]
RUNS_PAGE_MAX = 25  # the Jobs API's own maximum page size
SCIM_USER = fixture("scim_users_filter_one_active.json")["Resources"][0]
SCIM_GROUP = fixture("scim_groups_filter_platform_admins.json")["Resources"][0]
SCIM_LIST = {k: v for k, v in fixture("scim_users_filter_empty.json").items() if k != "Resources"}


def alert_v2(alert_id: str, name: str = "Daily cost spike", state: str = "TRIGGERED", **extra: Any) -> dict[str, Any]:
    alert = copy.deepcopy(ALERT_TEMPLATE)
    alert.update({"id": alert_id, "display_name": name, **extra})
    alert["evaluation"]["state"] = state
    return alert


def job_run(job_id: int, run_id: int, *, name: str = "etl_nightly", result: str | None = "FAILED",
            start_ms: int | None = None, end_ms: int | None = None, message: str = "Task ingest failed") -> dict[str, Any]:
    """A run in the runs-list shape; `result=None` is a run still going."""
    run = copy.deepcopy(RUN_TEMPLATE)
    start = start_ms if start_ms is not None else int(time.time() * 1000)
    run.update({"job_id": job_id, "run_id": run_id, "run_name": name, "start_time": start,
                "run_page_url": f"https://dbc-01234567-89ab.cloud.databricks.com/jobs/{job_id}/runs/{run_id}"})
    if result is None:
        run["state"] = {"life_cycle_state": "RUNNING", "state_message": ""}
        run["status"] = {"state": "RUNNING"}
        run.pop("end_time", None)
    else:
        run["end_time"] = end_ms if end_ms is not None else start + 1000
        run["state"] = {"life_cycle_state": "TERMINATED", "result_state": result, "state_message": message}
        run["status"]["termination_details"]["message"] = message if result != "SUCCESS" else ""
    return run


def scim_user(email: str, *, groups: tuple[str, ...] = (), active: bool = True, user_id: str = "") -> dict[str, Any]:
    user = copy.deepcopy(SCIM_USER)
    user.update(id=user_id or f"70000000{abs(hash(email)) % 10**8:08d}", userName=email, active=active,
                emails=[{"type": "work", "value": email, "primary": True}], displayName=email.split("@")[0])
    user["groups"] = [{"display": g, "type": "direct", "value": f"g-{g}", "$ref": f"Groups/g-{g}"} for g in groups]
    return user


def scim_group(name: str, *, members: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> dict[str, Any]:
    """A group with user members (ids) and nested groups (names)."""
    group = copy.deepcopy(SCIM_GROUP)
    group.update(id=f"g-{name}", displayName=name)
    group["members"] = ([{"display": m, "value": m, "$ref": f"Users/{m}"} for m in members]
                        + [{"display": g, "value": f"g-{g}", "$ref": f"Groups/g-{g}"} for g in groups])
    return group


@dataclass
class FakeWorkspace(FakeServing):
    alerts: list[dict[str, Any]] = field(default_factory=list)
    job_runs: list[dict[str, Any]] = field(default_factory=list)  # what runs/list lists (`runs`: runs/get)
    alerts_page_max: int = 50
    errors: dict[str, deque[Scripted]] = field(default_factory=dict)  # path → scripted failures, consumed first
    credential_ttl_s: float = 3600.0
    credentials_issued: list[str] = field(default_factory=list)
    instances: set[str] = field(default_factory=lambda: {"healthbot-pg"})
    # Lakebase Autoscaling: endpoint name -> GET /api/2.0/postgres/{name} (postgres_endpoint_get_response.json)
    pg_endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    me: str = "healthbot-sp@ghostbusters.example.com"  # SCIM Me: whom credentials are minted for
    scim_users: list[dict[str, Any]] = field(default_factory=list)
    scim_groups: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)  # job id -> jobs/get answer (retry settings)

    def build(self, app: web.Application) -> None:
        super().build(app)
        app.router.add_get("/api/2.0/alerts", self._list_alerts)
        app.router.add_get("/api/2.2/jobs/runs/list", self._list_runs)
        app.router.add_get("/api/2.2/jobs/get", self._get_job)
        app.router.add_post("/api/2.0/database/credentials", self._credentials)
        app.router.add_post("/api/2.0/postgres/credentials", self._pg_credentials)
        app.router.add_get("/api/2.0/postgres/{name:projects/.*}", self._pg_endpoint)
        app.router.add_get("/api/2.0/preview/scim/v2/Me", self._scim_me)
        app.router.add_get("/api/2.0/preview/scim/v2/Users", self._scim_list)
        app.router.add_get("/api/2.0/preview/scim/v2/Groups", self._scim_list)
        app.router.add_get("/api/2.0/preview/scim/v2/Groups/{id}", self._scim_group)

    def fail(self, path: str, *scripted: Scripted) -> None:
        self.errors.setdefault(path, deque()).extend(scripted)

    def _scripted_error(self, request: web.Request) -> web.Response | None:
        if not self._authorized(request):
            return web.json_response({"error_code": "UNAUTHENTICATED", "message": "bad token"}, status=401)
        queue = self.errors.get(request.path)
        if queue:
            failure = queue.popleft()
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        return None

    @staticmethod
    def _page(items: list[Any], request: web.Request, size: int) -> tuple[list[Any], str]:
        offset = int(request.query.get("page_token") or 0)
        page = items[offset: offset + size]
        return page, str(offset + size) if offset + size < len(items) else ""

    async def _list_alerts(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        size = min(int(request.query.get("page_size") or self.alerts_page_max), self.alerts_page_max)
        page, token = self._page(self.alerts, request, size)
        body: dict[str, Any] = {"alerts": page}
        if token:
            body["next_page_token"] = token
        return web.json_response(body)

    async def _list_runs(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        query = request.query
        since = int(query.get("start_time_from") or 0)
        runs = [run for run in self.job_runs if run["start_time"] >= since]
        if query.get("completed_only") == "true":
            runs = [run for run in runs if run["state"]["life_cycle_state"] not in ACTIVE_STATES]
        if query.get("active_only") == "true":
            runs = [run for run in runs if run["state"]["life_cycle_state"] in ACTIVE_STATES]
        runs.sort(key=lambda run: run["start_time"], reverse=True)  # newest first, as documented
        page, token = self._page(runs, request, min(int(query.get("limit") or RUNS_PAGE_MAX), RUNS_PAGE_MAX))
        body: dict[str, Any] = {"runs": page, "has_more": bool(token)}
        if token:
            body["next_page_token"] = token
        return web.json_response(body)

    async def _get_job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(int(request.query.get("job_id") or 0))
        if job is None:
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Job not found"}, status=404)
        return web.json_response(job)

    async def _credentials(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        names = (await request.json()).get("instance_names") or []
        if not names or any(name not in self.instances for name in names):
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST",
                                      "message": f"Database instance '{names[0] if names else ''}' not found"}, status=404)
        return self._credential("expiration_time")

    async def _pg_credentials(self, request: web.Request) -> web.Response:
        """postgres_credentials_response.json: `token` and `expire_time` (not `expiration_time`)."""
        if (failure := self._scripted_error(request)) is not None:
            return failure
        endpoint = (await request.json()).get("endpoint") or ""
        if endpoint not in self.pg_endpoints:
            return web.json_response({"error_code": "NOT_FOUND", "message": f"Endpoint '{endpoint}' not found"},
                                     status=404)
        return self._credential("expire_time")

    def _credential(self, expiry_field: str) -> web.Response:
        """A fresh token, as both credential APIs mint it; they name its expiry differently."""
        token = f"lakebase-token-{len(self.credentials_issued) + 1}"
        self.credentials_issued.append(token)
        expires = datetime.fromtimestamp(time.time() + self.credential_ttl_s, timezone.utc)
        return web.json_response({"token": token, expiry_field: expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})

    async def _pg_endpoint(self, request: web.Request) -> web.Response:
        if (failure := self._scripted_error(request)) is not None:
            return failure
        endpoint = self.pg_endpoints.get(request.match_info["name"])
        if endpoint is None:
            return web.json_response({"error_code": "NOT_FOUND", "message": "Endpoint not found"}, status=404)
        return web.json_response(endpoint)

    async def _scim_me(self, request: web.Request) -> web.Response:
        return web.json_response({**SCIM_USER, "userName": self.me, "emails": [{"value": self.me, "primary": True}]})

    async def _scim_list(self, request: web.Request) -> web.Response:
        """Users / Groups with the one filter healthbot sends (`userName eq "…"`, `displayName eq "…"`),
        matched case-insensitively like Databricks, paged by startIndex / count."""
        if (failure := self._scripted_error(request)) is not None:
            return failure
        users = request.path.endswith("/Users")
        items, key = (self.scim_users, "userName") if users else (self.scim_groups, "displayName")
        match = re.fullmatch(r'(\w+) eq "([^"]*)"', request.query.get("filter", ""))
        if match:
            items = [item for item in items if str(item.get(match.group(1), "")).lower() == match.group(2).lower()]
        start, count = int(request.query.get("startIndex") or 1), int(request.query.get("count") or 100)
        page = items[start - 1: start - 1 + count]
        body: dict[str, Any] = {**SCIM_LIST, "totalResults": len(items), "itemsPerPage": len(page), "startIndex": start}
        if page:
            body["Resources"] = page
        return web.json_response(body)

    async def _scim_group(self, request: web.Request) -> web.Response:
        group = next((g for g in self.scim_groups if g["id"] == request.match_info["id"]), None)
        if group is None:
            return web.json_response({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                      "detail": "Group not found", "status": "404"}, status=404)
        return web.json_response(group)
