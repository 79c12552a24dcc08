"""Pure translation between Bot Framework activities and healthbot's models: no I/O.

Teams → Incoming: the thread is the conversation id with its `;messageid=` (a channel post's
reply chain), the bot's `<at>` mention removed. Reply → Adaptive Card: TextBlocks carry
Teams' markdown subset, markdown tables become Adaptive Card `Table` elements (Teams renders no
markdown tables), sources and confidence in a footer, 👍 / 👎 and Retry as `Action.Execute`.
"""

from __future__ import annotations

import re
from typing import Any

from botbuilder.schema import Activity

from bot.models import ErrorKind, Incoming, Membership, Platform, Reply, ThreadKey
from bot.text import split_markdown
from bot.quick import QUICK_QUESTIONS
from adapters.teams.markdown import markdown_body
from bot.tables import TABLE_RULE

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.5"
CHUNK = 18_000  # Teams rejects activities over ~28 KB; a card's JSON adds overhead to its text

VERB_FEEDBACK = "feedback"
VERB_RETRY = "retry"
VERB_QUICK = "quick"
MAX_SUGGESTED = 3  # Teams shows at most three suggested actions; the rest of the quick questions stay on the card
MAX_ACTIONS = 5  # Microsoft's renderer shows five actions on a card by default
NEW_WORDS = frozenset({"new", "/new", "reset", "start over"})
HELP_WORDS = frozenset({"", "help", "/help", "?"})


def tenant_of(activity: Activity) -> str:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = (data.get("tenant") or {}).get("id") if isinstance(data.get("tenant"), dict) else None
    return str(tenant or (activity.conversation.tenant_id if activity.conversation else "") or "")


def membership(member: Any, *, home_tenant: str) -> tuple[Membership, str]:
    """How a looked-up member (TeamsChannelAccount) belongs to the conversation's tenant, and their
    own tenant. Guests: `userRole` guest, or an Entra B2B `#EXT#` UPN (some tenants report guests
    as "user"); anonymous meeting participants are not members either."""
    tenant = str(getattr(member, "tenant_id", "") or "")
    role = str(getattr(member, "user_role", "") or "").lower()
    if tenant and home_tenant and tenant != home_tenant:
        return Membership.EXTERNAL, tenant
    if role == "anonymous":
        return Membership.ANONYMOUS, tenant
    if role == "guest" or "#EXT#" in str(getattr(member, "user_principal_name", "") or "").upper():
        return Membership.GUEST, tenant or home_tenant
    return Membership.MEMBER, tenant or home_tenant


def channel_of(activity: Activity) -> str:
    """The Teams channel id (19:…@thread.tacv2) for channel posts; the conversation id elsewhere."""
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    channel = (data.get("channel") or {}).get("id") if isinstance(data.get("channel"), dict) else None
    conversation_id = activity.conversation.id if activity.conversation else ""
    return str(channel or data.get("teamsChannelId") or conversation_id.split(";")[0])


def conversation_of(activity: Activity) -> str:
    """The conversation from Teams' envelope alone (`conversation.id` without `;messageid=`): for a
    channel, its channel id; what card actions are checked against, never the card's own data."""
    return (activity.conversation.id if activity.conversation else "").split(";")[0]


def thread_key(activity: Activity) -> ThreadKey:
    conversation_id = activity.conversation.id if activity.conversation else ""
    return ThreadKey(platform=Platform.TEAMS, workspace=tenant_of(activity), channel=channel_of(activity),
                     thread=conversation_id)


def is_channel(activity: Activity) -> bool:
    return bool(activity.conversation and activity.conversation.conversation_type == "channel")


def is_personal(activity: Activity) -> bool:
    return bool(activity.conversation and activity.conversation.conversation_type == "personal")


def _bot_mentions(activity: Activity) -> list[str]:
    """The `<at>…</at>` texts of the mentions of this bot. msrest keeps a mention's fields that it has
    no attribute for in additional_properties; any of them may be missing or of another type."""
    bot_id = activity.recipient.id if activity.recipient else None
    found = []
    for mention in activity.entities or []:  # not TurnContext.get_mentions: it calls .lower() on a None type
        if not isinstance(mention.type, str) or mention.type.lower() != "mention":
            continue
        extra = getattr(mention, "additional_properties", None) or {}
        mentioned = extra.get("mentioned")
        if isinstance(mentioned, dict) and bot_id and mentioned.get("id") == bot_id:
            text = extra.get("text")
            found.append(text if isinstance(text, str) else "")
    return found


