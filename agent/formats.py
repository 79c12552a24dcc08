"""Request bodies and response parsing for the four endpoint shapes healthbot speaks.

- `inputs`: the original Streamlit app's pyfunc call, `{"inputs": {"messages", "params"}}` →
  `{"predictions": [{"content", "sources", "confidence", "domains"}]}`.
- `chat_agent`: MLflow ChatAgent (`messages` + `context`) → `messages` + `custom_outputs`.
- `responses`: MLflow ResponsesAgent (`input` + `context`) → `output` items + `custom_outputs`.
- `chat_completions`: OpenAI-style `messages` → `choices[0].message`.
- `invocations`: Agent Runtime's invocation API (an Agent Bricks app, `agent-bricks-<name>`, on
  DurableAgentServer: POST /api/invocations `{"id", "session_id", "input": {"messages", "actor"}}`) →
  `{"output": [chat messages], "status"}` (databricks-agentbricks 0.7.0 templates; not a Databricks
  serving task: healthbot picks it for Agent Runtime apps, or HEALTHBOT_ENDPOINT_FORMAT=invocations).

Responses are recognised by shape, whatever was sent, so a mismatched format setting still reads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from agent import json_bytes
from agent.base import AgentRequest, Answer

Format = Literal["inputs", "chat_agent", "responses", "chat_completions", "invocations"]
FORMATS: tuple[Format, ...] = ("inputs", "chat_agent", "responses", "chat_completions", "invocations")
INVOCATIONS_TASK = "agent-runtime/invocations"  # healthbot's own label for Agent Runtime apps (endpoint_config)

# Serving endpoint `task` values (GET /api/2.0/serving-endpoints/{name}) → request format.
_TASK_FORMATS: dict[str, Format] = {
    "agent/v1/responses": "responses",
    "agent/v2/chat": "chat_agent",
    "agent/v1/chat": "chat_completions",
    "llm/v1/chat": "chat_completions",
    INVOCATIONS_TASK: "invocations",
}


class UnreadableResponse(ValueError):
    """The body is JSON but none of the known answer shapes."""


def format_for_task(task: str | None) -> Format:
    return _TASK_FORMATS.get(task or "", "inputs")


def build_request(fmt: Format, request: AgentRequest) -> dict[str, Any]:
    messages = [message.as_dict() for message in request.messages]
    context = {"conversation_id": request.session_id, "user_id": request.user_id}
    custom: dict[str, Any] = {"session_id": request.session_id}
    if request.viewing_channel:  # Slack's agent view: the channel the person was looking at when asking
        custom["viewing_channel"] = request.viewing_channel
    if fmt == "inputs":
        return {"inputs": {"messages": messages, "params": {"user_id": request.user_id, **custom}}}
    if fmt == "chat_agent":
        return {"messages": messages, "context": context, "custom_inputs": custom}
    if fmt == "responses":
        return {"input": messages, "context": context, "custom_inputs": custom}
    if fmt == "invocations":  # one run per request: its id, the thread's session, the asker as the actor
        return {"id": _run_id(request.request_id),
                "session_id": request.session_id,
                "input": {"messages": messages, "actor": request.user_id, "custom_inputs": custom}}
    return {"messages": messages, "user": request.user_id}


def parse_response(data: Any) -> Answer:
    if not isinstance(data, Mapping):
        raise UnreadableResponse(f"expected a JSON object, got {type(data).__name__}")
    if "predictions" in data:
        return _from_prediction(data["predictions"])
    if isinstance(data.get("choices"), list):
        return _from_chat_completion(data)
    if isinstance(data.get("output"), Mapping):  # an invocation result wrapping the agent's own {"output": …}
        return parse_response(data["output"])
    if isinstance(data.get("output"), list):
        items = data["output"]
        if any(isinstance(item, Mapping) and "type" not in item and "role" in item for item in items):
            return _with_custom_outputs(_text_of_chat_messages(items), data.get("custom_outputs"))  # invocations
        return _with_custom_outputs(_text_of_output_items(items), data.get("custom_outputs"))
    if isinstance(data.get("messages"), list):
        return _with_custom_outputs(_text_of_chat_messages(data["messages"]), data.get("custom_outputs"))
    raise UnreadableResponse(f"no known answer field among {sorted(data)[:8]}")


def _run_id(request_id: str) -> str:
    """The invocation's id: the request id as a UUID (healthbot's are UUIDv7 hex), or a fresh one."""
    try:
        return str(uuid.UUID(request_id))
    except (ValueError, TypeError):
        return str(uuid.uuid4())


def _from_prediction(predictions: Any) -> Answer:
    first = predictions[0] if isinstance(predictions, list) and predictions else predictions
    if isinstance(first, str):
        return Answer(content=first)
    if isinstance(first, Mapping):
        if "content" in first:
            return _with_custom_outputs(str(first["content"] or ""), first)
        return parse_response(first)  # a wrapped agent answer: {"predictions": {"messages": …}}
    raise UnreadableResponse("predictions hold neither text nor an answer object")


def _from_chat_completion(data: Mapping[str, Any]) -> Answer:
    try:
        message = data["choices"][0]["message"]
    except (IndexError, KeyError, TypeError) as exc:
        raise UnreadableResponse("chat completion without choices[0].message") from exc
    return _with_custom_outputs(_content_text(message.get("content")), data.get("custom_outputs"))


def _text_of_chat_messages(messages: list[Any]) -> str:
    """ChatAgent output: every assistant message's text, in order, a paragraph each (a preamble before
    a tool call, then the answer), as the stream shows them; tool messages are not the answer."""
    texts = [_content_text(m.get("content")) for m in messages if isinstance(m, Mapping) and m.get("role") == "assistant"]
    texts = [text for text in texts if text]
    if not texts:
        raise UnreadableResponse("no assistant message with content")
    return "\n\n".join(texts)


def _text_of_output_items(items: list[Any]) -> str:
    """ResponsesAgent output: message items, a paragraph each; function calls and their outputs between
    them are not the answer."""
    texts = [
        _content_text(item.get("content"))
        for item in items
        if isinstance(item, Mapping) and item.get("type") == "message" and item.get("role", "assistant") == "assistant"
    ]
    texts = [text for text in texts if text]
    if not texts:
        raise UnreadableResponse("no message item in output")
    return "\n\n".join(texts)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "output_text"|"text", "text": …}]
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _with_custom_outputs(content: str, extra: Any) -> Answer:
    extra = extra if isinstance(extra, Mapping) else {}
    return Answer(
        content=content,
        sources=_as_sources(extra.get("sources")),
        confidence=_as_confidence(extra.get("confidence")),
        domains=_as_list(extra.get("domains")),
        charts=_as_charts(extra.get("charts")),
    )


MAX_CHARTS, MAX_CHART_JSON = 3, 64 * 1024


def _as_charts(value: Any) -> list[dict[str, Any]]:
    """`custom_outputs.charts`: at most 3 objects of at most 64 KB each (drawn, or left out, later)."""
    if not isinstance(value, list):
        return []
    charts = [c for c in value[:MAX_CHARTS] if isinstance(c, dict)]
    return [c for c in charts if len(json_bytes.dumps(c, default=str)) <= MAX_CHART_JSON]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(item) for item in value if item is not None and str(item).strip()]
    return [str(value)]


def _as_sources(value: Any) -> list[str]:
    """Sources may be strings or objects ({"title"/"name"/"table", "url"}); keep one line each."""
    if not isinstance(value, list):
        return _as_list(value)
    sources = []
    for item in value:
        if isinstance(item, Mapping):
            label = item.get("title") or item.get("name") or item.get("table") or item.get("source")
            url = item.get("url")
            text = f"{label} ({url})" if label and url else str(label or url or json.dumps(item))
            sources.append(text)
        elif item is not None:
            sources.append(str(item))
    return sources


def _as_confidence(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number > 1.0 and number <= 100.0:  # some agents report a percentage
        number /= 100.0
    return max(0.0, min(1.0, number))
