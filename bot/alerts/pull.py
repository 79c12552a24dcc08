"""Pull alerts from the workspace, for where webhooks cannot reach healthbot (a Databricks App).

One poller in the fleet: each replica tries to take the `alert-pull` lease in the store every half
interval; the holder renews it every poll, and when it dies another replica takes over within two
intervals. The lease's fencing token goes with every write, so a holder that stalled past its
lease cannot post or move a cursor any more. What was last seen lives in the store, so a restart or
a takeover neither re-posts nor skips.

Failures are visible, never silent: a 403 names the permission the App's principal lacks in
`/health` and `healthbot doctor`; 429 / 5xx (after the SDK's own retries) back off, honouring
Retry-After; a failed cycle leaves the stored state as it was.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bot.alerts.dispatch import AlertDispatcher
from bot.alerts.pull_sources import JobRunSource, PullSource, SqlAlertSource
from bot.background import LeasedPoller
from bot.ops.health import Check
from bot.store.base import Fence, LeaseLost
from bot.workspace import Workspace, describe_error

log = logging.getLogger(__name__)

LEASE_NAME = "alert-pull"
MAX_BACKOFF_S = 900.0
STALE_AFTER_INTERVALS = 3


@dataclass
class SourceStatus:
    polls: int = 0
    errors: int = 0
    found: int = 0
    consecutive_errors: int = 0
    last_success: float | None = None
    last_error: str = ""
    retry_at: float = 0.0


class AlertPuller(LeasedPoller):
    what = "alert poll"

    def __init__(self, *, dispatcher: AlertDispatcher, workspace: Workspace, sources: list[str], interval_s: float,
                 job_globs: list[str] | None = None, holder: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.dispatcher = dispatcher
        self.interval_s = interval_s
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        kinds: dict[str, Callable[[], PullSource]] = {
            "sql_alerts": lambda: SqlAlertSource(dispatcher=dispatcher, workspace=workspace, clock=clock),
            "jobs": lambda: JobRunSource(dispatcher=dispatcher, workspace=workspace, clock=clock, globs=job_globs or []),
        }
        self.sources = [kinds[name]() for name in sources]
        self.status = {source.name: SourceStatus() for source in self.sources}
        self.fence: Fence | None = None
        self.leases = dispatcher.alerts
        self.started = clock()

    @property
    def lease_ttl_s(self) -> float:
        """Renewed every interval; standbys look every half interval: a dead holder is replaced within
        two intervals."""
        return self.interval_s * 1.5

    async def poll_once(self) -> None:
        for source in self.sources:
            fence = await self.dispatcher.alerts.take_lease(LEASE_NAME, self.holder, self.lease_ttl_s)
            if fence is None:
                if self.fence is not None:
                    log.info("alert poll lease taken over by another replica")
                self.fence = None
                return
            if fence != self.fence:
                log.info("holding the alert poll lease (token %d): polling %s", fence.token,
                         ", ".join(s.name for s in self.sources))
                for each in self.sources:
                    await each.load()
                self.fence = fence
            await self._poll(source, fence)

    async def _poll(self, source: PullSource, fence: Fence) -> None:
        status = self.status[source.name]
        if status.retry_at > self.clock():
            return
        status.polls += 1
        keeper = asyncio.create_task(self._keep_lease(fence))
        try:
            found = await source.cycle(fence)
        except LeaseLost:
            log.info("alert poll lease lost during a %s poll: nothing written", source.name)
            self.fence = None
            return
        except Exception as exc:
            self._failed(source, status, exc)
            return
        finally:
            keeper.cancel()
        status.found += found
        status.consecutive_errors, status.last_error, status.last_success = 0, "", self.clock()

    async def _keep_lease(self, fence: Fence) -> None:
        """Renew the lease every third of its life while a poll runs: a first poll that builds the
        SDK client, or a slow listing, must not hand the lease to a standby halfway (seen: a first poll
        of 0.2 s against a 0.15 s test lease). A renewal that fails leaves the fence check to refuse."""
        while True:
            await asyncio.sleep(self.lease_ttl_s / 3)
            try:
                if await self.dispatcher.alerts.take_lease(LEASE_NAME, self.holder, self.lease_ttl_s) != fence:
                    return
            except Exception as exc:
                log.warning("could not renew the alert poll lease: %s", describe_error(exc))
                return

    def _failed(self, source: PullSource, status: SourceStatus, exc: Exception) -> None:
        status.errors += 1
        status.consecutive_errors += 1
        detail = describe_error(exc)
        if detail.startswith("403"):
            detail += f" — grant the app's service principal {source.permission}"
        delay = min(MAX_BACKOFF_S, self.interval_s * 2 ** (status.consecutive_errors - 1))
        retry_after = getattr(exc, "retry_after_secs", None)
        if isinstance(retry_after, (int, float)) and retry_after > 0:
            delay = max(delay, float(retry_after))
        status.last_error, status.retry_at = detail, self.clock() + delay
        if _expected(exc):
            log.warning("alert pull %s failed: %s; next try in %.0f s", source.name, detail, delay)
        else:
            log.exception("alert pull %s failed unexpectedly; next try in %.0f s", source.name, delay)

    async def check(self) -> Check:
        """For /health: the age of each source's last successful poll, or why it fails."""
        if self.fence is None:
            return Check(True, "standby: another replica holds the poll lease")
        now, problems, fine = self.clock(), [], []
        for name, status in self.status.items():
            if status.last_error:
                problems.append(f"{name}: {status.last_error}")
            elif status.last_success is None:
                if now - self.started > STALE_AFTER_INTERVALS * self.interval_s:
                    problems.append(f"{name}: no successful poll yet")
                else:
                    fine.append(f"{name}: first poll under way")
            elif now - status.last_success > STALE_AFTER_INTERVALS * self.interval_s:
                problems.append(f"{name}: last successful poll {now - status.last_success:.0f} s ago")
            else:
                fine.append(f"{name}: polled {now - status.last_success:.0f} s ago, {status.found} alerts found")
        return Check(not problems, "; ".join(problems or fine))


def _expected(exc: Exception) -> bool:
    """Workspace and network errors are one line in the log; anything else is a bug worth a traceback."""
    try:
        from databricks.sdk.errors import DatabricksError
    except ImportError:  # pragma: no cover - databricks-sdk is a dependency
        return isinstance(exc, OSError)
    return isinstance(exc, (DatabricksError, OSError, TimeoutError))
