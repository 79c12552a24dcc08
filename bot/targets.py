"""Channel targets written in config as `slack:C0123ABCD` or `teams:19:…@thread.tacv2`.

Parsed once at the edge into a typed reference (errbot's `build_identifier` habit), so the rest
of the code never splits strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import Platform

_CHAT_PLATFORMS = {Platform.SLACK.value, Platform.TEAMS.value}


@dataclass(frozen=True, slots=True)
class ChannelTarget:
    platform: Platform
    channel: str

    def __str__(self) -> str:
        return f"{self.platform.value}:{self.channel}"


def parse_target(text: str) -> ChannelTarget:
    platform, sep, channel = text.strip().partition(":")
    if not sep or platform.lower() not in _CHAT_PLATFORMS or not channel.strip():
        raise ValueError(f"{text!r} is not a channel target; write slack:CHANNEL_ID or teams:CHANNEL_ID")
    return ChannelTarget(Platform(platform.lower()), channel.strip())


def parse_targets(texts: list[str]) -> list[ChannelTarget]:
    return [parse_target(text) for text in texts]
