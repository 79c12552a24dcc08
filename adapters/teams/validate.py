"""The shape of a Bot Framework activity, checked before botbuilder (msrest) deserializes it.

msrest raises on a wrong type in any field (a 500 from the adapter), and the turn code reads
`conversation.id`, `from.id` and `serviceUrl` without looking; an activity missing them is
refused here with a 400 and gets no reply at all (there is nowhere sensible to send one).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.inbound import BadInput, load_json

# Ids travel in URL paths and in the `x-ms-conversation-id` header of replies (HTTP headers are
# Latin-1): the Bot Framework's are printable ASCII, anything else is refused here.
AsciiId = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[ -~]+$")]


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port  # both raise ValueError on a malformed netloc ("http://[::1")
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("not an http(s) URL")
    return value


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Account(_Shape):
    id: AsciiId
    name: str | None = None
    aadObjectId: str | None = None  # noqa: N815 - the wire's own names
    role: str | None = None


class Conversation(_Shape):
    id: AsciiId
    tenantId: str | None = None  # noqa: N815
    conversationType: str | None = None  # noqa: N815
    isGroup: bool | None = None  # noqa: N815
    name: str | None = None


class Mention(_Shape):
    type: str | None = None
    text: str | None = None
    mentioned: Account | None = None


class Named(_Shape):
    """Team, channel and tenant in channelData (botbuilder deserializes them as TeamInfo etc.)."""

    id: AsciiId
    name: str | None = None
    aadGroupId: str | None = None  # noqa: N815
    type: str | None = None


class Notification(_Shape):
    alert: bool | None = None
    alertInMeeting: bool | None = None  # noqa: N815
    externalResourceUrl: str | None = None  # noqa: N815


class Settings(_Shape):
    selectedChannel: Named | None = None  # noqa: N815


class OnBehalfOf(_Shape):
    itemId: int | None = None  # noqa: N815
    mentionType: str | None = None  # noqa: N815
    mri: str | None = None
    displayName: str | None = None  # noqa: N815


class ChannelData(_Shape):
    """What TeamsActivityHandler deserializes as TeamsChannelData on every Teams activity."""

    team: Named | None = None
    channel: Named | None = None
    tenant: Named | None = None
    eventType: str | None = None  # noqa: N815
    meeting: Named | None = None
    notification: Notification | None = None
    settings: Settings | None = None
    onBehalfOf: list[OnBehalfOf] | None = None  # noqa: N815


class InboundActivity(_Shape):
    type: AsciiId
    id: AsciiId
    serviceUrl: Annotated[str, Field(pattern=r"^[ -~]+$"), AfterValidator(_http_url)]  # noqa: N815
    conversation: Conversation
    from_: Account = Field(alias="from")
    recipient: Account | None = None
    channelId: str | None = None  # noqa: N815
    text: str | None = None
    textFormat: str | None = None  # noqa: N815
    name: str | None = None
    replyToId: str | None = None  # noqa: N815
    timestamp: str | None = None
    localTimestamp: str | None = None  # noqa: N815
    locale: str | None = None
    channelData: ChannelData | None = None  # noqa: N815
    entities: list[Mention] | None = None
    attachments: list[dict[str, Any]] | None = None
    membersAdded: list[Account] | None = None  # noqa: N815
    membersRemoved: list[Account] | None = None  # noqa: N815
    reactionsAdded: list[dict[str, Any]] | None = None  # noqa: N815
    action: str | None = None

    @model_validator(mode="after")
    def _teams_needs_channel_data(self) -> InboundActivity:
        if self.channelId == "msteams" and self.channelData is None:
            raise ValueError("channelData is required for msteams activities")
        return self


def checked_activity(raw: bytes) -> dict[str, Any]:
    """The activity as a dict (strings normalised), or BadInput naming what is wrong."""
    body = load_json(raw)
    if not isinstance(body, dict):
        raise BadInput("expected an Activity object")
    try:
        InboundActivity.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "activity"
        raise BadInput(f"{where}: {first['msg']}") from None
    return body
