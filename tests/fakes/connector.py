"""A fake Bot Framework connector (the activity's `serviceUrl`), recording what the bot sends."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, strict_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Sent:
    conversation_id: str
    reply_to: str | None
    activity: dict[str, Any]
    kind: str  # reply / send / update / create
    at: float = field(default_factory=time.monotonic)

    @property
    def card(self) -> dict[str, Any] | None:
        attachments = self.activity.get("attachments") or []
        return attachments[0]["content"] if attachments else None


@dataclass
class FakeConnector(FakeServer):
    sent: list[Sent] = field(default_factory=list)
    failures: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)  # for message sends
    emails: dict[str, str] = field(default_factory=lambda: {
        "29:1FAKEuserMRIaBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-abcdefghijklmnopqrstuv": "alex.smith@contoso.example"})
    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # member id → GET members/{id} body
    stream_failures: deque[tuple[int, str]] = field(default_factory=deque)  # (status, fixture) for streaming sends
    personal_refused: bool = False  # creating a 1:1 chat is refused (the app is not installed for the person)
    max_message_bytes: int | None = None  # larger message activities are refused 413, as the connector does
    drop_connections: int = 0  # this many next requests: the connection is closed without an answer (idle close)
    dropped: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def build(self, app: web.Application) -> None:
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._post)
        app.router.add_post("/v3/conversations/{conversation}/activities", self._post)
        app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", self._update)
        app.router.add_get("/v3/conversations/{conversation}/members/{member}", self._member)
        app.router.add_post("/v3/conversations", self._create)

    def messages(self) -> list[Sent]:
        return [s for s in self.sent if s.activity.get("type") == "message"]

    def cards(self) -> list[dict[str, Any]]:
        return [s.card for s in self.messages() if s.card]

    def _fail(self, activity: dict[str, Any]) -> web.Response | None:
        if activity.get("type") == "message" and self.failures:
            status, headers = self.failures.popleft()
            return web.json_response({"error": {"code": "Throttled", "message": "slow down"}}, status=status, headers=headers)
        return None

    async def _post(self, request: web.Request) -> web.Response:
        """Reply to an activity (`…/activities/{id}`) or send to the conversation (`…/activities`).
        Streaming (a `streaminfo` entity): 201 with the stream id first, then 202 (streaming_*.json)."""
        body = await request.read()
        if self.drop_connections > 0:  # the keep-alive connection closes under the request: nothing is taken
            self.drop_connections -= 1
            self.dropped += 1
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        try:
            activity = strict_json(body)
        except ValueError as exc:  # the Bot Framework reads standard JSON: no NaN or Infinity
            return web.json_response({"error": {"code": "BadSyntax", "message": str(exc)}}, status=400)
        failed = self._fail(activity)
        if failed is not None:
            return failed
        if self.max_message_bytes is not None and len(body) > self.max_message_bytes:
            return web.json_response({"error": {"code": "MessageSizeTooBig", "message": "Message size too large"}},
                                     status=413)
        reply_to = request.match_info.get("activity")
        info = next((e for e in activity.get("entities") or [] if e.get("type") == "streaminfo"), None)
        if info is not None and self.stream_failures:
            status, name = self.stream_failures.popleft()
            return web.json_response(fixture(name)["body"], status=status)
        self.sent.append(Sent(request.match_info["conversation"], reply_to, activity, "reply" if reply_to else "send"))
        if info is not None and info.get("streamId"):
            return web.json_response(fixture("streaming_response_202_subsequent.json")["body"], status=202)
        status = 201 if info is not None else 200
        return web.json_response({"id": f"1760000000{next(self._ids):03d}"}, status=status)

    async def _update(self, request: web.Request) -> web.Response:
        self.sent.append(Sent(request.match_info["conversation"], request.match_info["activity"], await request.json(), "update"))
        return web.json_response({"id": request.match_info["activity"]})

    async def _member(self, request: web.Request) -> web.Response:
        """GET …/members/{id}: a member of the fixtures' tenant (member_get_user.json), or what a test
        put in `members` (a guest, a user of another tenant: member_get_guest.json and friends)."""
        member = request.match_info["member"]
        if member in self.members:
            return web.json_response(self.members[member])
        body: dict[str, Any] = {**fixture("member_get_user.json"), "id": member, "name": "Alex Smith",
                                "aadObjectId": "11111111-2222-3333-4444-555555555555"}
        body.pop("email"), body.pop("userPrincipalName")
        if member in self.emails:
            body.update(email=self.emails[member], userPrincipalName=self.emails[member])
        return web.json_response(body)

    async def _create(self, request: web.Request) -> web.Response:
        params = await request.json()
        if params.get("isGroup") is False:  # a 1:1 chat with one member: Teams answers {"id": "a:…"}
            if self.personal_refused:
                return web.json_response({"error": {"code": "Forbidden", "message": "app not installed"}}, status=403)
            member = (params.get("members") or [{}])[0].get("id", "")
            self.sent.append(Sent("", None, {"type": "conversation", "_create": params}, "create"))
            return web.json_response({"id": f"a:1personal-{member[-8:]}"})
        activity_id = f"1760000000{next(self._ids):03d}"
        channel = ((params.get("channelData") or {}).get("channel") or {}).get("id", "")
        self.sent.append(Sent(channel, None, dict(params.get("activity") or {}, _create=params), "create"))
        return web.json_response({"id": f"{channel};messageid={activity_id}", "activityId": activity_id})
