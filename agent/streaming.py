"""Reading a streamed answer: server-sent events from a Model Serving endpoint, in any of the three
streamable shapes, turned into text deltas, stages and one final Answer.

- chat completions: `choices[].delta.content` (tool calls in `delta.tool_calls`);
- MLflow ChatAgent: `delta.content`, and `custom_outputs` on the last chunk;
- MLflow ResponsesAgent: `response.output_text.delta` events, `response.output_item.done` with a
  `function_call` item (a sub-agent is being asked) or the finished `message` item.
Events are recognised by shape, as whole answers are (agent/formats.py). Sources, confidence and
domains come from `custom_outputs`, wherever an event carries them.
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


class StreamReader:
    """Feed it each event's JSON; it says what to show, and at the end what the answer was."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._message = ""  # a finished message item (Responses), used when no deltas came
        self._custom: dict[str, Any] = {}
        self.events = 0
        self.whole: Any = None  # the JSON body, when the endpoint answered without streaming

    def feed(self, data: str) -> list[Chunk]:
        self.events += 1
        try:
            event = json.loads(data)
        except ValueError:
            return []  # a keep-alive or a line that is not ours: skip it, as browsers do
        if not isinstance(event, Mapping):
            return []
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
            chunks.append(self._add(event["delta"]))
        elif event.get("type") == "response.output_item.done" and isinstance(event.get("item"), Mapping):
            item = event["item"]
            if item.get("type") == "function_call":
                chunks.append(Chunk(stage=stage_for_tool(str(item.get("name") or ""))))
            elif item.get("type") == "message":
                self._message = _content_text(item.get("content"))
        elif event.get("type") == "response.completed" and isinstance(event.get("response"), Mapping):
            custom = event["response"].get("custom_outputs")
            if isinstance(custom, Mapping):
                self._custom.update(custom)
        return [chunk for chunk in chunks if chunk.text or chunk.stage]

    def _delta(self, delta: Mapping[str, Any]) -> list[Chunk]:
        chunks = []
        for call in delta.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and function.get("name"):
                chunks.append(Chunk(stage=stage_for_tool(str(function["name"]))))
        text = _content_text(delta.get("content"))
        if text:
            chunks.append(self._add(text))
        return chunks

    def _add(self, text: str) -> Chunk:
        self._text.append(text)
        return Chunk(text=text)

    @property
    def shown(self) -> str:
        return "".join(self._text)

    def answer(self) -> Answer:
        return _with_custom_outputs(self.shown or self._message, self._custom)


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
