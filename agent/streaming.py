"""Reading a streamed answer: server-sent events from a Model Serving endpoint, in any of the three
streamable shapes, turned into text deltas, stages and one final Answer.

- chat completions: `choices[].delta.content` (tool calls in `delta.tool_calls`);
- MLflow ChatAgent: `delta.content` of assistant messages (tool messages are stages), and
  `custom_outputs` on the last chunk;
- MLflow ResponsesAgent: `response.output_text.delta` events, `response.output_item.done` with a
  `function_call` item (a sub-agent is being asked) or the finished `message` item.
Events are recognised by shape, as whole answers are (agent/formats.py). Sources, confidence and
domains come from `custom_outputs`, wherever an event carries them. An error event ends the stream
as a failure (StreamFailed), never as a complete answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from agent.base import Answer, Chunk
from agent.formats import _content_text, _with_custom_outputs


def stage_for_tool(name: str) -> str:
    """A sub-agent or tool call in plain words: `cost_agent` → "asking the cost agent…",
    `read_system__billing__usage` (a table read, dots as `__`) → "reading system.billing.usage…"."""
    if name.startswith("read_") and "__" in name:
        return f"reading {name[5:].replace('__', '.')}…"
    words = " ".join(name.replace("-", "_").split("_")).strip() or "a tool"
    return f"asking the {words}…" if words.endswith("agent") else f"running {words}…"


def sse_data(line: bytes) -> str | None:
    """The payload of a `data:` line (None for comments, `event:`/`id:` lines and blank lines)."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    if not text.startswith("data:"):
        return None
    return text[5:].lstrip(" ")


class StreamFailed(Exception):
    """The stream itself said the agent failed (an error event), with HTTP 200 and often `[DONE]` after."""


def stream_error(event: Mapping[str, Any]) -> str | None:
    """The message of an error event, in the shapes the three streams use for one: MLflow AgentServer's
    `{"error": "<exception>"}` (any agent type), OpenAI-style `{"error": {"message", "code"}}`, the
    Responses API's `{"type": "error", "message"}` and `response.failed` with `response.error`, and a
    Databricks `{"error_code", "message"}` written into the stream."""
    error = event.get("error")
    if isinstance(error, str) and error.strip():
        return error
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("code") or json.dumps(error))
    kind = event.get("type")
    if kind in ("error", "response.error"):
        return str(event.get("message") or event.get("code") or "the agent reported an error")
    if kind == "response.failed":
        response = event.get("response")
        failure = response.get("error") if isinstance(response, Mapping) else None
        if isinstance(failure, Mapping):
            return str(failure.get("message") or failure.get("code") or "the response failed")
        return "the response failed"
    if isinstance(event.get("error_code"), str) and "message" in event and "choices" not in event:
        return f"{event['error_code']}: {event['message']}"
    return None


