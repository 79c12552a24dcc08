"""Job notifications carry no error text: fetch the run (databricks-sdk Jobs API) and add it.

Runs on a worker thread (the SDK is synchronous). Any failure leaves the alert as the webhook sent
it: enrichment is a bonus, never a reason to hold an alert back.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.alerts.alert_charts import runs_chart
from bot.alerts.model import Alert
from bot.workspace import Workspace

log = logging.getLogger(__name__)

RUNS_CHARTED = 20


class JobRunEnricher:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    @staticmethod
    def _describe(client: Any, run_id: int) -> tuple[str, str]:
        run = client.jobs.get_run(run_id)
        parts = []
        message = (run.status.termination_details.message if run.status and run.status.termination_details else None) \
            or (run.state.state_message if run.state else None)
        if message:
            parts.append(message)
        failed = [task for task in run.tasks or [] if task.state and task.state.result_state
                  and task.state.result_state.value not in ("SUCCESS", "SKIPPED")]
        for task in failed[:5]:
            reason = task.state.state_message if task.state and task.state.state_message else task.state.result_state.value
            parts.append(f"task {task.task_key} {task.state.result_state.value}: {reason}")
        return "; ".join(parts), run.run_page_url or ""

    @staticmethod
    def _last_runs(client: Any, job_id: int) -> list[Any]:
        runs = []
        for run in client.jobs.list_runs(job_id=job_id, completed_only=True, limit=RUNS_CHARTED):
            runs.append(run)
            if len(runs) >= RUNS_CHARTED:
                break
        return runs

    async def __call__(self, alert: Alert) -> Alert:
        """The run's error and failed tasks, and the chart of the job's last runs: each on its own (a
        failure of one leaves the alert as it was for that part)."""
        update: dict[str, Any] = {}
        try:
            run_id = int(alert.run_id or alert.key.split(":")[2])  # webhook keys: job:<job id>:<run id>
            detail, page = await self.workspace.call(lambda client: self._describe(client, run_id))
        except Exception as exc:  # SDK errors, no workspace, a run already deleted…
            log.info("could not enrich %s: %s", alert.key, str(exc)[:200])
        else:
            links = dict(alert.links)
            if page:
                links["Run"] = page
            if alert.detail and alert.detail not in detail:  # pulled runs already carry their message
                detail = f"{alert.detail}; {detail}" if detail else alert.detail
            update.update(detail=detail, links=links)
        try:
            job_id = int(alert.key.split(":")[1])
            chart = runs_chart(alert.name, await self.workspace.call(lambda client: self._last_runs(client, job_id)))
            if chart:
                update["chart"] = chart
        except Exception as exc:  # the chart is a bonus on the bonus
            log.info("no run chart for %s: %s", alert.key, str(exc)[:200])
        return alert.model_copy(update=update) if update else alert
