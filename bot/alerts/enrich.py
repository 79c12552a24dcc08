"""Job notifications carry no error text: fetch the run (databricks-sdk Jobs API) and add it.

Runs on a worker thread (the SDK is synchronous). Any failure leaves the alert as the webhook sent
it: enrichment is a bonus, never a reason to hold an alert back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.alerts.model import Alert

log = logging.getLogger(__name__)


class JobRunEnricher:
    def __init__(self, config_factory: Callable[[], Any]) -> None:
        self._config_factory = config_factory
        self._client: Any = None

    def _workspace(self) -> Any:
        if self._client is None:
            from databricks.sdk import WorkspaceClient

            self._client = WorkspaceClient(config=self._config_factory())
        return self._client

    def _describe(self, run_id: int) -> tuple[str, str]:
        run = self._workspace().jobs.get_run(run_id)
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
            run_id = int(alert.key.split(":")[2])
            detail, page = await asyncio.to_thread(self._describe, run_id)
        except Exception as exc:  # SDK errors, no workspace, a run already deleted…
            log.info("could not enrich %s: %s", alert.key, str(exc)[:200])
            return alert
        links = dict(alert.links)
        if page:
            links["Run"] = page
        return alert.model_copy(update={"detail": detail or alert.detail, "links": links})
