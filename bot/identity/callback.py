"""`GET /oauth/callback`: where the workspace sends a person's browser after they sign in.

The page is plain HTML with one sentence of what happened; it is never cached, never sends a
Referer (the URL holds the authorization code) and runs no script. A forged, replayed or expired
state, a refused consent (`error=access_denied`), another person's account or a slow token endpoint
each get their own sentence, and nothing is stored unless the sign-in is whole.
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from bot.identity.service import Identities, Outcome
from bot.inbound import refusals

log = logging.getLogger(__name__)

ROUTE = "GET /oauth/callback"
IDENTITIES = web.AppKey("identities", Identities)
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
MAX_PARAM = 4096


def mount_identity(app: web.Application, identities: Identities) -> None:
    app[IDENTITIES] = identities
    app.router.add_get("/oauth/callback", callback)

    async def finish(_: web.Application) -> None:
        await identities.drain()

    app.on_cleanup.append(finish)


async def callback(request: web.Request) -> web.Response:
    query = request.query
    if query.get("error"):  # the person declined, or the workspace refused the request
        words = query.get("error_description") or query["error"]
        refusals.refused(ROUTE, f"sign-in not completed: {query['error'][:100]}")
        return page(Outcome(False, "Databricks sign-in was not completed",
                            f"Databricks said: {words[:300]}. Ask healthbot again to get a new link."))
    code, state = query.get("code", ""), query.get("state", "")
    if not code or not state or len(code) > MAX_PARAM or len(state) > MAX_PARAM:
        refusals.refused(ROUTE, "code and state are required")
        return page(Outcome(False, "This is not a sign-in healthbot can finish",
                            "The link is missing its code or state. Ask healthbot again to get a new link."))
    outcome = await request.app[IDENTITIES].complete(code, state)
    if not outcome.ok:
        refusals.refused(ROUTE, outcome.title, status=outcome.status)
    return page(outcome)


def page(outcome: Outcome) -> web.Response:
    title, words = html.escape(outcome.title), html.escape(outcome.words)
    mark = "&#10003;" if outcome.ok else "&#9888;"
    body = (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>healthbot: {title}</title><body style='font-family:system-ui,sans-serif;max-width:36em;"
            f"margin:4em auto;padding:0 1em'><h1>{mark} {title}</h1><p>{words}</p></body></html>")
    return web.Response(text=body, content_type="text/html", status=outcome.status if not outcome.ok else 200,
                        headers=HEADERS)
