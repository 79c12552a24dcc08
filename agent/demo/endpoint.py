"""`healthbot demo-endpoint`: the demo engine behind the Databricks Model Serving HTTP API.

It lets the real serving client (auth through databricks-sdk, retries, format handling) run end
to end without a workspace: point `DATABRICKS_HOST` at it and set `DATABRICKS_TOKEN` to its token.
It speaks all four request formats and answers each in its own shape, as real endpoints do; a
request with `"stream": true` in a streamable format is answered as server-sent events.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from aiohttp import web

from agent.base import AgentRequest, Answer, ChatMessage, Chunk
from agent.demo.engine import DemoEngine

DEMO_WORKSPACE_ID = "1234567890123456"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error_code": code, "message": message}, status=status)


def _messages(items: Any) -> list[ChatMessage]:
    if not isinstance(items, list):
        raise ValueError("messages must be a list")
    out = []
    for item in items:
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant", "system"):
            continue
        content = item.get("content")
        if isinstance(content, list):  # ResponsesAgent content parts
            content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        out.append(ChatMessage(item["role"], str(content or "")))
    return out


def read_request(body: Any) -> tuple[str, AgentRequest]:
    """(format, request) from any of the five request bodies; ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    context: dict[str, Any] = body["context"] if isinstance(body.get("context"), dict) else {}
    if "inputs" in body:
        inputs = body["inputs"] if isinstance(body["inputs"], dict) else {}
        params = inputs.get("params") or body.get("params") or {}
        return "inputs", AgentRequest(_messages(inputs.get("messages")), str(params.get("user_id", "")),
                                      str(params.get("session_id", "")))
    if isinstance(body.get("input"), dict):  # Agent Runtime's invocation API
        payload = body["input"]
        return "invocations", AgentRequest(_messages(payload.get("messages")), str(payload.get("actor", "")),
                                           str(body.get("session_id", "")))
    if "input" in body:
        return "responses", AgentRequest(_messages(body["input"]), str(context.get("user_id", "")),
                                         str(context.get("conversation_id", "")))
    if "messages" in body:
        fmt = "chat_agent" if "context" in body or "custom_inputs" in body else "chat_completions"
        return fmt, AgentRequest(_messages(body["messages"]), str(context.get("user_id", body.get("user", ""))),
                                 str(context.get("conversation_id", "")))
    raise ValueError(
        "The input must be a JSON dictionary with exactly one of the input fields "
        f"{{'dataframe_split', 'instances', 'inputs', 'dataframe_records'}} or messages/input. Received {sorted(body)}."
    )


def custom_outputs(answer: Answer) -> dict[str, Any]:
    extra: dict[str, Any] = {"sources": answer.sources, "confidence": answer.confidence, "domains": answer.domains}
    if answer.charts:
        extra["charts"] = answer.charts
    return extra


def write_response(fmt: str, answer: Answer) -> dict[str, Any]:
    extra = custom_outputs(answer)
    if fmt == "inputs":
        return {"predictions": [{"content": answer.content, **extra}]}
    if fmt == "chat_agent":
        return {"messages": [{"role": "assistant", "content": answer.content, "id": "demo-answer"}],
                "finish_reason": "stop", "custom_outputs": extra}
    if fmt == "invocations":
        return {"output": [{"role": "assistant", "content": answer.content}], "status": "completed",
                "custom_outputs": extra}
    if fmt == "responses":
        return {"output": [{"type": "message", "id": "msg_demo", "role": "assistant",
                            "content": [{"type": "output_text", "text": answer.content}]}],
                "custom_outputs": extra}
    return {"id": "chatcmpl-demo", "object": "chat.completion", "model": "healthbot-demo",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.content}, "finish_reason": "stop"}],
            "custom_outputs": extra}


def stream_event(fmt: str, chunk: Chunk) -> dict[str, Any]:
    """One server-sent event in the shape `fmt` streams: a text delta, a tool call for a stage (the
    data source read, as a sub-agent's tool call would be), or the last event with custom outputs."""
    if chunk.answer is not None:
        extra = custom_outputs(chunk.answer)
        if fmt == "responses":
            return {"type": "response.output_item.done", "custom_outputs": extra, "item": {
                "type": "message", "id": "msg_demo", "role": "assistant",
                "content": [{"type": "output_text", "text": chunk.answer.content}]}}
        if fmt == "chat_agent":
            return {"delta": {"role": "assistant", "content": "", "id": "demo-answer"}, "finish_reason": "stop",
                    "custom_outputs": extra}
        return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "custom_outputs": extra}
    tool = "read_" + chunk.stage.removeprefix("reading ").rstrip("…").replace(".", "__") if chunk.stage else ""
    if fmt == "responses":
        if tool:
            return {"type": "response.output_item.done", "item": {"type": "function_call", "name": tool,
                                                                  "call_id": tool, "arguments": "{}"}}
        return {"type": "response.output_text.delta", "item_id": "msg_demo", "delta": chunk.text}
    delta: dict[str, Any] = {"role": "assistant", "content": chunk.text}
    if tool:
        delta["tool_calls"] = [{"id": tool, "type": "function", "function": {"name": tool, "arguments": "{}"}}]
    if fmt == "chat_agent":
        return {"delta": {**delta, "id": "demo-answer"}}
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def create_demo_endpoint_app(engine: DemoEngine, *, endpoint_name: str, token: str) -> web.Application:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/.well-known/"):
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(401, "UNAUTHENTICATED", "Invalid access token.")
        return await handler(request)

    async def host_metadata(request: web.Request) -> web.Response:
        # databricks-sdk probes this on Config(); answering saves it a retry loop.
        return web.json_response({"workspace_id": DEMO_WORKSPACE_ID, "oidc_endpoint": ""})

    def known(request: web.Request) -> bool:
        return request.match_info["name"] == endpoint_name

    async def get_endpoint(request: web.Request) -> web.Response:
        if not known(request):
            return _error(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint '{request.match_info['name']}' does not exist.")
        return web.json_response({
            "name": endpoint_name, "id": "demo", "permission_level": "CAN_QUERY",
            "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            "config": {"served_entities": [{"name": f"{endpoint_name}-demo", "entity_name": "healthbot.demo_engine",
                                            "state": {"deployment": "DEPLOYMENT_READY"}}]},
        })

    async def invocations(request: web.Request) -> web.StreamResponse:
        if not known(request):
            return _error(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint '{request.match_info['name']}' does not exist.")
        try:
            body = json.loads(await request.read())
            fmt, agent_request = read_request(body)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return _error(400, "BAD_REQUEST", str(exc))
        if body.get("stream") is True and fmt != "inputs":
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            async for chunk in engine.stream(agent_request):
                await response.write(f"data: {json.dumps(stream_event(fmt, chunk))}\n\n".encode())
            if fmt == "chat_completions":
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        answer = engine.respond(agent_request)
        return web.json_response(write_response(fmt, answer))

    app = web.Application(middlewares=[require_token])
    app.router.add_get("/.well-known/databricks-config", host_metadata)
    app.router.add_get("/api/2.0/serving-endpoints/{name}", get_endpoint)
    app.router.add_post("/serving-endpoints/{name}/invocations", invocations)
    return app
