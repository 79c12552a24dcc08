"""Which served version answered: the invocation's `served-model-name` header (the served entity) and
the endpoint's config (entity → `entity_version`). Kept by the serving client and fed by every read of
the endpoint (its own and the rollout watcher's); never a guess — an entity the config does not list
has no version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from agent.endpoint_config import EndpointView
from agent.errors import EngineError

log = logging.getLogger(__name__)

SERVED_HEADER = "served-model-name"  # which served entity answered an invocation
VERSIONS_TTL_S = 60.0  # the map is re-read this often in the background (a rollback keeps entity names)
UNKNOWN_TTL_S = 5.0  # an entity the config did not list is looked up again after this


class ServedVersions:
    def __init__(self, refresh: Callable[[], Awaitable[object]], *, default_entity: str = "") -> None:
        self._refresh = refresh  # reads the endpoint, which calls `remember`
        self.default_entity = default_entity  # an App: no header, its active deployment is what answered
        self._versions: dict[str, str] = {}
        self._at = float("-inf")
        self._unknown: dict[str, float] = {}
        self._background: asyncio.Task[None] | None = None

    def remember(self, view: EndpointView) -> None:
        self._versions, self._at = view.versions(), time.monotonic()

    async def label(self, headers: Mapping[str, str]) -> tuple[str, str]:
        """(served entity, version) that answered; ("", "") when the endpoint does not say. An entity
        not in the map is looked up at once (a new rollout); a stale map is refreshed in the background."""
        entity = headers.get(SERVED_HEADER) or next((v for k, v in headers.items() if k.lower() == SERVED_HEADER), "")
        entity = entity or self.default_entity
        if not entity:
            return "", ""
        now = time.monotonic()
        if entity not in self._versions and now - self._unknown.get(entity, float("-inf")) > UNKNOWN_TTL_S:
            self._unknown[entity] = now  # one look per unknown name, not one per answer
            await self._reread()
        elif now - self._at > VERSIONS_TTL_S and self._background is None:
            self._background = asyncio.create_task(self._reread())
        return entity, self._versions.get(entity, "")

    async def _reread(self) -> None:
        try:
            await self._refresh()
        except EngineError as exc:
            log.info("could not read the endpoint's served versions: %s", exc.detail)
            self._at = time.monotonic()  # not again at once: the next answer may try
        finally:
            self._background = None