def mentions_bot(activity: Activity) -> bool:
    return bool(_bot_mentions(activity))


def clean_text(activity: Activity) -> str:
    """The message text without the bot's `<at>` mention or stray tags (botbuilder's own helper
    raises on mentions without `mentioned` or a name)."""
    text = activity.text if isinstance(activity.text, str) else ""
    for mention in _bot_mentions(activity):
        if mention:
            text = text.replace(mention, " ")
    text = re.sub(r"</?at>", "", text)
    return " ".join(text.split())


def to_incoming(activity: Activity, text: str) -> Incoming:
    mentioned = mentions_bot(activity)
    return Incoming(
        key=thread_key(activity),
        message_id=activity.id or "",
        user_id=str(activity.from_property.aad_object_id or activity.from_property.id) if activity.from_property else "",
        user_name=(activity.from_property.name or "") if activity.from_property else "",
        text=text,
        is_dm=is_personal(activity),
        is_mention=mentioned,
        is_thread_followup=is_channel(activity) and not mentioned,
        event_id=f"teams:{activity.conversation.id if activity.conversation else ''}:{activity.id}",
    )


# -- cards ------------------------------------------------------------------------------------


def card_message(content: dict[str, Any], summary: str) -> dict[str, Any]:
    """A message activity carrying one Adaptive Card, as the Bot Connector takes it (JSON)."""
    return {"type": "message", "summary": summary,
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": content}]}


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                               "version": CARD_VERSION, "body": body, "msteams": {"width": "Full"}}
    if actions:
        content["actions"] = actions
    return content


