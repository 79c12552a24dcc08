"""Refresh tokens at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

`HEALTHBOT_TOKEN_KEY` is one key, or several separated by commas: the first seals, all of them
open, so a key can be rotated without signing everybody out (MultiFernet's documented use). A
row no key opens (the key was replaced, not rotated) reads as "not connected": the person is asked
to connect again, never shown an error.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class Unreadable(Exception):
    """A sealed value no configured key opens, or that was tampered with."""


class Sealer:
    def __init__(self, keys: list[Fernet]) -> None:
        self._fernet = MultiFernet(keys)
        self.keys = len(keys)

    @classmethod
    def from_setting(cls, value: str) -> Sealer:
        """From HEALTHBOT_TOKEN_KEY; raises ValueError saying how to make a key (never echoing one)."""
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts:
            raise ValueError("HEALTHBOT_IDENTITY=user needs HEALTHBOT_TOKEN_KEY (make one with: python -c "
                             "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')")
        keys = []
        for index, part in enumerate(parts, 1):
            try:
                keys.append(Fernet(part.encode()))
            except (ValueError, TypeError):
                raise ValueError(f"HEALTHBOT_TOKEN_KEY: key {index} is not a Fernet key (32 url-safe base64 bytes)") from None
        return cls(keys)

    def seal(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            value = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError, TypeError):
            raise Unreadable("no configured key opens this value") from None
        if not isinstance(value, dict):
            raise Unreadable("not a sealed object")
        return value
