"""Lakebase passwords: short-lived OAuth tokens minted by the workspace, one fresh enough per connection.

A Databricks App's database resource sets PGHOST / PGUSER / … but no password: the password is a
token from `database.generate_database_credential` (POST /api/2.0/database/credentials) that
expires after about an hour. asyncpg accepts a password callable and calls it for every new
connection, so each connection gets a token with time left on it; connections already open are
not affected by expiry (PostgreSQL checks the password only when connecting).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from bot.workspace import Workspace, describe_error

log = logging.getLogger(__name__)

DEFAULT_LIFETIME_S = 3600.0  # when the answer names no expiry: Lakebase tokens last an hour
RENEW_BEFORE_S = 300.0


class CredentialError(Exception):
    """Lakebase credentials cannot be minted: the message says which instance and why."""


class LakebaseCredentials:
    def __init__(self, *, instance: str, workspace: Workspace, clock: Callable[[], float] = time.time) -> None:
        self.instance = instance
        self.workspace = workspace
        self.clock = clock
        self.token = ""
        self.issued_at = 0.0
        self.expires_at = 0.0
        self.minted = 0  # credential calls made (doctor, tests)
        self._lock = asyncio.Lock()

    def _renew_at(self) -> float:
        """Renew a quarter of the lifetime (at most 5 minutes) before expiry: a connection opened just
        before renewal still gets a token with time left."""
        lifetime = self.expires_at - self.issued_at
        return self.expires_at - min(RENEW_BEFORE_S, lifetime / 4)

    async def __call__(self) -> str:
        """asyncpg's password callable."""
        if self.token and self.clock() < self._renew_at():
            return self.token
        async with self._lock:  # a burst of new connections mints one token, not one each
            if not self.token or self.clock() >= self._renew_at():
                await self._mint()
        return self.token

    async def _mint(self) -> None:
        try:
            credential = await self.workspace.call(lambda client: client.database.generate_database_credential(
                instance_names=[self.instance], request_id=str(uuid.uuid4())))
        except Exception as exc:
            raise CredentialError(self._explain(exc)) from None
        if not credential.token:
            raise CredentialError(f"Lakebase instance {self.instance!r}: the workspace returned no token")
        now = self.clock()
        self.token, self.issued_at, self.minted = credential.token, now, self.minted + 1
        self.expires_at = _expiry(credential.expiration_time, now)
        log.info("minted a Lakebase token for %s, valid %.0f s", self.instance, self.expires_at - now)

    def _explain(self, exc: Exception) -> str:
        detail = describe_error(exc)
        if detail.startswith("404"):
            return f"Lakebase instance {self.instance!r} does not exist in this workspace (HEALTHBOT_LAKEBASE_INSTANCE): {detail}"
        if detail.startswith(("403", "401")):
            return (f"the app's principal may not connect to Lakebase instance {self.instance!r}: give the App a database "
                    f"resource for it (CAN_CONNECT_AND_CREATE) — {detail}")
        return f"could not mint a Lakebase credential for {self.instance!r}: {detail}"

    def describe(self) -> str:
        if not self.token:
            return f"instance {self.instance}, no token minted yet"
        now = self.clock()
        return (f"instance {self.instance}, token age {now - self.issued_at:.0f} s, expires in "
                f"{self.expires_at - now:.0f} s ({self.minted} minted)")


def _expiry(value: str | None, now: float) -> float:
    """`expiration_time` is RFC 3339 (e.g. 2024-04-05T09:00:00Z); without one, assume an hour."""
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            log.warning("unreadable Lakebase token expiry %r: assuming an hour", value[:40])
    return now + DEFAULT_LIFETIME_S
