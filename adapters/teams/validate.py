"""The shape of a Bot Framework activity, checked before botbuilder (msrest) deserializes it.

msrest raises on a wrong type in any field (a 500 from the adapter), and the turn code reads
`conversation.id`, `from.id` and `serviceUrl` without looking; an activity missing them is
refused here with a 400 and gets no reply at all (there is nowhere sensible to send one).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from bot.inbound import BadInput, HttpUrl, Shape, load_json, reason

# Ids travel in URL paths and in the `x-ms-conversation-id` header of replies (HTTP headers are
# Latin-1): the Bot Framework's are printable ASCII, anything else is refused here.
AsciiId = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[ -~]+$")]


class Account(Shape):
    id: AsciiId
    name: str | None = None
    aadObjectId: str | None = None  # noqa: N815 - the wire's own names
    role: str | None = None


class Conversation(Shape):
    id: AsciiId
    tenantId: str | None = None  # noqa: N815
    conversationType: str | None = None  # noqa: N815
    isGroup: bool | None = None  # noqa: N815
    name: str | None = None


class Mention(Shape):
    type: str | None = None
    text: str | None = None
    mentioned: Account | None = None


class Named(Shape):
    """Team, channel and tenant in channelData (botbuilder deserializes them as TeamInfo etc.)."""

    id: AsciiId
    name: str | None = None
    aadGroupId: str | None = None  # noqa: N815
    type: str | None = None


class Notification(Shape):
    alert: bool | None = None
    alertInMeeting: bool | None = None  # noqa: N815
    externalResourceUrl: str | None = None  # noqa: N815


class Settings(Shape):
    selectedChannel: Named | None = None  # noqa: N815


class OnBehalfOf(Shape):
    itemId: int | None = None  # noqa: N815
    mentionType: str | None = None  # noqa: N815
    mri: str | None = None
    displayName: str | None = None  # noqa: N815


class ChannelData(Shape):
    """What TeamsActivityHandler deserializes as TeamsChannelData on every Teams activity."""

    team: Named | None = None
    channel: Named | None = None
    tenant: Named | None = None
    eventType: str | None = None  # noqa: N815
    meeting: Named | None = None
    notification: Notification | None = None
    settings: Settings | None = None
    onBehalfOf: list[OnBehalfOf] | None = None  # noqa: N815


class InboundActivity(Shape):
    type: AsciiId
    id: AsciiId
    serviceUrl: Annotated[HttpUrl, Field(pattern=r"^[ -~]+$")]  # noqa: N815
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
        raise BadInput(reason(exc)) from None
    return with_tenant(body)


def with_tenant(body: dict[str, Any]) -> dict[str, Any]:
    """Teams sends the tenant as `conversation.tenantId` (and `channelData.tenant.id`), but
    botbuilder-schema's ConversationAccount reads it from a key spelled `tenantID`: without this the
    stored conversation reference has no tenant, and a 1:1 chat or channel post created from it is
    refused ("Could not parse tenant id", botbuilder-dotnet #2309)."""
    conversation = body.get("conversation")
    data = body.get("channelData")
    tenant = data.get("tenant") if isinstance(data, dict) else None
    if isinstance(conversation, dict) and not conversation.get("tenantID"):
        found = conversation.get("tenantId") or (tenant.get("id") if isinstance(tenant, dict) else None)
        if isinstance(found, str) and found:
            conversation["tenantID"] = found
    return body
