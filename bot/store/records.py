"""The rows healthbot keeps: sessions and their turns, the request log, alert threads and the outbox's
deliveries, leases and their fences, and observed changes. Plain data; the stores (bot/store/base.py
protocols, SQLite and PostgreSQL) read and write them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.base import ChatMessage


EVENT_TTL_S = 24 * 3600.0  # Slack retries for minutes, Bot Framework for less; a day is ample
LEASE_S = 15.0  # an outbox row's lease; renewed while its delivery runs, so a dead replica's rows move on quickly


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    created: bool  # True when this call started a new session


@dataclass(frozen=True, slots=True)
class Turn:
    """What the handler needs to answer a message: its thread's session and recent history."""

    session: Session
    history: list[ChatMessage]


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests per minute: per user, and for the whole bot (fleet-wide on a shared store)."""

    user_key: str
    per_user: int
    overall: int


@dataclass(slots=True)
class RequestLogRow:
    """One handled message: the bot's own inference table (feeds `healthbot stats`)."""

    request_id: str
    ts: float
    platform: str
    workspace: str
    channel: str
    thread: str
    session_id: str
    user_id: str
    question: str
    answer: str = ""
    sources: list[str] = field(default_factory=list)
    confidence: float | None = None
    domains: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    endpoint_latency_ms: float | None = None
    error: str | None = None
    cached: bool = False
    trace_id: str = ""  # unused since traces are exported after the answer: the `request_id` tag finds them
    first_text_ms: float | None = None  # message to first visible text (a streamed piece, or the answer)
    served_version: str = ""  # the endpoint's served entity version that answered ("" when it did not say)

    @property
    def refused(self) -> bool:
        """Turned away by the access rules (`refused:<reason>`): deliberate, so not an error."""
        return bool(self.error) and str(self.error).startswith("refused:")

    @property
    def failed(self) -> bool:
        """An error the bot's operators care about (a refusal is the bot doing its job)."""
        return bool(self.error) and not self.refused


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: int
    alert_key: str
    target: str
    investigate: bool
    attempts: int
    alert: dict[str, Any]
    token: str = ""  # the lease it was taken with: every update of the row checks it (fencing)


@dataclass(frozen=True, slots=True)
class Fence:
    """A lease as its holder took it. Every write made under the lease checks the token in the same
    transaction (a fencing token), so a holder that stalled past its lease cannot overwrite the work
    of the replica that took over."""

    name: str
    holder: str
    token: int


class LeaseLost(Exception):
    """The lease was taken over by another holder: the write was not made."""


@dataclass(frozen=True, slots=True)
class Change:
    """Compare-and-set of one observed state (an alert's, a job's, a run's, a poll cursor).

    `expected` is what the writer last read (None: never seen); `state` None forgets the key.
    """

    key: str
    expected: str | None
    state: str | None
    at: float = 0.0


Outbox = tuple[str, dict[str, Any], list[tuple[str, bool]]]  # alert key, alert, (target, investigate) pairs


@dataclass(slots=True)
class AlertThread:
    alert_key: str
    target: str
    thread_ref: dict[str, Any]
    state: str
    state_since: float
    first_seen: float
    last_seen: float
    count: int
    acknowledged_by: str
    digest: bool
    alert: dict[str, Any]
    care: dict[str, Any] = field(default_factory=dict)  # snooze, reminders, flapping, acknowledged at (threads.py)
