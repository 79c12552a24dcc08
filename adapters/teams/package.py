"""`healthbot teams-package`: a sideloadable Teams app (manifest.json + two icons in a zip).

Icons are drawn here (a pulse line, the Health Monitor's mark) and written as PNG with zlib, so
packaging needs no imaging library: color.png 192×192, outline.png 32×32 white on transparent.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from typing import Any
from urllib.parse import urlparse

from bot.quick import QUICK_QUESTIONS

MANIFEST_VERSION = "1.22"
SCHEMA_URL = f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
ACCENT = "#FF3621"
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def build_manifest(app_id: str, *, bot_url: str | None = None, developer_url: str = "https://www.databricks.com",
                   version: str = "1.0.0") -> dict[str, Any]:
    if not GUID.match(app_id):
        raise ValueError(f"--app-id must be the bot's Microsoft App ID (a GUID), got {app_id!r}")
    scopes = ["personal", "team", "groupChat"]
    commands = [{"title": name, "description": question} for name, question in QUICK_QUESTIONS.items()]
    commands.append({"title": "help", "description": "What healthbot can do, and the quick questions"})
    commands.append({"title": "new", "description": "Start a new conversation"})
    commands.append({"title": "disconnect", "description": "Forget your connected Databricks account (where healthbot asks as you)"})
    manifest: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "manifestVersion": MANIFEST_VERSION,
        "version": version,
        "id": app_id,
        "developer": {"name": "healthbot", "websiteUrl": developer_url, "privacyUrl": developer_url,
                      "termsOfUseUrl": developer_url},
        "name": {"short": "healthbot", "full": "healthbot: Databricks Health Monitor"},
        "description": {
            "short": "Ask the Databricks Health Monitor about costs, jobs, queries and security.",
            "full": ("healthbot brings the Databricks Health Monitor into Teams. Mention it in a channel to ask why costs "
                     "spiked, which jobs failed, which queries are slow, whether there are security concerns or how the "
                     "platform is doing; it answers in the thread with sources and a confidence, and follow-ups in the "
                     "thread keep the conversation. Databricks alerts can be posted to channels, one thread per alert."),
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": ACCENT,
        "bots": [{"botId": app_id, "scopes": scopes, "supportsFiles": False, "isNotificationOnly": False,
                  "commandLists": [{"scopes": scopes, "commands": commands}]}],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [],
    }
    if bot_url:
        host = urlparse(bot_url).hostname
        if host:
            manifest["validDomains"] = [host]
    return manifest


# -- icons ------------------------------------------------------------------------------------


def png(width: int, height: int, pixels: list[list[tuple[int, int, int, int]]]) -> bytes:
    """An RGBA PNG: signature, IHDR, one zlib-compressed IDAT (filter 0 per row), IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(channel for pixel in row for channel in pixel) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _pulse(size: int, x: float) -> float:
    """The heartbeat line, as a height (0..1 of the icon) for a horizontal position (0..1)."""
    points = [(0.0, 0.5), (0.3, 0.5), (0.4, 0.25), (0.5, 0.78), (0.6, 0.4), (0.68, 0.5), (1.0, 0.5)]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return 0.5


def _draw(size: int, line: tuple[int, int, int, int], background: tuple[int, int, int, int], thickness: float) -> bytes:
    rows = []
    margin = size * 0.12
    for y in range(size):
        row = []
        for x in range(size):
            inside = margin <= x <= size - margin
            target = _pulse(size, (x - margin) / (size - 2 * margin)) * size if inside else None
            on_line = target is not None and abs(y - target) <= thickness
            # steep segments: also fill between neighbouring columns so the line has no gaps
            if inside and not on_line:
                nxt = _pulse(size, min(1.0, (x + 1 - margin) / (size - 2 * margin))) * size
                low, high = sorted((target or 0.0, nxt))
                on_line = low - thickness <= y <= high + thickness
            row.append(line if on_line else background)
        rows.append(row)
    return png(size, size, rows)


def color_icon() -> bytes:
    return _draw(192, (255, 255, 255, 255), (0xFF, 0x36, 0x21, 255), 5.0)


def outline_icon() -> bytes:
    return _draw(32, (255, 255, 255, 255), (0, 0, 0, 0), 1.0)


def build_package(app_id: str, *, bot_url: str | None = None, developer_url: str = "https://www.databricks.com") -> bytes:
    manifest = build_manifest(app_id, bot_url=bot_url, developer_url=developer_url)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        archive.writestr("color.png", color_icon())
        archive.writestr("outline.png", outline_icon())
    return buffer.getvalue()
