"""Lakebase passwords: short-lived OAuth tokens minted by the workspace, one fresh enough per connection.

Two kinds of Lakebase, one way to log in: a token that expires after about an hour, minted through
databricks-sdk — `database.generate_database_credential(instance_names=…)` (POST
/api/2.0/database/credentials) for a Provisioned instance (HEALTHBOT_LAKEBASE_INSTANCE), and
`postgres.generate_database_credential(endpoint=…)` (POST /api/2.0/postgres/credentials) for an
Autoscaling endpoint (HEALTHBOT_LAKEBASE_ENDPOINT=projects/…/branches/…/endpoints/…). asyncpg accepts
a password callable and calls it for every new connection, so each connection gets a token with time
left on it; connections already open are not affected by expiry (PostgreSQL checks the password only
when connecting). Without a URL or the PG* variables of an App's database resource, an Autoscaling
endpoint also says where to connect: its read-write host (`postgres.get_endpoint`) and, as user, the
identity the token is minted for (`current_user.me`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from bot.workspace import Workspace, describe_error

log = logging.getLogger(__name__)

DEFAULT_LIFETIME_S = 3600.0  # when the answer names no expiry: Lakebase tokens last an hour
RENEW_BEFORE_S = 300.0


class CredentialError(Exception):
    """Lakebase credentials cannot be minted: the message says which instance and why."""


@dataclass(frozen=True, slots=True)
class Minted:
    token: str
    expires_at: float | None  # None: the answer named no expiry


@dataclass(frozen=True, slots=True)
class Provisioned:
    """A Lakebase Provisioned instance (HEALTHBOT_LAKEBASE_INSTANCE)."""

    name: str
    kind: ClassVar[str] = "instance"
    setting: ClassVar[str] = "HEALTHBOT_LAKEBASE_INSTANCE"

    def mint(self, client: Any) -> Minted:
        credential = client.database.generate_database_credential(instance_names=[self.name],
                                                                   request_id=str(uuid.uuid4()))
        return Minted(credential.token or "", _rfc3339(credential.expiration_time))


@dataclass(frozen=True, slots=True)
class Autoscaling:
    """A Lakebase Autoscaling endpoint (HEALTHBOT_LAKEBASE_ENDPOINT=projects/…/branches/…/endpoints/…)."""

    name: str
    kind: ClassVar[str] = "Autoscaling endpoint"
    setting: ClassVar[str] = "HEALTHBOT_LAKEBASE_ENDPOINT"

    def mint(self, client: Any) -> Minted:
        credential = client.postgres.generate_database_credential(endpoint=self.name)
        expires = credential.expire_time  # a protobuf Timestamp
        return Minted(credential.token or "",
                      expires.seconds + expires.nanos / 1e9 if expires is not None and expires.seconds else None)

    def where(self, client: Any) -> tuple[str, str]:
        """(host, user): the endpoint's read-write host and the identity tokens are minted for."""
        endpoint = client.postgres.get_endpoint(name=self.name)
        hosts = endpoint.status.hosts if endpoint.status is not None else None
        if hosts is None or not hosts.host:
            raise ValueError("the endpoint reports no host yet")
        return hosts.host, client.current_user.me().user_name or ""


Lakebase = Provisioned | Autoscaling


class LakebaseCredentials:
    def __init__(self, *, lakebase: Lakebase, workspace: Workspace, clock: Callable[[], float] = time.time) -> None:
        self.lakebase = lakebase
        self.label = f"{lakebase.kind} {lakebase.name}"  # "instance healthbot-pg", "Autoscaling endpoint projects/…"
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
            minted = await self.workspace.call(self.lakebase.mint)
        except Exception as exc:
            raise CredentialError(self._explain(exc)) from None
        if not minted.token:
            raise CredentialError(f"Lakebase {self.label}: the workspace returned no token")
        now = self.clock()
        self.token, self.issued_at, self.minted = minted.token, now, self.minted + 1
        self.expires_at = minted.expires_at or now + DEFAULT_LIFETIME_S
        log.info("minted a Lakebase token for %s, valid %.0f s", self.label, self.expires_at - now)

    async def connect_to(self) -> dict[str, str]:
        """asyncpg's host and user for an Autoscaling endpoint when nothing else names them."""
        if not isinstance(self.lakebase, Autoscaling):
            return {}
        try:
            host, user = await self.workspace.call(self.lakebase.where)
        except Exception as exc:
            raise CredentialError(f"cannot read where Lakebase {self.label} is: {self._detail(exc)}") from None
        return {"host": host, "user": user}

    def _detail(self, exc: Exception) -> str:
        return describe_error(exc) if not isinstance(exc, ValueError) else str(exc)

    def _explain(self, exc: Exception) -> str:
        detail, what = self._detail(exc), f"{self.lakebase.kind} {self.lakebase.name!r}"
        if detail.startswith("404"):
            return f"Lakebase {what} does not exist in this workspace ({self.lakebase.setting}): {detail}"
        if detail.startswith(("403", "401")):
            return (f"the app's principal may not connect to Lakebase {what}: give the App a database resource for "
                    f"it (CAN_CONNECT_AND_CREATE) — {detail}")
        return f"could not mint a Lakebase credential for {what}: {detail}"

    def describe(self) -> str:
        if not self.token:
            return f"{self.label}, no token minted yet"
        now = self.clock()
        return (f"{self.label}, token age {now - self.issued_at:.0f} s, expires in "
                f"{self.expires_at - now:.0f} s ({self.minted} minted)")


def _rfc3339(value: str | None) -> float | None:
    """`expiration_time` is RFC 3339 (e.g. 2024-04-05T09:00:00Z); None when absent or unreadable."""
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            log.warning("unreadable Lakebase token expiry %r: assuming an hour", value[:40])
    return None
