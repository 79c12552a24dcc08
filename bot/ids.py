"""Identifiers healthbot makes: UUIDv7 (RFC 9562), time-ordered, for rows that are looked up by them.

A random UUID (v4) lands each insert on a random page of the key's index: every new request-log row,
session and message then dirties a page of its own, which the WAL writes at commit. A v7 UUID starts
with the time in milliseconds, so new keys append to the index's last page, shared by the rows
committed together; and ids sort by time when someone greps the logs for them. (Python 3.14 has
`uuid.uuid7`; this project runs on 3.11.)
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def new_request_id() -> str:
    """A request id: hex, as the request log, the traces and the feedback buttons carry it."""
    return uuid7().hex


def new_session_id() -> str:
    """A conversation's session id: the canonical UUID form the endpoint is sent (DESIGN.md)."""
    return str(uuid7())
