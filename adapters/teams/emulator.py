"""Emulator mode (`HEALTHBOT_TEAMS_EMULATOR=on`): unauthenticated activities from local tools only.

Microsoft 365 Agents Playground and the Bot Framework Emulator send activities without a Bot
Framework token, so without credentials nothing proves who is calling. Emulator mode therefore
trusts only what cannot be forged from elsewhere: a loopback TCP peer with no proxy in between (a
same-host proxy or sidecar makes every caller look like loopback, so any `Forwarded` /
`X-Forwarded-*` header refuses the request), and a `serviceUrl` on loopback. The `serviceUrl` is
checked strictly (scheme, a loopback host, an optional port, a plain path; no userinfo, backslash,
whitespace, control or percent-encoded character) and the request continues with the URL rebuilt
from the checked parts, so what the outbound clients send to is exactly what was checked — a parser
difference (`http://HOST\\@127.0.0.1/` is loopback to `urlparse`, HOST to urllib3) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

PROXY_HEADERS = ("forwarded", "x-real-ip")
PROXY_PREFIX = "x-forwarded-"
_SERVICE_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>localhost|\d{1,3}(?:\.\d{1,3}){3}|\[::1\])(?::(?P<port>\d{1,5}))?"
    r"(?P<path>/[A-Za-z0-9._~/-]*)?", re.ASCII)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_service_url(text: str) -> str | None:
    """The serviceUrl rebuilt from its checked parts when it is exactly http(s) + a loopback host +
    an optional port + a plain path; None for anything else."""
    match = _SERVICE_URL.fullmatch(text)
    if match is None or not is_loopback(match["host"]):
        return None
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        return None
    return f"{match['scheme']}://{match['host']}{':' + str(int(port)) if port else ''}{match['path'] or '/'}"


def refusal(peer: str | None, headers: Mapping[str, str], service_url: str) -> tuple[str, str | None]:
    """(why the request is refused, "" to go on; the serviceUrl to continue with)."""
    forwarded = sorted({name.lower() for name in headers
                        if name.lower() in PROXY_HEADERS or name.lower().startswith(PROXY_PREFIX)})
    if forwarded:
        return f"emulator mode refuses proxied requests ({', '.join(forwarded)})", None
    if not is_loopback(peer):
        return "emulator mode accepts loopback callers only", None
    checked = loopback_service_url(service_url)
    if checked is None:
        return "emulator mode accepts only a loopback serviceUrl (http(s)://127.0.0.1:PORT/path)", None
    return "", checked
