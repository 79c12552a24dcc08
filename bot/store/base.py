"""The store interface: what the handler (and later alerts) persist.

Kept narrow and async so a PostgreSQL / Lakebase implementation can sit behind it for several
replicas: event dedupe, sessions and the request log must then be shared, so that every event is
answered once whichever replica took it.
"""

from __future__ import annotations

from typing import Any, Protocol

from agent.base import ChatMessage
from bot.models import ThreadKey
from bot.store.deploys import Rollback
from bot.store.identity import IdentityStore

from bot.store.records import (
    EVENT_TTL_S,
    LEASE_S,
    Session,
    Turn,
    Limits,
    RequestLogRow,
    Delivery,
    Fence,
    LeaseLost,
    Change,
    Outbox,
    AlertThread,
)

# The records are re-exported: bot.store.base is where the rest of healthbot finds what the stores keep.
__all__ = ["EVENT_TTL_S", "LEASE_S", "Session", "Turn", "Limits", "RequestLogRow", "Delivery", "Fence", "LeaseLost",
           "Change", "Outbox", "AlertThread", "DeployStore", "AlertStore", "Store"]


class DeployStore(Protocol):
    """Rollbacks asked for in the chat (bot/store/deploys.py)."""

    async def create_rollback(self, record: Rollback) -> None: ...
    async def rollback(self, rollback_id: str) -> Rollback | None: ...
    async def claim_rollback(self, rollback_id: str, asker: str, status: str) -> Rollback | str:
        """Move a pending, unexpired rollback of this asker to `status`; else why not (words)."""
        ...
    async def finish_rollback(self, rollback_id: str, status: str, detail: str) -> None: ...
    async def rollbacks_in(self, status: str) -> list[Rollback]: ...


class AlertStore(Protocol):
    """The alert outbox and alert threads (see bot/alerts/dispatch.py for how they are used)."""

    async def enqueue(self, alert_key: str, alert: dict[str, Any], targets: list[tuple[str, bool]], *,
                      observed: str | None = None) -> int:
        """Store the alert and its deliveries in one transaction; `observed` also records the alert's
        state as seen, so a poller that later lists the same state does not post it again."""
        ...
    async def lease_due(self, limit: int = 50) -> list[Delivery]: ...
    async def next_due_at(self) -> float | None: ...
    # Each update below applies only while the caller still holds the row's lease (its token): False
    # means another worker took the row over, and the caller must leave it alone.
    async def renew(self, delivery: Delivery) -> bool: ...
    async def delivered(self, delivery: Delivery) -> bool: ...
    async def retry_later(self, delivery: Delivery, error: str, at: float) -> bool: ...
    async def postpone(self, delivery: Delivery, at: float) -> bool: ...
    async def failed(self, delivery: Delivery, error: str) -> bool: ...

    async def take_post_slot(self, target: str, pace_s: float) -> float:
        """Fleet-wide pacing: 0 when the caller may post to `target` now — the slot is then held (for at
        most LEASE_S) until `release_post_slot` — else the seconds to wait before asking again (at most
        `pace_s`: a held slot is usually released well before its hold runs out). Slack allows ~1
        message per second per channel."""
        ...

    async def hold_post_slot(self, target: str, pace_s: float) -> None:
        """The post is still in flight (a Retry-After, a slow network): keep the slot held another
        LEASE_S, so a post slower than its hold does not reach Slack beside the next one."""
        ...

    async def release_post_slot(self, target: str, pace_s: float) -> None:
        """The post went out (or failed): the next slot is a full pace after now. Counting from here,
        not from when the slot was taken, keeps a slow post (a cold connection, a loaded replica) from
        reaching Slack together with the next one."""
        ...

    async def counts(self) -> dict[str, int]: ...
    async def recent_failures(self, limit: int = 3, *, since: float = 0.0) -> list[tuple[str, str]]: ...
    async def thread(self, alert_key: str, target: str) -> AlertThread | None: ...
    async def save_thread(self, thread: AlertThread) -> None: ...
    async def new_roots_since(self, target: str, since: float) -> int: ...
    async def threads_seen_since(self, since: float, *, states: tuple[str, ...] = ()) -> list[AlertThread]:
        """Every thread (digest rows excluded) seen since then, in one of `states` when given: reminders,
        the weekly digest."""
        ...

    # -- pulled alerts: what the poller last saw, and the lease that makes it one per fleet ---------
    async def take_lease(self, name: str, holder: str, ttl_s: float) -> Fence | None:
        """Take or renew the lease; None while another holder's lease runs. A new holder gets a new token.
        Expiry is judged by the database's clock, so clock skew between replicas cannot make it flap."""
        ...

    async def release_lease(self, fence: Fence) -> None: ...
    async def observed(self, prefix: str) -> dict[str, tuple[str, float]]:
        """Every observed key starting with `prefix`: (state, at)."""
        ...

    async def observe(self, changes: list[Change], *, fence: Fence, outbox: Outbox | None = None) -> bool:
        """All changes and the outbox rows in one transaction, or nothing: False when a key no longer
        holds what the writer expected (a webhook or another replica got there first)."""
        ...

    async def remember(self, items: list[tuple[str, str, float]], *, fence: Fence) -> None:
        """Record (key, state, at) unconditionally: things seen that post nothing."""
        ...

    async def forget_before(self, prefix: str, before: float, *, fence: Fence) -> int: ...


