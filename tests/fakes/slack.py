"""A fake Slack: the Web API (`SLACK_API_URL`), response_url hooks and a Socket Mode WebSocket.

Like bolt-python's own mock_web_api_server, it answers real-format responses from the fixtures,
records every call with its parameters, and can be told to fail (429, ok:false) for a method.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.base import FakeServer, strict_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-fake"  # short on purpose: nothing here should look like a real token
BOT_USER = "U0BOT12345"
TEAM = "T0123ABCDE"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def sign(body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends: v0 HMAC-SHA256 over `v0:{timestamp}:{body}`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def streamed_text(params: dict[str, Any]) -> str:
    """The text a chat.*Stream call adds: `markdown_text`, or its `markdown_text` chunks."""
    chunks = params.get("chunks") or []
    return params.get("markdown_text") or "".join(c.get("text", "") for c in chunks if c.get("type") == "markdown_text")


def steps_shown(calls: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Each task of a streamed message as it finally reads: id → (title, status)."""
    tasks: dict[str, tuple[str, str]] = {}
    for params in calls:
        for chunk in params.get("chunks") or []:
            if chunk.get("type") == "task_update":
                tasks[chunk["id"]] = (chunk["title"], chunk["status"])
    return tasks


def feedback_click(blocks: list[dict[str, Any]], grade: str, action_ts: str = "1712346450.469172") -> dict[str, Any]:
    """The `actions[0]` Slack sends when someone clicks 👍 ("up") or 👎 ("down") on an answer's native
    feedback element (fixture interactive_block_actions_feedback_buttons_action.json)."""
    [element] = [e for b in blocks if b["type"] == "context_actions" for e in b["elements"]]
    button = element["positive_button" if grade == "up" else "negative_button"]
    return {**fixture("interactive_block_actions_feedback_buttons_action.json"), "action_id": element["action_id"],
            "text": button["text"], "value": button["value"], "action_ts": action_ts}


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeSlack(FakeServer):
    api: list[ApiCall] = field(default_factory=list)
    failures: dict[str, deque[tuple[int, dict[str, Any], dict[str, str]]]] = field(default_factory=lambda: defaultdict(deque))
    emails: dict[str, str] = field(default_factory=lambda: {"U0USER1234": "spengler@ghostbusters.example.com"})
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # user id → users.info answer (guests…)
    members: dict[str, list[str]] = field(default_factory=dict)  # channel → its members (conversations.members)
    auth: dict[str, Any] | None = None  # auth.test's answer (an Enterprise Grid install), else the fixture
    hooks: list[dict[str, Any]] = field(default_factory=list)
    native_charts: bool = True  # False: a workspace (or client) that refuses data_visualization blocks
    native_tables: bool = True  # False: one that refuses data_table blocks
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    _to_socket: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id → bytes POSTed to its upload URL

    def build(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/hooks/{path:.*}", self._hook)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def fail(self, method: str, status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.failures[method].append((status, body, headers or {}))

    def called(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.api if c.method == method]

    def posted(self) -> list[dict[str, Any]]:
        """Every message as it finally reads: posts and streams, with later updates, appends and
        deletes applied (a streamed message's text is what was streamed into it)."""
        messages: dict[str, dict[str, Any]] = {}
        for call in self.api:
            params, ts = call.params, call.params.get("ts")
            if "_failed" in params:
                continue
            if call.method in ("chat.postMessage", "chat.startStream"):
                messages[params["_ts"]] = {**params, "text": params.get("text") or streamed_text(params)}
            elif call.method in ("chat.appendStream", "chat.stopStream") and ts in messages:
                messages[ts]["text"] += streamed_text(params)
                if params.get("blocks"):
                    messages[ts]["blocks"] = params["blocks"]
            elif call.method == "chat.update" and ts in messages:
                messages[ts].update({k: v for k, v in params.items() if k in ("text", "blocks")})
            elif call.method == "chat.delete" and ts in messages:
                del messages[ts]
        return list(messages.values())

    async def push(self, envelope: dict[str, Any]) -> None:
        await self._to_socket.put(envelope)

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if request.content_type == "application/json" and raw:
            params.update(strict_json(raw))
        elif raw:
            params.update({k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()})
        for key in ("blocks", "attachments", "metadata"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await self._params(request)
        except ValueError:  # Slack's JSON is standard JSON: no NaN or Infinity
            self.api.append(ApiCall(method, {"_failed": 200, "_invalid_json": (await request.read())[:200]}))
            return web.json_response({"ok": False, "error": "invalid_json"})
        auth = request.headers.get("Authorization", "")
        if method != "apps.connections.open" and auth != f"Bearer {BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if self.failures[method]:
            status, body, headers = self.failures[method].popleft()
            self.api.append(ApiCall(method, {**params, "_failed": status}))
            if isinstance(body, str):  # a proxy's error page, not Slack's JSON
                return web.Response(text=body, status=status, headers=headers, content_type="text/html")
            return web.json_response(body, status=status, headers=headers)
        if method in ("chat.postMessage", "chat.update") and (refused := self._refused_blocks(params.get("blocks") or [])):
            self.api.append(ApiCall(method, {**params, "_failed": 200, "_refused": refused}))
            return web.json_response({**fixture("webapi_chat_postMessage_invalid_blocks.json"), "errors": [refused]})
        if method in ("chat.postMessage", "chat.startStream"):
            params["_ts"] = f"{int(time.time())}.{next(self._ts):06d}"  # as Slack: now, unique in the channel
        self.api.append(ApiCall(method, params))
        return web.json_response(self._answer(method, params))

    def _refused_blocks(self, blocks: list[dict[str, Any]]) -> str:
        """Why Slack would refuse these blocks' tables or charts (the documented data_table and
        data_visualization limits; a workspace set to refuse them), or ""."""
        for kind, native, most, broken in (("data_table", self.native_tables, 1, _table_broken),
                                           ("data_visualization", self.native_charts, 2, _chart_broken)):
            found = [b for b in blocks if isinstance(b, dict) and b.get("type") == kind]
            if found and not native:
                return f"unsupported type: {kind} [json-pointer:/blocks/{blocks.index(found[0])}/type]"
            if len(found) > most:
                return f"at most {most} {kind} block(s) per message"
            for block in found:
                if broken(block):
                    return f"invalid {kind} block [json-pointer:/blocks/{blocks.index(block)}]"
        return ""

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return self.auth or fixture("webapi_auth_test_ok.json")
        if method == "chat.postMessage":
            ok = fixture("webapi_chat_postMessage_ok.json")
            ok.update(channel=params.get("channel"), ts=params["_ts"])
            ok["message"].update(ts=params["_ts"], text=params.get("text"), thread_ts=params.get("thread_ts"))
            return ok
        if method == "chat.update":
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts"), "text": params.get("text")}
        if method == "chat.startStream":  # webapi_chat_startStream_ok.json
            return {**fixture("webapi_chat_startStream_ok.json"), "channel": params.get("channel"), "ts": params["_ts"]}
        if method in ("chat.appendStream", "chat.stopStream"):
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method == "users.info" and str(params.get("user")) in self.users:
            return self.users[str(params.get("user"))]
        if method == "users.info":
            user = fixture("webapi_users_info_ok.json")
            user["user"]["id"] = params.get("user")
            email = self.emails.get(str(params.get("user")))
            if email:
                user["user"]["profile"]["email"] = email
            else:
                user["user"]["profile"].pop("email", None)
            return user
        if method == "conversations.history":  # what was posted here, newest first, as Slack lists it
            posted = [{"type": "message", "ts": p["_ts"], "text": p.get("text", ""),
                       **({"metadata": p["metadata"]} if p.get("metadata") and params.get("include_all_metadata") else {})}
                      for p in self.called("chat.postMessage")
                      if p.get("channel") == params.get("channel") and not p.get("thread_ts") and "_failed" not in p
                      and float(p["_ts"]) > float(params.get("oldest") or 0)]
            return {"ok": True, "messages": posted[::-1][: int(params.get("limit") or 100)], "has_more": False}
        if method == "conversations.members":  # webapi_conversations_members_ok.json, two per page
            if str(params.get("channel")) not in self.members:
                return {"ok": False, "error": "channel_not_found"}
            people, start = self.members[str(params.get("channel"))], int(params.get("cursor") or 0)
            page = fixture("webapi_conversations_members_ok.json")
            page["members"] = people[start:start + 2]
            page["response_metadata"]["next_cursor"] = str(start + 2) if start + 2 < len(people) else ""
            return page
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D0123ABCDEF"}}
        if method == "files.getUploadURLExternal":  # webapi_files_getUploadURLExternal_ok.json
            answer = fixture("webapi_files_getUploadURLExternal_ok.json")
            file_id = f"F0CHART{next(self._ts):04d}"
            answer.update(file_id=file_id, upload_url=f"{self.url}/upload/{file_id}")
            return answer
        if method == "files.completeUploadExternal":
            files = json.loads(params["files"]) if isinstance(params.get("files"), str) else params.get("files") or []
            return {**fixture("webapi_files_completeUploadExternal_ok.json"), "files": files}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.url.replace("http", "ws") + "/socket"}
        return {"ok": True}

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL files.getUploadURLExternal hands out: Slack answers 200 `OK - <size>`."""
        data = await request.read()
        self.uploads[request.match_info["file_id"]] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _hook(self, request: web.Request) -> web.Response:
        self.hooks.append(json.loads(await request.read()))
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json(fixture("socket_mode_hello.json"))

        async def pump() -> None:
            while True:
                await ws.send_json(await self._to_socket.get())

        pumping = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(msg.data))
        finally:
            pumping.cancel()
        return ws


def _table_broken(table: dict[str, Any]) -> bool:
    """A data_table outside the documented shape (docs.slack.dev data-table-block)."""
    rows = table.get("rows") or []
    header, cells = (rows[0] if rows else []), [c for row in rows[1:] for c in row]
    return any([not table.get("caption"), not 2 <= len(rows) <= 101, len({len(r) for r in rows}) != 1,
                not 1 <= len(header) <= 20, not 1 <= table.get("page_size", 5) <= 100,
                any(c.get("type") != "raw_text" for c in header),
                any(c.get("type") not in ("raw_text", "raw_number", "rich_text") for c in cells),
                any(c.get("type") == "raw_number" and (not isinstance(c.get("value"), (int, float)) or not c.get("text"))
                    for c in cells)])


def _chart_broken(block: dict[str, Any]) -> bool:
    """A data_visualization block outside the documented limits (docs.slack.dev data-visualization-block)."""
    chart, title = block.get("chart") or {}, block.get("title") or ""
    series = chart.get("series") or []
    categories = (chart.get("axis_config") or {}).get("categories") or []
    problems = [not 0 < len(title) <= 50, chart.get("type") not in ("bar", "line", "area"), not 1 <= len(series) <= 6,
                len({s.get("name") for s in series}) != len(series), any(len(c) > 20 for c in categories)]
    for one in series:
        points = one.get("data") or []
        problems += [not 1 <= len(points) <= 20, len(one.get("name") or "") > 20,
                     [p.get("label") for p in points] != categories[: len(points)],
                     any(not isinstance(p.get("value"), (int, float)) for p in points)]
    return any(problems)
