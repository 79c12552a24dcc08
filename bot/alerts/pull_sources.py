"""What the alert poller lists in the workspace, and how a listing becomes alerts.

Each source compares what the API says now with what was last observed (kept in the store, and
in memory while this replica holds the poll lease) and emits only changes. Every change is written
with compare-and-set in the same transaction as the alert's outbox rows: a webhook or another
replica that got there first makes the write fail, and the source decides again on what is stored.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from bot.alerts.dispatch import AlertDispatcher
from bot.alerts.model import Alert
from bot.alerts.parse import parse_alert_v2, parse_job_run
from bot.store.base import Change, Fence
from bot.workspace import Workspace

log = logging.getLogger(__name__)

ALERT_PAGE_SIZE = 100
FAILED_RESULTS = frozenset({"FAILED", "TIMEDOUT", "INTERNAL_ERROR", "UPSTREAM_FAILED"})
SUCCESS_RESULTS = frozenset({"SUCCESS", "SUCCESS_WITH_FAILURES"})
RUN_LOOKBACK_S = 24 * 3600.0  # after a long outage, look back at most a day
SKEW_MARGIN_S = 300.0  # list runs a little before the cursor: the workspace's clock is not ours
RETRY_CACHE_S = 600.0
MAX_RUNS_PER_CYCLE = 25_000
JOBS_CURSOR = "cursor:jobs"


class PullSource(Protocol):
    name: str
    permission: str  # what the App's principal needs, for 403 messages

    async def load(self) -> None:
        """Read what was last observed (on taking the lease: another replica may have polled)."""
        ...

    async def cycle(self, fence: Fence) -> int:
        """One poll; returns how many alerts it emitted."""
        ...


def _value(enum: Any) -> str:
    return str(getattr(enum, "value", enum) or "")


class _ObservingSource:
    prefix = ""

    def __init__(self, *, dispatcher: AlertDispatcher, workspace: Workspace, clock: Callable[[], float] = time.time) -> None:
        self.dispatcher = dispatcher
        self.workspace = workspace
        self.clock = clock
        self.known: dict[str, str] = {}

    async def load(self) -> None:
        self.known = {key: state for key, (state, _) in (await self.dispatcher.alerts.observed(self.prefix)).items()}

    async def _stored(self, key: str) -> str | None:
        found = (await self.dispatcher.alerts.observed(key)).get(key)
        return found[0] if found is not None else None


class SqlAlertSource(_ObservingSource):
    """`alerts_v2.list_alerts` (GET /api/2.0/alerts, every page). TRIGGERED / ERROR open or update the
    thread, OK resolves it, UNKNOWN is ignored; on first sight only TRIGGERED / ERROR post."""

    name = "sql_alerts"
    permission = "CAN_VIEW on the SQL alerts to watch (or workspace-wide read)"
    prefix = "sql:"
    async def load(self) -> None:
        await super().load()
        self.listed: set[str] = set()  # keys the last listing showed (since this replica took the lease)

    async def cycle(self, fence: Fence) -> int:
        alerts = await self.workspace.call(lambda client: list(client.alerts_v2.list_alerts(page_size=ALERT_PAGE_SIZE)))
        host, now, found = self.workspace.host, self.clock(), 0
        present: set[str] = set()
        quiet: list[tuple[Change, Any]] = []
        for alert in alerts:
            if not alert.id or _value(alert.lifecycle_state) not in ("", "ACTIVE"):
                continue  # deleted or trashed: forgotten below
            key = f"sql:{alert.id}"
            present.add(key)
            state = _value(alert.evaluation.state if alert.evaluation else None) or "UNKNOWN"
            previous = self.known.get(key)
            if state == previous or state == "UNKNOWN":
                continue
            if previous is None and state == "OK":
                quiet.append((Change(key, None, state, now), alert))  # seen OK first: remember, post nothing
            else:
                found += await self._apply(fence, key, state, alert, host)
        if quiet and await self.dispatcher.observe([change for change, _ in quiet], fence=fence):
            self.known.update({change.key: str(change.state) for change, _ in quiet})
        elif quiet:  # someone wrote one of them first: settle each on what is stored
            for change, alert in quiet:
                found += await self._apply(fence, change.key, str(change.state), alert, host)
        # Forget what was listed before and is gone now (deleted, trashed). Not what the list never
        # showed: a webhook may have reported an alert before the list shows it.
        for key in [key for key in self.listed - present if key in self.known]:
            await self.dispatcher.observe([Change(key, self.known.pop(key), None)], fence=fence)
        self.listed = present
        return found

    async def _apply(self, fence: Fence, key: str, state: str, listed: Any, host: str) -> int:
        for _ in range(3):
            previous = self.known.get(key)
            if state == previous:
                return 0
            post = previous is not None or state in ("TRIGGERED", "ERROR")
            alert = self._parse(listed, host) if post else None
            if await self.dispatcher.observe([Change(key, previous, state, self.clock())], fence=fence, alert=alert):
                self.known[key] = state
                return int(alert is not None)
            stored = await self._stored(key)
            if stored is None:
                self.known.pop(key, None)
            else:
                self.known[key] = stored
        log.warning("alert %s kept changing under the poller; will look again next cycle", key)
        return 0

    @staticmethod
    def _parse(listed: Any, host: str) -> Alert | None:
        try:
            return parse_alert_v2(listed.as_dict(), workspace_host=host)
        except ValueError as exc:
            log.warning("unreadable alert from the alerts API (%s): recorded, not posted", exc)
            return None


class JobRunSource(_ObservingSource):
    """`jobs.list_runs(completed_only=True, start_time_from=cursor)` (GET /api/2.2/jobs/runs/list, every
    page). A failed run opens or updates its job's thread (`job:<job id>`); the job's next successful
    run resolves it; other results are ignored. Runs still active are remembered (`active:<run id>`),
    and one that started before the window and has finished since is fetched by id, so a long run
    that fails later is not skipped while the window stays a few minutes wide."""

    name = "jobs"
    permission = "CAN_VIEW on the jobs to watch"
    prefix = "job:"

    def __init__(self, *, globs: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.globs = globs
        self.cursor: float | None = None
        self.seen_runs: set[str] = set()
        self.active: set[str] = set()
        self._retries: dict[int, tuple[float, int]] = {}  # job id -> (valid until, max_retries)

    async def load(self) -> None:
        await super().load()
        store = self.dispatcher.alerts
        self.seen_runs = set((await store.observed("run:")).keys())
        self.active = {key.removeprefix("active:") for key in await store.observed("active:")}
        stored = (await store.observed(JOBS_CURSOR)).get(JOBS_CURSOR)
        self.cursor = float(stored[0]) if stored is not None else None

    def _watched(self, run: Any) -> bool:
        return not self.globs or any(fnmatch.fnmatchcase(run.run_name or "", glob) for glob in self.globs)

    async def cycle(self, fence: Fence) -> int:
        now, store = self.clock(), self.dispatcher.alerts
        if self.cursor is None:  # the first start begins now: older runs are not posted
            self.cursor = now
            await store.remember([(JOBS_CURSOR, repr(now), now)], fence=fence)
        since = max(self.cursor - SKEW_MARGIN_S, now - RUN_LOOKBACK_S)
        runs, active = await self.workspace.call(lambda client: self._list(client, since))
        fresh = {str(run.run_id): run for run in runs
                 if run.run_id and run.job_id and self._watched(run) and f"run:{run.run_id}" not in self.seen_runs}
        gone = [run_id for run_id in self.active if run_id not in active and run_id not in fresh]
        if gone:  # active at the last poll, not any more, and too old to be in the window: fetch them
            for run in await self.workspace.call(lambda client: self._get(client, gone)):
                fresh[str(run.run_id)] = run
        found, quiet = 0, []
        for run in sorted(fresh.values(), key=lambda run: run.end_time or 0):  # the order they finished in
            if f"run:{run.run_id}" in self.seen_runs:
                continue
            emitted = await self._apply(fence, run)
            if emitted is None:
                quiet.append((f"run:{run.run_id}", _result(run) or "?", (run.start_time or 0) / 1000))
            found += emitted or 0
        await self._save(fence, quiet, {run_id: start for run_id, start in active.items() if run_id not in self.active},
                         [run_id for run_id in self.active if run_id not in active])
        cursor = max(self.cursor, now)
        await store.remember([(JOBS_CURSOR, repr(cursor), now)], fence=fence)
        self.cursor = cursor
        if await store.forget_before("run:", since - SKEW_MARGIN_S, fence=fence):
            self.seen_runs = set((await store.observed("run:")).keys())
        return found

    async def _save(self, fence: Fence, quiet: list[tuple[str, str, float]], started: dict[str, float],
                    ended: list[str]) -> None:
        """Runs that posted nothing, runs newly active, runs no longer active: one transaction each kind."""
        store = self.dispatcher.alerts
        if quiet or started:
            await store.remember(quiet + [(f"active:{run_id}", "RUNNING", start) for run_id, start in started.items()],
                                 fence=fence)
            self.seen_runs.update(key for key, _, _ in quiet)
        if ended:
            await store.observe([Change(f"active:{run_id}", "RUNNING", None) for run_id in ended], fence=fence)
        self.active = (self.active | set(started)) - set(ended)

    def _list(self, client: Any, since: float) -> tuple[list[Any], dict[str, float]]:
        runs = []
        for run in client.jobs.list_runs(completed_only=True, start_time_from=int(since * 1000)):
            runs.append(run)
            if len(runs) >= MAX_RUNS_PER_CYCLE:
                log.warning("more than %d runs finished since the last poll: older ones are skipped", MAX_RUNS_PER_CYCLE)
                break
        active = {str(run.run_id): (run.start_time or 0) / 1000 for run in client.jobs.list_runs(active_only=True)
                  if run.run_id and self._watched(run)}
        return runs, active

    @staticmethod
    def _get(client: Any, run_ids: list[str]) -> list[Any]:
        from databricks.sdk.errors import NotFound

        finished = []
        for run_id in run_ids:
            try:
                run = client.jobs.get_run(int(run_id))
            except NotFound:  # deleted while it ran: nothing to report
                continue
            if run.end_time:
                finished.append(run)
        return finished

    async def _will_retry(self, run: Any) -> bool:
        """A failed attempt the job will retry is not an alert; its last attempt is. Retries are runs with
        an incrementing `attempt_number` up to the tasks' `max_retries` (jobs.get, cached 10 minutes);
        -1 (retry forever) counts every failure, so a job failing for ever still alerts."""
        cached = self._retries.get(run.job_id)
        if cached is None or cached[0] < self.clock():
            try:
                job = await self.workspace.call(lambda client: client.jobs.get(run.job_id))
                tasks = (job.settings.tasks if job.settings else None) or []
                limit = max((t.max_retries or 0 for t in tasks), default=0)
            except Exception as exc:  # no permission to read the job, or it is gone: no retries known
                log.info("jobs.get %s failed (%s): its failed runs are alerts", run.job_id, type(exc).__name__)
                limit = 0
            cached = self._retries[run.job_id] = (self.clock() + RETRY_CACHE_S, limit)
        return cached[1] > 0 and (run.attempt_number or 0) < cached[1]

    async def _apply(self, fence: Fence, run: Any) -> int | None:
        """1 when the run posted, 0 when it was already handled, None when it posts nothing."""
        result, run_key, job_key = _result(run), f"run:{run.run_id}", f"job:{run.job_id}"
        if result in FAILED_RESULTS and await self._will_retry(run):
            log.info("run %s of job %s failed and will be retried: not an alert yet", run.run_id, run.job_id)
            return None
        at = (run.start_time or 0) / 1000
        for _ in range(3):
            previous = self.known.get(job_key)
            if result in FAILED_RESULTS:
                changes, state = [Change(run_key, None, result, at), Change(job_key, previous, "failed", at)], "failed"
            elif result in SUCCESS_RESULTS and previous == "failed":
                changes, state = [Change(run_key, None, result, at), Change(job_key, previous, None, at)], None
            else:
                return None
            try:
                alert = parse_job_run(run.as_dict(), failed=state is not None)
            except ValueError as exc:
                log.warning("unreadable run from the jobs API (%s): skipped", exc)
                return None
            if await self.dispatcher.observe(changes, fence=fence, alert=alert):
                self.seen_runs.add(run_key)
                if state is None:
                    self.known.pop(job_key, None)
                else:
                    self.known[job_key] = state
                return 1
            if await self._stored(run_key) is not None:  # another replica (or our last life) handled it
                self.seen_runs.add(run_key)
                return 0
            stored = await self._stored(job_key)
            if stored is None:
                self.known.pop(job_key, None)
            else:
                self.known[job_key] = stored
        return 0


def _result(run: Any) -> str:
    state = run.state
    if state is None:
        return ""
    if _value(state.life_cycle_state) == "INTERNAL_ERROR":
        return "INTERNAL_ERROR"
    return _value(state.result_state)
