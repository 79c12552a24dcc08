"""Teams over the wire: real-format activities into POST /api/messages, a fake Bot Connector out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.config import load_settings
from adapters.host.server import TEAMS, create_app
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.connector import FakeConnector, fixture
from tests.fakes.serving import FakeServing, Scripted, answer_body, error

CHANNEL = "19:0123456789abcdef0123456789abcdef@thread.tacv2"
THREAD = f"{CHANNEL};messageid=1759881511856"
TENANT = "00000000-0000-0000-0000-0000000000aa"


class TeamsRig:
    def __init__(self, connector: FakeConnector, serving: FakeServing, url: str, app: web.Application) -> None:
        self.connector, self.serving, self.url, self.app = connector, serving, url, app

    @property
    def teams(self) -> Any:
        return self.app[TEAMS]

    @property
    def store(self) -> SqliteStore:
        return self.teams.handler.store

    def activity(self, name: str, **changes: Any) -> dict[str, Any]:
        body = fixture(name)
        body["serviceUrl"] = self.connector.url + "/"
        body.update(changes)
        return body

    async def post(self, activity: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        async with aiohttp.ClientSession() as http, http.post(
            f"{self.url}/api/messages", data=data, headers={"Content-Type": "application/json", **(headers or {})}
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text.startswith("{") else text)

    async def settle(self) -> None:
        await self.teams.drain()

    def sessions_at_endpoint(self) -> list[str]:
        return [body["inputs"]["params"]["session_id"] for body in self.serving.invocation_bodies()]


async def start_rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, serving: FakeServing, **env: str) -> tuple[TeamsRig, web.AppRunner]:
    connector = FakeConnector()
    await connector.start()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("adapters.teams.answering.TYPING_EVERY_S", 0.2)
    monkeypatch.setattr("adapters.teams.answering.TYPING_AFTER_S", 0.2)
    app = create_app(load_settings(), store=SqliteStore(tmp_path / "bot.db"), engine=make_client(serving))
    runner, url = await serve(app)
    return TeamsRig(connector, serving, url, app), runner


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> AsyncIterator[TeamsRig]:
    r, runner = await start_rig(monkeypatch, tmp_path, fake_serving)
    yield r
    await runner.cleanup()
    await r.connector.stop()


def card_texts(card: dict[str, Any]) -> str:
    return json.dumps(card)


async def test_channel_mention_is_answered_in_the_thread_with_a_card(rig: TeamsRig) -> None:
    status, _ = await rig.post(rig.activity("message_channel_mention_new_post.json"))
    assert status in (200, 201)
    await rig.connector.wait_for(lambda: rig.connector.cards())
    await rig.settle()
    [answer] = rig.connector.messages()
    assert answer.conversation_id == THREAD and answer.reply_to == "1759881511856"
    card = answer.card
    assert card is not None and card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == "Costs rose 42%."
    assert "Sources: system.billing.usage" in card_texts(card) and "Confidence 90%" in card_texts(card)
    assert [a["verb"] for a in card["actions"]] == ["feedback", "feedback"]
    assert answer.activity["summary"] == "Costs rose 42%."
    sent = rig.serving.invocation_bodies()[0]["inputs"]
    assert sent["messages"] == [{"role": "user", "content": "why did costs spike"}]  # <at> mention removed
    assert sent["params"]["user_id"] == "alex.smith@contoso.example"  # TeamsInfo.get_member


async def test_follow_up_in_the_thread_keeps_the_session(rig: TeamsRig) -> None:
    await rig.post(rig.activity("message_channel_mention_new_post.json"))
    await rig.connector.wait_for(lambda: len(rig.connector.cards()) == 1)
    await rig.post(rig.activity("message_channel_thread_reply_mention.json"))
    await rig.connector.wait_for(lambda: len(rig.connector.cards()) == 2)
    first, second = rig.sessions_at_endpoint()
    assert first == second
    texts = [m["content"] for m in rig.serving.invocation_bodies()[1]["inputs"]["messages"]]
    assert texts == ["why did costs spike", "Costs rose 42%.", "and what about yesterday?"]


async def test_personal_chat_is_one_session_until_new(rig: TeamsRig) -> None:
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: len(rig.connector.cards()) == 1)
    await rig.post(rig.activity("message_personal.json", id="1759950000001", text="and yesterday?"))
    await rig.connector.wait_for(lambda: len(rig.connector.cards()) == 2)
    await rig.post(rig.activity("message_personal.json", id="1759950000002", text="new"))
    await rig.connector.wait_for(lambda: any(m.activity.get("text") == "Started a new conversation." for m in rig.connector.messages()))
    await rig.post(rig.activity("message_personal.json", id="1759950000003", text="hello"))
    await rig.connector.wait_for(lambda: len(rig.connector.cards()) == 3)
    one, two, three = rig.sessions_at_endpoint()
    assert one == two != three


async def test_redelivered_activity_is_answered_once(rig: TeamsRig) -> None:
    activity = rig.activity("message_channel_mention_new_post.json")
    for _ in range(3):
        await rig.post(activity)
    await rig.settle()
    assert len(rig.connector.cards()) == 1 and len(rig.serving.invocation_bodies()) == 1


async def test_help_and_empty_mention_show_quick_questions(rig: TeamsRig) -> None:
    await rig.post(rig.activity("message_channel_mention_new_post.json", text="<at>healthbot</at>"))
    await rig.post(rig.activity("message_personal.json", text="help"))
    await rig.settle()
    cards = rig.connector.cards()
    assert len(cards) == 2 and rig.serving.invocation_bodies() == []
    assert [a["data"]["name"] for a in cards[0]["actions"]] == ["costs", "jobs", "queries", "security", "health"]


async def test_quick_question_button_asks_it(rig: TeamsRig) -> None:
    invoke = rig.activity("invoke_adaptive_card_action_execute.json")
    invoke["value"]["action"].update(verb="quick", data={"name": "jobs"})
    status, body = await rig.post(invoke)
    assert status == 200 and body["statusCode"] == 200 and "Which jobs failed today?" in json.dumps(body["value"])
    await rig.connector.wait_for(lambda: rig.connector.cards())
    assert rig.serving.invocation_bodies()[0]["inputs"]["messages"][-1]["content"] == "Which jobs failed today?"


async def test_feedback_is_recorded_and_the_card_thanks(rig: TeamsRig) -> None:
    await rig.post(rig.activity("message_channel_mention_new_post.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards())
    request_id = rig.connector.cards()[0]["actions"][1]["data"]["request_id"]
    invoke = rig.activity("invoke_adaptive_card_action_execute.json")
    invoke["value"]["action"].update(verb="feedback", data={"request_id": request_id, "value": -1})
    status, body = await rig.post(invoke)
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Thanks for the feedback" in json.dumps(body["value"]) and "actions" not in body["value"]
    assert "Costs rose 42%." in json.dumps(body["value"])
    votes = [tuple(r) for r in rig.store._db.execute("SELECT request_id, user_id, value FROM feedback")]
    assert votes == [(request_id, "11111111-2222-3333-4444-555555555555", -1)]


async def test_endpoint_down_then_retry_button(rig: TeamsRig) -> None:
    rig.serving.invocations.append(Scripted(500, {"error_code": "INTERNAL_ERROR"}))
    await rig.post(rig.activity("message_channel_mention_new_post.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards())
    await rig.settle()
    error_card = rig.connector.cards()[0]
    assert "unavailable" in json.dumps(error_card) and error_card["actions"][0]["verb"] == "retry"
    invoke = rig.activity("invoke_adaptive_card_action_execute.json", conversation=fixture(
        "message_channel_mention_new_post.json")["conversation"])
    invoke["value"]["action"].update(verb="retry", data=error_card["actions"][0]["data"])
    status, body = await rig.post(invoke)
    assert status == 200 and "Retrying" in json.dumps(body)
    await rig.connector.wait_for(lambda: len(rig.connector.cards()) == 2)
    assert rig.connector.cards()[1]["body"][0]["text"] == "Costs rose 42%."
    assert rig.serving.invocation_bodies()[1]["inputs"]["messages"] == [{"role": "user", "content": "why did costs spike"}]
    assert len(set(rig.sessions_at_endpoint())) == 1


async def test_connector_throttling_is_retried_not_dropped(rig: TeamsRig) -> None:
    rig.connector.failures.extend([(429, {"Retry-After": "1"}), (503, {})])
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards(), timeout=15)
    await rig.settle()
    assert len(rig.connector.cards()) == 1


async def test_slow_answer_shows_typing_until_it_arrives(rig: TeamsRig) -> None:
    rig.serving.invocations.append(Scripted(200, answer_body("Slow but sure."), delay_s=0.7))
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards())
    await rig.settle()
    kinds = [s.activity.get("type") for s in rig.connector.sent]
    assert kinds.count("typing") >= 2 and kinds[-1] == "message"
    assert kinds.index("message") == len(kinds) - 1  # no typing after the answer


async def test_cold_endpoint_says_waking_up(rig: TeamsRig) -> None:
    rig.serving.invocations.append(error("serving_error_503_temporarily_unavailable.json"))
    rig.serving.states.extend(["NOT_READY", "READY"])
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards())
    texts = [m.activity.get("text") or "" for m in rig.connector.messages()]
    assert any("Waking up the Health Monitor" in text for text in texts)


async def test_install_stores_the_reference_and_welcomes(rig: TeamsRig) -> None:
    update = rig.activity("conversation_update_bot_added_to_team.json")
    update["membersAdded"] = [{"id": update["recipient"]["id"]}]
    status, _ = await rig.post(update)
    assert status in (200, 201)
    await rig.settle()
    reference = await rig.store.get_reference("teams", "19:efa9296d959346209fea44151c742e73@thread.skype")
    assert reference is not None and reference["serviceUrl"] == rig.connector.url + "/"
    assert reference["conversation"]["id"] == "19:efa9296d959346209fea44151c742e73@thread.skype"
    assert "Thanks for adding" in json.dumps(rig.connector.cards())


async def test_long_answers_are_split_into_several_cards(rig: TeamsRig) -> None:
    long_answer = "\n\n".join(f"Paragraph {i}: " + "y" * 1500 for i in range(30))
    rig.serving.default = Scripted(200, answer_body(long_answer))
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: len(rig.connector.cards()) >= 3)
    await rig.settle()
    texts = "".join(block.get("text", "") for card in rig.connector.cards() for block in card["body"])
    assert all(texts.count(f"Paragraph {i}: ") == 1 for i in range(30))
    assert not any("actions" in card for card in rig.connector.cards())  # personal chat: Teams' own 👍 / 👎


async def test_markdown_tables_become_adaptive_card_tables(rig: TeamsRig) -> None:
    rig.serving.default = Scripted(200, answer_body("**Top jobs**\n\n| Job | Cost |\n|---|---|\n| etl | $607 |\n| bi | $137 |"))
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards())
    table = rig.connector.cards()[0]["body"][1]
    assert table["type"] == "Table" and len(table["rows"]) == 3
    assert table["rows"][1]["cells"][1]["items"][0]["text"] == "$607"


def test_table_columns_are_as_wide_as_their_longest_word() -> None:
    """Equal widths broke long names mid-word in Teams ("PREMI/UM_AL/L_PUR…")."""
    from adapters.teams.markdown import markdown_body

    [table] = markdown_body("| Driver | SKU | Cost |\n|---|---|---|\n| etl | PREMIUM_SERVERLESS_SQL_COMPUTE | $607 |")
    driver, sku, cost = (column["width"] for column in table["columns"])
    assert sku == len("PREMIUM_SERVERLESS_SQL_COMPUTE") and sku > 3 * cost and driver == len("Driver")


async def test_an_internal_failure_says_so_in_the_chat(rig: TeamsRig, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(rig.store, "open_turn", broken)
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: rig.connector.messages())
    await rig.settle()
    [message] = rig.connector.messages()
    assert "internal error" in message.activity["text"] and "database is locked" not in json.dumps(message.activity)


async def test_malformed_bodies_are_400(rig: TeamsRig) -> None:
    assert (await rig.post(b"{oops"))[0] == 400
    status, body = await rig.post({"text": "no type"})
    assert status == 400 and "type" in body["error"]


async def test_emulator_mode_refuses_a_non_loopback_service_url(rig: TeamsRig) -> None:
    activity = rig.activity("message_personal.json", serviceUrl="https://smba.trafficmanager.net/amer/")
    status, body = await rig.post(activity)
    assert status == 401 and "loopback" in body["error"]
    await rig.settle()
    assert rig.serving.invocation_bodies() == []


async def test_other_tenants_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> None:
    r, runner = await start_rig(monkeypatch, tmp_path, fake_serving, HEALTHBOT_TEAMS_TENANT_IDS="11111111-0000-0000-0000-000000000000")
    try:
        await r.post(r.activity("message_personal.json"))
        await r.settle()
        assert r.connector.sent == [] and fake_serving.invocation_bodies() == []
    finally:
        await runner.cleanup()
        await r.connector.stop()


class FakeOpenId:
    """Plays login.botframework.com: OpenID metadata and the Bot Connector's signing keys.

    A thread of its own, because botbuilder fetches the keys with blocking `requests.get` on the
    event loop (which would deadlock a fake served by that same loop)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.server: Any = None
        self.url = ""

    def start(self) -> str:
        import http.server
        import threading

        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid="k1", endorsements=["msteams"])
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = {"issuer": "https://api.botframework.com", "jwks_uri": f"{owner.url}/keys"} \
                    if self.path.endswith("openidconfiguration") else {"keys": [jwk]}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"{self.url}/v1/.well-known/openidconfiguration"

    def token(self, service_url: str, *, key: Any = None, audience: str = "11111111-aaaa-bbbb-cccc-000000000001") -> str:
        import time

        import jwt

        claims = {"iss": "https://api.botframework.com", "aud": audience, "serviceurl": service_url,
                  "nbf": int(time.time()) - 10, "exp": int(time.time()) + 600}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": "k1"})


