"""Who an asker is in Databricks: active user or not, and which groups they belong to (SCIM).

databricks-sdk's `users.list` / `groups.list` with a SCIM filter, through the shared `Workspace`
(worker threads, the SDK's own retries). Answers are cached for ten minutes, negative ones too, so a
member's message costs a dict lookup; a lookup that fails is not cached, and the caller refuses
rather than guesses (an outage must not open what the policy closes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.workspace import Workspace, describe_error

log = logging.getLogger(__name__)

CACHE_TTL_S = 600.0
MAX_NESTING = 5  # groups within groups, as deep as anyone sensibly nests them
T = TypeVar("T")


class DirectoryUnavailable(Exception):
    """SCIM could not be asked (workspace down, permission missing): the one-line reason."""


@dataclass(frozen=True, slots=True)
class DatabricksUser:
    id: str
    user_name: str
    active: bool
    groups: frozenset[str]  # the groups SCIM lists on the user (display names)


class _Cache(Generic[T]):
    """A TTL cache where concurrent misses for one key share a single lookup."""

    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self.ttl_s, self.clock = ttl_s, clock
        self._values: dict[str, tuple[float, T]] = {}
        self._pending: dict[str, asyncio.Future[T]] = {}

    def peek(self, key: str) -> tuple[bool, T | None]:
        hit = self._values.get(key)
        if hit is not None and hit[0] > self.clock():
            return True, hit[1]
        return False, None

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        found, value = self.peek(key)
        if found:
            return value  # type: ignore[return-value]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a lookup nobody else waited for is not "never retrieved"
            raise
        finally:
            self._pending.pop(key, None)
        self._values[key] = (self.clock() + self.ttl_s, result)
        future.set_result(result)
        if len(self._values) > 50_000:
            self._values = {k: v for k, v in self._values.items() if v[0] > self.clock()}
        return result


class DatabricksDirectory:
    def __init__(self, workspace: Workspace, *, ttl_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.workspace = workspace
        ttl_s = CACHE_TTL_S if ttl_s is None else ttl_s
        self._users: _Cache[DatabricksUser | None] = _Cache(ttl_s, clock)
        self._groups: _Cache[frozenset[str] | None] = _Cache(ttl_s, clock)

    async def user(self, email: str) -> DatabricksUser | None:
        """The workspace user whose userName is this email (case-insensitive); None when there is none."""
        email = email.strip().lower()
        if not email or '"' in email or "\\" in email:
            return None  # not something SCIM's filter could match
        return await self._users.get(email, lambda: self._call(lambda w: _find_user(w, email), f"user {email}"))

    async def member_of(self, user: DatabricksUser, group: str) -> bool:
        """Directly (the groups SCIM lists on the user) or through nested groups (the group's members)."""
        if group in user.groups:
            return True
        members = await self._groups.get(group, lambda: self._call(lambda w: _group_members(w, group), f"group {group}"))
        return members is not None and user.id in members

    async def group_exists(self, group: str) -> bool:
        members = await self._groups.get(group, lambda: self._call(lambda w: _group_members(w, group), f"group {group}"))
        return members is not None

    async def _call(self, fn: Callable[[object], T], what: str) -> T:
        try:
            return await self.workspace.call(fn)
        except Exception as exc:
            raise DirectoryUnavailable(f"SCIM lookup of {what} failed: {describe_error(exc)}") from None


def _find_user(w: object, email: str) -> DatabricksUser | None:
    from databricks.sdk import WorkspaceClient

    assert isinstance(w, WorkspaceClient)
    # next(): the first page is the answer; the SDK's iterator would otherwise ask for a second, empty one
    found = next(iter(w.users.list(filter=f'userName eq "{email}"', attributes="id,userName,active,groups")), None)
    if found is None:
        return None
    groups = frozenset(g.display for g in (found.groups or []) if g.display)
    return DatabricksUser(id=str(found.id or ""), user_name=str(found.user_name or ""), active=bool(found.active),
                          groups=groups)


def _group_members(w: object, name: str) -> frozenset[str] | None:
    """User ids in the group, nested groups expanded; None when no group has that name."""
    from databricks.sdk import WorkspaceClient

    assert isinstance(w, WorkspaceClient)
    group = next(iter(w.groups.list(filter=f'displayName eq "{name}"', attributes="id,displayName,members")), None)
    if group is None:
        return None
    users: set[str] = set()
    seen, todo = {str(group.id)}, [(group, 0)]
    while todo:
        current, depth = todo.pop()
        for member in current.members or []:
            ref, value = str(member.ref or ""), str(member.value or "")
            if ref.startswith("Groups/"):
                if value not in seen and depth < MAX_NESTING:
                    seen.add(value)
                    todo.append((w.groups.get(value), depth + 1))
            elif value:
                users.add(value)
    return frozenset(users)
