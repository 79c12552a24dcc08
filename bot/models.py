"""Platform-neutral data shared by every adapter and the handler.

Thread identity is a first-class field (`ThreadKey`) because the session is per thread: bot
frameworks that bolted it on later collided conversations (Rasa #10158 used the user id).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import ErrorKind

__all__ = ["ErrorKind", "Incoming", "Membership", "Platform", "Reply", "ThreadKey"]


class Platform(StrEnum):
    SLACK = "slack"
    TEAMS = "teams"
    CONSOLE = "console"


class Membership(StrEnum):
    """How the asker belongs to the organisation that installed healthbot, as the adapter found out
    (Slack users.info / event, Teams member lookup). Unverified until an adapter says otherwise, so a
    path that forgot to look is refused rather than let through."""

    MEMBER = "member"
    GUEST = "guest"  # Slack single- or multi-channel guest, Teams guest (B2B)
    EXTERNAL = "external"  # another organisation: Slack Connect, another Teams tenant
    ANONYMOUS = "anonymous"  # Teams anonymous meeting participant
    UNVERIFIED = "unverified"  # the lookup failed: refused, never guessed
    OPERATOR = "operator"  # the console on this machine, or healthbot itself (an alert investigation)


class ThreadKey(BaseModel):
    """Where a conversation lives: one session ID per key.

    `thread` is Slack's `thread_ts or ts`, Teams' conversation id with `;messageid=`, or "" for a
    conversation without threads (a top-level DM), whose session then expires when idle.
    """

    model_config = ConfigDict(frozen=True)

    platform: Platform
    workspace: str = ""
    channel: str
    thread: str = ""

    def as_text(self) -> str:
        """A stable string form, used as the store's primary key."""
        return f"{self.platform.value}|{self.workspace}|{self.channel}|{self.thread}"


class Incoming(BaseModel):
    """One user message, normalized by an adapter; text has the bot mention removed."""

    model_config = ConfigDict(frozen=True)

    key: ThreadKey
    message_id: str = ""
    user_id: str
    user_name: str = ""
    user_email: str = ""
    text: str
    is_dm: bool = False
    is_mention: bool = False
    is_thread_followup: bool = False
    event_id: str = ""  # platforms retry deliveries; the handler answers each event id once
    membership: Membership = Membership.UNVERIFIED
    org: str = ""  # the asker's own Slack team / Teams tenant, when the platform says
    viewing_channel: str = ""  # Slack's agent view: the channel the asker is looking at, told to the endpoint

    @property
    def platform(self) -> Platform:
        return self.key.platform

    @property
    def asker(self) -> str:
        """Who the endpoint is told is asking: the email when visible, as the original app did."""
        return self.user_email or self.user_id


class Reply(BaseModel):
    """What the handler answers; adapters render it (Block Kit, Adaptive Card, terminal)."""

    content: str
    sources: list[str] = Field(default_factory=list)
    confidence: float | None = None
    domains: list[str] = Field(default_factory=list)
    request_id: str = ""
    session_id: str = ""
    error: ErrorKind | None = None
    question: str = ""  # kept so an adapter's Retry button can re-ask it
    cached: bool = False
    charts: list[dict[str, Any]] = Field(default_factory=list)  # drawn by the adapter (bot/charts.py)
    connect: bool = False  # HEALTHBOT_IDENTITY=user: the asker must connect first; sent to them alone, with a link
    served_version: str = ""  # which version of the agent answered (or failed), when known

    @property
    def retryable(self) -> bool:
        return self.error is not None and self.error.retryable

    def footer(self) -> str:
        """Sources, confidence and domains in one line (SQL sources counted, not spelled out)."""
        tables = [s for s in self.sources if not s.startswith("SQL:")]
        queries = len(self.sources) - len(tables)
        parts = []
        if tables:
            parts.append("Sources: " + ", ".join(tables))
        if queries:
            parts.append(f"{queries} SQL quer{'y' if queries == 1 else 'ies'}")
        if self.confidence is not None:
            parts.append(f"Confidence {self.confidence:.0%}")
        if self.domains:
            parts.append(" · ".join(self.domains))
        return "  |  ".join(parts)
