"""Job notifications carry no error text: fetch the run (databricks-sdk Jobs API) and add it.

Runs on a worker thread (the SDK is synchronous). Any failure leaves the alert as the webhook sent
it: enrichment is a bonus, never a reason to hold an alert back.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.alerts.model import Alert
from bot.workspace import Workspace

log = logging.getLogger(__name__)


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

    async def __call__(self, alert: Alert) -> Alert:
        try:
            run_id = int(alert.run_id or alert.key.split(":")[2])  # webhook keys: job:<job id>:<run id>
            detail, page = await self.workspace.call(lambda client: self._describe(client, run_id))
        except Exception as exc:  # SDK errors, no workspace, a run already deleted…
            log.info("could not enrich %s: %s", alert.key, str(exc)[:200])
            return alert
        links = dict(alert.links)
        if page:
            links["Run"] = page
        if alert.detail and alert.detail not in detail:  # pulled runs already carry their message
            detail = f"{alert.detail}; {detail}" if detail else alert.detail
        return alert.model_copy(update={"detail": detail, "links": links})