class Store(Protocol):
    shared_limits: bool  # request limits kept in the store (several replicas), not in each process
    async def claim_event(self, event_id: str, *, ttl_s: float = EVENT_TTL_S) -> bool:
        """True the first time an event id is seen (within its ttl); False for a redelivery."""
        ...

    async def session_for(self, key: ThreadKey, *, idle_after_s: float | None = None) -> Session:
        """The thread's session, made on first use; a new one when idle longer than `idle_after_s`."""
        ...

    async def new_session(self, key: ThreadKey) -> Session:
        ...

    async def open_turn(self, key: ThreadKey, *, event_id: str, idle_after_s: float | None,
                        history_limit: int) -> Turn | None:
        """Claim the event (None: a redelivery already answered), then the thread's session and its
        last `history_limit` messages. One round trip on PostgreSQL for a thread that has a session."""
        ...

    async def add_question(self, session_id: str, message: ChatMessage | None, *, request_id: str,
                           limits: Limits | None) -> float:
        """Append the question (None: a Retry re-asks the last one) and, with `limits`, count it against
        them: 0 when within them, else the seconds to wait (then it is not counted). Stores that are
        not shared (SQLite) return 0 and leave limits to the process."""
        ...

    async def take_slot(self, limits: Limits) -> float:
        """Count a request that is not a question (a refused person's message) against `limits`, as
        `add_question` does: 0 when within them, else the seconds to wait. Unshared stores return 0."""
        ...

    async def has_session(self, key: ThreadKey) -> bool:
        """Whether healthbot already talks in this thread (un-mentioned follow-ups are answered)."""
        ...

    async def append_message(self, session_id: str, message: ChatMessage, *, request_id: str = "") -> None:
        ...

    async def recent_messages(self, session_id: str, limit: int) -> list[ChatMessage]:
        """The last `limit` messages of the session, oldest first."""
        ...

    async def log_request(self, row: RequestLogRow) -> None:
        ...

    async def record_answer(self, session_id: str, message: ChatMessage, row: RequestLogRow) -> None:
        """The assistant message and its request-log row, written together."""
        ...

    async def get_request(self, request_id: str) -> RequestLogRow | None:
        ...

    async def record_feedback(self, request_id: str, *, user_id: str, value: int, comment: str = "") -> bool:
        """+1 / -1 from a user on an answer; False when the request id is unknown."""
        ...

    async def requests_since(self, since_ts: float) -> list[RequestLogRow]:
        ...

    async def save_reference(self, platform: str, channel: str, reference: dict[str, Any]) -> bool:
        """Keep what a proactive post to this channel needs (Teams conversation reference);
        True when it is new or changed. Kept in the store, not memory (botbuilder #1934)."""
        ...

    async def get_reference(self, platform: str, channel: str) -> dict[str, Any] | None:
        ...

    async def feedback_since(self, since_ts: float) -> list[tuple[str, int]]:
        """(request id, +1 / -1) of the votes on requests logged since then."""
        ...

    @property
    def alerts(self) -> AlertStore:
        ...

    @property
    def deploys(self) -> DeployStore:
        ...

    @property
    def identities(self) -> IdentityStore:
        ...

    async def ping(self) -> None:
        """Raise when the store cannot be read and written."""
        ...

    async def purge(self, before: float, *, batch: int = 500) -> dict[str, int]:
        """Delete one batch per table of rows older than `before` (bot/store/retention.py says which);
        rows deleted per table. The caller repeats until nothing is left."""
        ...

    async def table_stats(self) -> dict[str, tuple[int, float | None]]:
        """Rows and the oldest row's time per table (`healthbot doctor`)."""
        ...

    async def close(self) -> None:
        ...
