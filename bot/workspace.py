"""One databricks-sdk `WorkspaceClient` per process, built lazily and used from worker threads.

The SDK is synchronous (requests) and building its config probes the workspace, so nothing here
runs on the event loop: `call` hops to a thread. Job enrichment, the alert poller and Lakebase
credentials share the client, and with it the SDK's own retries (429 / 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    from bot.config import Settings

T = TypeVar("T")


def config_factory(settings: Settings) -> Callable[[], Config]:
    """The SDK config for the configured workspace (any databricks-sdk auth; Apps inject their own)."""
    from agent.databricks_config import databricks_config

    token = settings.databricks_token.get_secret_value() if settings.databricks_token else None
    return lambda: databricks_config(host=settings.databricks_host, token=token, profile=settings.databricks_profile)


class Workspace:
    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._client: WorkspaceClient | None = None
        self._lock = threading.Lock()

    def client(self) -> WorkspaceClient:
        """Blocking: call from a worker thread (see `call`)."""
        with self._lock:
            if self._client is None:
                config = self._config()  # imports databricks-sdk, one thread at a time (databricks_config)
                from databricks.sdk import WorkspaceClient

                self._client = WorkspaceClient(config=config)
            return self._client

    async def call(self, fn: Callable[[WorkspaceClient], T]) -> T:
        return await asyncio.to_thread(lambda: fn(self.client()))

    @property
    def host(self) -> str:
        return str(self._client.config.host) if self._client is not None else ""


def describe_error(exc: BaseException) -> str:
    """An SDK error as one line: `403 PERMISSION_DENIED: message` (never a traceback, never a token)."""
    code: Any = getattr(exc, "error_code", None)
    status = {"PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "NOT_FOUND": 404, "RESOURCE_DOES_NOT_EXIST": 404,
              "REQUEST_LIMIT_EXCEEDED": 429, "TEMPORARILY_UNAVAILABLE": 503}.get(str(code), None)
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return f"{status} {code}: {text}" if status else (f"{code}: {text}" if code else f"{type(exc).__name__}: {text}")