class StreamReader:
    """Feed it each event's JSON; it says what to show, and at the end what the answer was.

    Only assistant content is answer text. A ChatAgent stream carries whole messages of every role
    (MLflow's LangGraph ChatAgent yields `role: "tool"` messages as chunks; clients aggregate content by
    message `id`): tool calls and tool results are stages. Each new assistant message (a preamble before
    a tool call, then the answer) starts a new paragraph, as the whole answer joins them (agent/formats.py).
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._messages: list[str] = []  # finished message items (Responses), used when no deltas came
        self._custom: dict[str, Any] = {}
        self._role: str | None = None  # chat completions name the role in the first delta only
        self._message_id: str | None = None
        self.events = 0
        self.whole: Any = None  # the JSON body, when the endpoint answered without streaming

    def feed(self, data: str) -> list[Chunk]:
        """Raises StreamFailed on an error event."""
        self.events += 1
        try:
            event = json.loads(data)
        except ValueError:
            return []  # a keep-alive or a line that is not ours: skip it, as browsers do
        if not isinstance(event, Mapping):
            return []
        failure = stream_error(event)
        if failure is not None:
            raise StreamFailed(failure)
        if isinstance(event.get("custom_outputs"), Mapping):
            self._custom.update(event["custom_outputs"])
        chunks: list[Chunk] = []
        if isinstance(event.get("choices"), list):
            for choice in event["choices"]:
                delta = choice.get("delta") if isinstance(choice, Mapping) else None
                if isinstance(delta, Mapping):
                    chunks += self._delta(delta)
        elif isinstance(event.get("delta"), Mapping):
            chunks += self._delta(event["delta"])
        elif event.get("type") == "response.output_text.delta" and isinstance(event.get("delta"), str):
            chunks += self._add(event["delta"], event.get("item_id"))
        elif event.get("type") == "response.output_item.done" and isinstance(event.get("item"), Mapping):
            chunks += self._item(event["item"])
        elif event.get("type") == "response.completed" and isinstance(event.get("response"), Mapping):
            custom = event["response"].get("custom_outputs")
            if isinstance(custom, Mapping):
                self._custom.update(custom)
        return [chunk for chunk in chunks if chunk.text or chunk.stage]

    def _item(self, item: Mapping[str, Any]) -> list[Chunk]:
        kind = item.get("type")
        if kind == "function_call":
            return [Chunk(stage=stage_for_tool(str(item.get("name") or "")))]
        if kind == "function_call_output":
            return [Chunk(stage="reading the result…")]
        if kind == "message" and item.get("role", "assistant") == "assistant":
            text = _content_text(item.get("content"))
            if text:
                self._messages.append(text)
        return []

    def _delta(self, delta: Mapping[str, Any]) -> list[Chunk]:
        role = delta.get("role") or self._role
        self._role = role if isinstance(role, str) else None
        chunks = []
        for call in delta.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and function.get("name"):
                chunks.append(Chunk(stage=stage_for_tool(str(function["name"]))))
        if self._role == "tool":  # a tool's result: what the agent read, not what it says
            name = delta.get("name")
            return chunks + [Chunk(stage=f"reading what the {' '.join(str(name).split('_'))} found…"
                                   if name else "reading the result…")]
        if self._role not in (None, "assistant"):
            return chunks
        text = _content_text(delta.get("content"))
        if text:
            chunks += self._add(text, delta.get("id"))
        return chunks

    def _add(self, text: str, message_id: Any = None) -> list[Chunk]:
        if isinstance(message_id, str) and message_id:
            if self._message_id is not None and message_id != self._message_id and self._text:
                text = "\n\n" + text.lstrip("\n") if not self.shown.endswith("\n\n") else text
            self._message_id = message_id
        self._text.append(text)
        return [Chunk(text=text)]

    @property
    def shown(self) -> str:
        return "".join(self._text)

    def answer(self) -> Answer:
        return _with_custom_outputs(self.shown or "\n\n".join(self._messages), self._custom)


class Refused(Exception):
    """The endpoint answered with an error status instead of a stream."""

    def __init__(self, status: int, data: Any, headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.data, self.headers = status, data, headers


async def read_stream(response: Any, reader: StreamReader, *, first_s: float, idle_s: float) -> AsyncIterator[Chunk]:
    """Yield what an aiohttp response streams until `data: [DONE]` or the connection closes after
    the last event (MLflow agents may not send [DONE]). `first_s` bounds the wait for the first
    event, `idle_s` each wait after it: a stalled stream fails, however long the answer."""
    if response.status != 200:
        raw = await response.read()
        try:
            data: Any = json.loads(raw) if raw else None
        except ValueError:
            data = raw[:200].decode("utf-8", "replace")
        raise Refused(response.status, data, dict(response.headers))
    if "text/event-stream" not in (response.content_type or ""):  # the endpoint answered whole after all
        reader.whole = json.loads(await response.read())
        return
    wait = first_s
    while True:
        line = await asyncio.wait_for(response.content.readline(), wait)
        if not line:
            return
        data_line = sse_data(line)
        if data_line is None or not data_line.strip():
            continue
        if data_line.strip() == "[DONE]":
            return
        wait = idle_s
        for chunk in reader.feed(data_line):
            yield chunk
