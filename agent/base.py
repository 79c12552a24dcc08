"""The engine interface the handler talks to, whichever backend answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant", "system"]
Progress = Literal["working", "waking_up", "ready"]
ProgressCallback = Callable[[Progress], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """What the original Streamlit app sent: recent history plus who and which session."""

    messages: list[ChatMessage]
    user_id: str
    session_id: str
    request_id: str = ""
    viewing_channel: str = ""  # Slack's agent view: the channel in view when asked ("" elsewhere)
    token: str = field(default="", repr=False)  # HEALTHBOT_IDENTITY=user: the asker's access token ("" = the bot's)


@dataclass(slots=True)
class Answer:
    content: str
    sources: list[str] = field(default_factory=list)
    confidence: float | None = None
    domains: list[str] = field(default_factory=list)
    endpoint_latency_ms: float | None = None
    served_entity: str = ""  # the served entity that answered (`served-model-name`); "" when not said
    served_version: str = ""  # its entity_version, e.g. "7"; "" when not said (demo engine, no header)
    charts: list[dict[str, Any]] = field(default_factory=list)  # custom_outputs.charts (bot/charts.py spec)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One event of a streamed answer: a stage in plain words ("asking the cost agent…"), a piece of
    text, or — last — the whole answer (content, sources, confidence, domains)."""

    text: str = ""
    stage: str = ""
    answer: Answer | None = None


class Engine(Protocol):
    """Anything that can answer a conversation: Model Serving, the demo engine, a test double."""

    name: str

    async def answer(self, request: AgentRequest, *, on_progress: ProgressCallback | None = None) -> Answer:
        ...

    async def close(self) -> None:
        ...


class StreamingEngine(Engine, Protocol):
    """An engine that can also answer as it goes; `answer()` stays for callers that want it whole."""

    def stream(self, request: AgentRequest, *, on_progress: ProgressCallback | None = None) -> AsyncIterator[Chunk]:
        ...
