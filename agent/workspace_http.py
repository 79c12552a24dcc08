"""Talking HTTP to a Databricks workspace from the event loop: host and auth headers from databricks-sdk's
unified config (PAT, OAuth M2M, an App's service principal, profiles; or one person's own token), and
one pooled aiohttp session, because the SDK's own client is synchronous (requests) and would block."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from agent.databricks_config import databricks_config
from agent.errors import EngineError, ErrorKind

if TYPE_CHECKING:
    from databricks.sdk.core import Config

log = logging.getLogger(__name__)

PEOPLE_KEPT = 256


class WorkspaceHTTP:
    def __init__(self, config_factory: Callable[[], Config], timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._config_factory = config_factory
        self._config: Config | None = None
        self._config_lock = asyncio.Lock()
        self._people: OrderedDict[str, Config] = OrderedDict()  # HEALTHBOT_IDENTITY=user: one SDK config per token
        self._session: aiohttp.ClientSession | None = None

    async def auth(self, token: str = "") -> tuple[str, dict[str, str]]:
        """Host and fresh auth headers; the SDK refreshes OAuth tokens itself (off the loop). With a
        person's `token`, the headers are theirs (`_person`)."""
        if token:
            return await self.person(token)
        async with self._config_lock:
            if self._config is None:
                try:
                    self._config = await asyncio.to_thread(self._config_factory)
                except Exception as exc:  # the SDK raises ValueError with its own explanation
                    raise EngineError(ErrorKind.AUTH, str(exc).splitlines()[0][:300]) from None
        config = self._config
        try:
            headers = await asyncio.to_thread(config.authenticate)
        except Exception as exc:
            raise EngineError(ErrorKind.AUTH, str(exc).splitlines()[0][:300]) from None
        return host_of(config), dict(headers)

    async def person(self, token: str) -> tuple[str, dict[str, str]]:
        """A databricks-sdk config holding this person's access token (pinned to bearer auth), built once
        per token and kept for the most recent PEOPLE_KEPT tokens; the host is the workspace's."""
        config = self._people.get(token)
        if config is None:
            host, _ = await self.auth()
            try:
                config = await asyncio.to_thread(databricks_config, host=host, token=token, auth_type="pat")
            except Exception as exc:
                raise EngineError(ErrorKind.AUTH, str(exc).splitlines()[0][:300]) from None
            self._people[token] = config
            while len(self._people) > PEOPLE_KEPT:
                self._people.popitem(last=False)
        self._people.move_to_end(token)
        return host_of(config), dict(config.authenticate())

    async def warm_up(self) -> None:
        """Build the SDK config (its import alone takes seconds) before the first question needs it."""
        try:
            await self.auth()
        except EngineError as exc:
            log.warning("Databricks configuration is not usable yet: %s", exc.detail)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32), headers={"User-Agent": "healthbot/0.1"}
            )
        return self._session

    async def call(self, method: str, path: str, body: Any = None, *, token: str = "") -> tuple[int, Any, dict[str, str]]:
        """One HTTP attempt with the hard per-attempt timeout; returns status, parsed JSON, headers.
        `path` is under the workspace host, or a whole URL (a Databricks App's)."""
        host, headers = await self.auth(token)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        url = path if path.startswith(("https://", "http://")) else f"{host}{path}"
        try:
            async with self.session().request(method, url, json=body, headers=headers, timeout=timeout) as resp:
                raw = await resp.read()
                try:
                    data = json.loads(raw) if raw else None
                except ValueError:
                    data = raw[:200].decode("utf-8", "replace")
                return resp.status, data, dict(resp.headers)
        except asyncio.TimeoutError:
            raise EngineError(ErrorKind.TIMEOUT, f"no answer within {self.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise EngineError(ErrorKind.UNAVAILABLE, f"{type(exc).__name__}: {exc}"[:300]) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def host_of(config: Config) -> str:
    return (config.host or "").rstrip("/")
