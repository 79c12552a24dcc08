"""`POST /alerts/databricks`: authenticate, parse, store, 200 — delivery happens in the outbox worker.

Databricks webhook destinations can send only a URL plus username/password, so HTTP Basic whose
password is HEALTHBOT_ALERT_TOKEN is accepted as well as `Authorization: Bearer <token>`; both are
compared in constant time. Without a token configured the route is closed (503), never open.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from aiohttp import web

from bot.alerts.dispatch import AlertDispatcher
from bot.alerts.parse import parse_alert
from bot.inbound import load_json, refusals

log = logging.getLogger(__name__)

LOGGED_BODY_BYTES = 200
ROUTE = "POST /alerts/databricks"


def presented_secret(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


class AlertWebhook:
    def __init__(self, *, dispatcher: AlertDispatcher, token: str | None, max_body_bytes: int,
                 workspace_host: str | None) -> None:
        self.dispatcher = dispatcher
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.workspace_host = workspace_host

    async def handle(self, request: web.Request) -> web.Response:
        if not self.token:
            return web.json_response({"error": "alerts disabled: set HEALTHBOT_ALERT_TOKEN"}, status=503)
        secret = presented_secret(request.headers.get("Authorization", ""))
        if secret is None or not hmac.compare_digest(secret.encode(), self.token.encode()):
            return web.json_response({"error": "unauthorized: use Bearer <token> or Basic auth with the token as password"},
                                     status=401, headers={"WWW-Authenticate": 'Basic realm="healthbot alerts"'})
        too_large = web.json_response({"error": f"body over {self.max_body_bytes} bytes"}, status=413)
        if (request.content_length or 0) > self.max_body_bytes:
            return too_large
        body = bytearray()
        async for chunk in request.content.iter_any():  # chunked bodies have no length: count as they come
            body += chunk
            if len(body) > self.max_body_bytes:
                return too_large
        try:
            alert = parse_alert(load_json(bytes(body)), workspace_host=self.workspace_host)
        except ValueError as exc:  # BadInput, and the parsers' reasons
            refusals.refused(ROUTE, f"{exc}; body starts: {bytes(body[:LOGGED_BODY_BYTES])!r}")
            return web.json_response({"error": str(exc)}, status=400)
        try:
            targets = await self.dispatcher.submit(alert)
        except Exception as exc:  # the store is down: the sender retries a 503, a 200 would lose the alert
            log.error("alert %s could not be stored, answered 503 for the sender to retry: %s: %s",
                      alert.key, type(exc).__name__, str(exc)[:200])
            return web.json_response({"error": "alert could not be stored; retry later"}, status=503,
                                     headers={"Retry-After": "30"})
        return web.json_response({"ok": True, "key": alert.key, "state": alert.state, "targets": targets})
