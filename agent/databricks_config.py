"""databricks-sdk's unified config (PAT, OAuth M2M, the service principal Databricks Apps inject,
profiles), built the way every healthbot caller needs it: the serving client, the workspace APIs
(alerts, jobs, SCIM, Lakebase credentials) and the tests that point it at local fakes."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databricks.sdk.core import Config

_SDK_IMPORT = threading.Lock()  # worker threads (warm-up, alert poller, Lakebase) may import it at once


def databricks_config(*, host: str | None = None, token: str | None = None, profile: str | None = None,
                      auth_type: str | None = None) -> Config:
    """Build the SDK's config; imported here, lazily, because importing databricks-sdk costs ~2 s.

    `retry_timeout_seconds` is lowered from the SDK's 300 s: on construction the SDK probes
    `{host}/.well-known/databricks-config` and, against an unreachable host, retried for five
    minutes before falling back to the explicit configuration. The import is serialised: two
    threads importing databricks-sdk at once hit Python's module-lock deadlock detection
    (`_DeadlockError`, seen when the endpoint warm-up and the alert poller started together).
    `auth_type="pat"` pins a bearer token (a person's OAuth access token) even where the environment
    also holds the service principal's DATABRICKS_CLIENT_ID / _SECRET (a Databricks App does).
    """
    with _SDK_IMPORT:
        from databricks.sdk.core import Config

    kwargs: dict[str, Any] = {"retry_timeout_seconds": 20, "http_timeout_seconds": 10}
    if host:
        kwargs["host"] = host
    if token:
        kwargs["token"] = token
    if profile:
        kwargs["profile"] = profile
    if auth_type:
        kwargs["auth_type"] = auth_type
    return Config(**kwargs)