async def test_with_credentials_tokens_are_validated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    openid = FakeOpenId()
    from botframework.connector.auth import AuthenticationConstants

    monkeypatch.setattr(AuthenticationConstants, "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL", openid.start())
    r, runner = await start_rig(monkeypatch, tmp_path, fake_serving, MICROSOFT_APP_ID="11111111-aaaa-bbbb-cccc-000000000001",
                                MICROSOFT_APP_PASSWORD="not-a-real-secret", MICROSOFT_APP_TENANT_ID=TENANT)
    try:
        reaction = r.activity("message_reaction_like.json", serviceUrl=r.connector.url + "/")
        assert (await r.post(reaction))[0] == 401  # no token
        forged = openid.token(r.connector.url + "/", key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        assert (await r.post(reaction, {"Authorization": f"Bearer {forged}"}))[0] == 401
        wrong_audience = openid.token(r.connector.url + "/", audience="someone-else")
        assert (await r.post(reaction, {"Authorization": f"Bearer {wrong_audience}"}))[0] == 401
        valid = openid.token(r.connector.url + "/")
        status, _ = await r.post(reaction, {"Authorization": f"Bearer {valid}"})
        assert status in (200, 201)
        # with credentials, a non-loopback serviceUrl is fine (the token vouches for it)
        assert r.teams.emulator is False
    finally:
        await runner.cleanup()
        await r.connector.stop()
        openid.server.shutdown()


async def test_with_credentials_answers_carry_the_token_botbuilder_would_send(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> None:
    """The pooled aiohttp sender signs with the credentials botbuilder holds (Entra stood in for by
    the token issuer's one method), and asks them once, not per send."""
    from botframework.connector.auth import AuthenticationConstants, MicrosoftAppCredentials

    issued: list[str] = []

    def entra(self: MicrosoftAppCredentials, force_refresh: bool = False) -> str:
        issued.append(self.microsoft_app_id)
        return "entra-token-for-the-bot"

    monkeypatch.setattr(MicrosoftAppCredentials, "get_access_token", entra)
    openid = FakeOpenId()
    monkeypatch.setattr(AuthenticationConstants, "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL", openid.start())
    r, runner = await start_rig(monkeypatch, tmp_path, fake_serving, MICROSOFT_APP_ID="11111111-aaaa-bbbb-cccc-000000000001",
                                MICROSOFT_APP_PASSWORD="not-a-real-secret", MICROSOFT_APP_TENANT_ID=TENANT)
    try:
        asked = []
        for number in (1, 2):
            activity = r.activity("message_personal.json", id=f"17599000000{number}")
            status, _ = await r.post(activity, {"Authorization": f"Bearer {openid.token(r.connector.url + '/')}"})
            assert status in (200, 201)
            await r.connector.wait_for(lambda: len(r.connector.cards()) == number)
            await r.settle()
            asked.append(len(issued))
        sends = [c for c in r.connector.calls if c.method == "POST" and "/activities" in c.path]
        assert len(sends) >= 2 and all(c.headers.get("Authorization") == "Bearer entra-token-for-the-bot" for c in sends)
        assert asked[0] >= 1 and asked[1] == asked[0]  # the second answer reused the token
    finally:
        await runner.cleanup()
        await r.connector.stop()
        openid.server.shutdown()


async def test_answers_carry_the_ai_label_citations_and_the_feedback_loop(rig: TeamsRig) -> None:
    status, _ = await rig.post(rig.activity("message_channel_mention_new_post.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards())
    await rig.settle()
    [answer] = rig.connector.messages()
    [entity] = [e for e in answer.activity["entities"] if e.get("type") == "https://schema.org/Message"]
    assert entity["additionalType"] == ["AIGeneratedContent"]
    assert [c["appearance"]["name"] for c in entity["citation"]] == ["system.billing.usage"]
    assert answer.activity["channelData"]["feedbackLoopEnabled"] is True
    assert [a["verb"] for a in answer.card["actions"]] == ["feedback", "feedback"]  # a channel keeps the card's own
    answer_id = rig.teams.answers and next(iter(rig.teams.answers))
    invoke = rig.activity("invoke_message_submit_action_feedback.json", replyToId=answer_id)
    status, body = await rig.post(invoke)
    assert status == 200
    votes = [tuple(r) for r in rig.store._db.execute("SELECT user_id, value, comment FROM feedback")]
    assert votes == [("11111111-2222-3333-4444-555555555555", -1, "The cost figure is from the wrong day.")]
    status, _ = await rig.post(rig.activity("invoke_message_submit_action_feedback.json", replyToId="unknown-id"))
    assert status == 200  # feedback on an answer healthbot does not know: acknowledged, nothing recorded


async def test_installing_in_personal_chat_welcomes_with_the_quick_questions_as_suggestions(rig: TeamsRig) -> None:
    update = rig.activity("conversation_update_bot_added_personal.json")
    update["membersAdded"] = [{"id": update["recipient"]["id"]}]
    status, _ = await rig.post(update)
    assert status in (200, 201)
    await rig.settle()
    [welcome] = rig.connector.messages()
    suggestions = welcome.activity["suggestedActions"]["actions"]
    assert [s["value"] for s in suggestions][:2] == ["Why did costs spike yesterday?", "Which jobs failed today?"]
    assert all(s["type"] == "imBack" for s in suggestions) and "Thanks for adding" in json.dumps(welcome.activity)