def execute(title: str, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Action.Execute", "title": title, "verb": verb, "data": data}


def answer_cards(reply: Reply, charts: list[dict[str, Any]] | None = None, *,
                 buttons: bool = True) -> list[dict[str, Any]]:
    """The answer as cards; the last carries the charts (adapters/teams/charts.py) and ends with the
    sources and, unless Teams shows its own feedback loop there (`buttons=False`), healthbot's 👍 / 👎."""
    chunks = split_markdown(reply.content, CHUNK)
    cards = []
    for index, chunk in enumerate(chunks):
        body = markdown_body(chunk)
        if len(chunks) > 1:
            body.append({"type": "TextBlock", "text": f"({index + 1}/{len(chunks)})", "isSubtle": True, "size": "Small"})
        actions = None
        if index == len(chunks) - 1:
            body += charts or []
            line = reply.footer()
            if line:
                body.append({"type": "TextBlock", "text": line, "isSubtle": True, "size": "Small", "wrap": True,
                             "separator": True})
            if buttons:
                actions = [execute("👍 Helpful", VERB_FEEDBACK, {"request_id": reply.request_id, "value": 1}),
                           execute("👎 Not helpful", VERB_FEEDBACK, {"request_id": reply.request_id, "value": -1})]
        cards.append(card(body, actions))
    return cards


def error_card(reply: Reply, *, retrying: bool = False) -> dict[str, Any]:
    """The error, its request id and Retry; the button carries the words so that, clicked, the card
    keeps them and says "retrying…" (Teams replaces a clicked card with the invoke's answer)."""
    icon = "🔒" if reply.error is ErrorKind.REFUSED else "⚠️"
    body = [{"type": "TextBlock", "text": f"{icon} {reply.content}", "wrap": True, "color": "Attention"},
            {"type": "TextBlock", "text": f"request id {reply.request_id}", "isSubtle": True, "size": "Small"}]
    if retrying:
        body.append({"type": "TextBlock", "text": "Retrying…", "isSubtle": True, "wrap": True})
    retry = execute("Retry", VERB_RETRY, {"request_id": reply.request_id, "message": reply.content[:1000]})
    return card(body, [retry] if reply.retryable and not retrying else None)


_MENTIONED = re.compile(r"[\w.]+")


def cited(content: str, sources: list[str]) -> str:
    """The answer with `[n]` after the first mention of the n-th source (Teams shows citation n where
    the text carries its marker); sources the text does not name stay in the citation list, unmarked."""
    for number, source in reversed(list(enumerate(sources[:20], start=1))):
        name = source.strip()
        if not name or name.startswith("SQL:") or not _MENTIONED.fullmatch(name):
            continue
        found = re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])`?", content)
        if found:
            content = content[:found.end()] + f" [{number}]" + content[found.end():]
    return content


def ai_message(reply: Reply) -> dict[str, Any]:
    """Teams' AI label and citations: a `https://schema.org/Message` entity with `additionalType`
    AIGeneratedContent and one `Claim` per source (msteams-docs bots/how-to/bot-messages-ai-generated-content)."""
    citations = [{"@type": "Claim", "position": index,
                  "appearance": {"@type": "DigitalDocument", "name": source[:80],
                                 "abstract": (source if not source.startswith("SQL:") else source[4:].strip())[:160]}}
                 for index, source in enumerate(reply.sources[:20], start=1)]
    entity: dict[str, Any] = {"type": "https://schema.org/Message", "@type": "Message", "@context": "https://schema.org",
                              "@id": "", "additionalType": ["AIGeneratedContent"]}
    if citations:
        entity["citation"] = citations
    return entity


def reply_messages(reply: Reply, charts: list[dict[str, Any]] | None = None, *,
                   buttons: bool = False) -> list[dict[str, Any]]:
    """The answer (or error) as the message activities to send, one card each. Answers carry the AI
    label and citations (their `[n]` markers in the text) and turn on Teams' own feedback loop
    (`channelData.feedbackLoopEnabled`). Teams shows that loop on a new message outside team channels
    only, so the card keeps its own 👍 / 👎 (`buttons`) in channels and whenever it updates a message."""
    if reply.error is None:
        reply = reply.model_copy(update={"content": cited(reply.content, reply.sources)})
    cards = [error_card(reply)] if reply.error is not None else answer_cards(reply, charts, buttons=buttons)
    messages = [card_message(card, plain_summary(reply.content)) for card in cards]
    if reply.error is None:
        for message in messages:
            message["entities"] = [ai_message(reply)]
            message["channelData"] = {"feedbackLoopEnabled": True}
    return messages


def plain_text(markdown: str) -> str:
    """The answer's characters without markdown's syntax: emphasis and code marks, heading marks, link
    brackets (`[t](u)` → `t`), a table's rule row, its pipes (cells joined by " · ", a row a line). An
    underscore inside a name stays (nightly_customer_etl)."""
    lines = []
    for line in markdown.split("\n"):
        if TABLE_RULE.match(line.strip()):
            continue
        if line.strip().startswith("|"):
            line = " · ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
        lines.append(line)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", "\n".join(lines))
    text = re.sub(r"^#{1,6}\s+", "", text, flags=re.M)
    return re.sub(r"\*\*|__|[*`]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", "", text)


def plain_summary(markdown: str, limit: int = 250) -> str:
    """The notification / accessibility text for a card: the answer's characters, kept short."""
    text = " ".join(plain_text(markdown).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def help_card(welcome: bool = False) -> dict[str, Any]:
    intro = ("👋 Thanks for adding **healthbot**. " if welcome else "") + (
        "I answer questions about your Databricks platform: costs, jobs, query performance, security and data "
        "quality. Mention me in a channel (I answer in the thread, and follow-ups there keep the context) or "
        "chat with me here. Say **new** to start a fresh conversation.")
    actions = [execute(question, VERB_QUICK, {"name": name}) for name, question in QUICK_QUESTIONS.items()]
    return card([{"type": "TextBlock", "text": intro, "wrap": True}], actions)


def quick_suggestions() -> dict[str, Any]:
    """The quick questions as suggested actions (chips above the compose box in personal chat): a tap
    sends the question as the person's own message (imBack)."""
    return {"actions": [{"type": "imBack", "title": question, "value": question}
                        for question in list(QUICK_QUESTIONS.values())[:MAX_SUGGESTED]]}


def thanked(card_content: dict[str, Any] | None, positive: bool) -> dict[str, Any]:
    """The answer card with its feedback buttons replaced by a thank-you line."""
    body = list((card_content or {}).get("body") or [])
    body.append({"type": "TextBlock", "text": ("👍" if positive else "👎") + " Thanks for the feedback.",
                 "isSubtle": True, "wrap": True})
    return card(body)


def notice(text: str) -> dict[str, Any]:
    return card([{"type": "TextBlock", "text": text, "wrap": True}])
