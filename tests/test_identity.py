"""Identities over real stores (SQLite, PostgreSQL) and databricks-sdk's OAuth client against a fake
workspace: alert investigations stay the bot's, key rotation, state taken once across replicas, a
single-use refresh token renewed by two replicas at once, and start-up refusing half a configuration."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.fernet import Fernet

from bot.config import ConfigError, load_settings
from bot.handler import ConversationHandler
from bot.identity.service import Identities
from bot.identity.wiring import identities_for
from bot.models import Incoming, Membership, Platform, ThreadKey
from bot.store import SqliteStore
from bot.store.postgres import PostgresStore
from tests.conftest import POSTGRES_DSN, make_client, postgres_schema
from tests.fakes.identity import FakeIdentityWorkspace, user_mode

ASKER = "spengler@ghostbusters.example.com"


def asking(text: str = "why did costs spike", *, thread: str = "1712345678.000100",
           membership: Membership = Membership.MEMBER, user: str = "U0USER1234", email: str = ASKER) -> Incoming:
    return Incoming(key=ThreadKey(platform=Platform.SLACK, workspace="T0123ABCDE", channel="C0123ABCDEF", thread=thread),
                    user_id=user, user_email=email, text=text, event_id=f"Ev{thread}", membership=membership)


@pytest.fixture
async def workspace() -> AsyncIterator[FakeIdentityWorkspace]:
    fake = FakeIdentityWorkspace(signing_in_as=ASKER)
    await fake.start()
    yield fake
    await fake.stop()


def build(workspace: FakeIdentityWorkspace, store: Any, monkeypatch: pytest.MonkeyPatch, **env: str) -> Identities:
    for name, value in {**user_mode(workspace), **env}.items():
        monkeypatch.setenv(name, value)
    identities = identities_for(load_settings(), store)
    assert identities is not None
    return identities


async def connect(identities: Identities, message: Incoming) -> None:
    """The browser's visit, with the code handed to `complete` as the callback route would."""
    async with aiohttp.ClientSession() as http, http.get(await identities.connect_url(message, None),
                                                         allow_redirects=False) as resp:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
    outcome = await identities.complete(query["code"], query["state"])
    assert outcome.ok, outcome


async def test_alert_investigations_stay_on_the_service_principal(workspace: FakeIdentityWorkspace, store: SqliteStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    identities = build(workspace, store, monkeypatch)
    handler = ConversationHandler(store=store, engine=make_client(workspace), identity=identities)
    investigation = await handler.handle(asking("investigate the alert", membership=Membership.OPERATOR))
    assert investigation is not None and investigation.error is None and not investigation.connect
    prompt = await handler.handle(asking(thread="1712345678.000200"))
    assert prompt is not None and prompt.connect and prompt.error is not None
    assert workspace.invoked_as == ["bot"]
    row = await store.get_request(prompt.request_id)
    assert row is not None and row.error == "refused:not_connected"  # counted as a refusal, not a failure
    await handler.engine.close()


async def test_a_rotated_key_still_opens_the_tokens_and_a_replaced_one_asks_to_connect_again(
        workspace: FakeIdentityWorkspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store = SqliteStore(tmp_path / "bot.db")
    await connect(build(workspace, store, monkeypatch, HEALTHBOT_TOKEN_KEY=old), asking())
    rotated = build(workspace, store, monkeypatch, HEALTHBOT_TOKEN_KEY=f"{new},{old}")
    assert (await rotated.token_for(asking())) in workspace.access
    replaced = build(workspace, store, monkeypatch, HEALTHBOT_TOKEN_KEY=new)
    assert await replaced.token_for(asking()) is None
    await store.close()


async def test_a_single_use_refresh_token_renewed_by_two_replicas_at_once_keeps_the_person_connected(
        workspace: FakeIdentityWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace.access_ttl_s, workspace.token_delay_s = 50, 0.2  # every question renews; both renewals in flight
    async with postgres_schema() as schema:
        stores = [PostgresStore(POSTGRES_DSN, schema=schema) for _ in range(2)]
        key = Fernet.generate_key().decode()
        replicas = [build(workspace, s, monkeypatch, HEALTHBOT_TOKEN_KEY=key) for s in stores]
        await connect(replicas[0], asking())
        tokens = await asyncio.gather(*(r.token_for(asking()) for r in replicas))
        try:
            assert all(t in workspace.access for t in tokens), tokens
            assert await replicas[1].connected() == 1
            refreshes = [c for c in workspace.requests_to("/oidc/v1/token") if b"grant_type=refresh_token" in c.body]
            assert len(refreshes) == 2  # one was refused: the other replica's renewal was used, not dropped
        finally:
            for s in stores:
                await s.close()


async def test_a_sign_in_state_is_taken_once_whichever_replica_the_browser_reaches(
        workspace: FakeIdentityWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    async with postgres_schema() as schema:
        stores = [PostgresStore(POSTGRES_DSN, schema=schema) for _ in range(2)]
        key = Fernet.generate_key().decode()
        replicas = [build(workspace, s, monkeypatch, HEALTHBOT_TOKEN_KEY=key) for s in stores]
        async with aiohttp.ClientSession() as http, http.get(await replicas[0].connect_url(asking(), None),
                                                             allow_redirects=False) as resp:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
        try:
            outcomes = await asyncio.gather(*(r.complete(query["code"], query["state"]) for r in replicas))
            assert sorted(o.ok for o in outcomes) == [False, True]
            assert await replicas[1].connected() == 1
        finally:
            for s in stores:
                await s.close()


@pytest.mark.parametrize(("env", "named"), [
    ({"HEALTHBOT_TOKEN_KEY": ""}, "HEALTHBOT_TOKEN_KEY"),
    ({"HEALTHBOT_TOKEN_KEY": "not-a-key"}, "key 1 is not a Fernet key"),
    ({"HEALTHBOT_OAUTH_CLIENT_ID": ""}, "HEALTHBOT_OAUTH_CLIENT_ID"),
    ({"HEALTHBOT_PUBLIC_URL": ""}, "HEALTHBOT_PUBLIC_URL"),
    ({"DATABRICKS_HOST": ""}, "DATABRICKS_HOST"),
])
def test_user_mode_does_not_start_half_configured(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                  named: str) -> None:
    base = {"DATABRICKS_HOST": "https://dbc-01234567-89ab.cloud.databricks.com", "HEALTHBOT_IDENTITY": "user",
            "HEALTHBOT_OAUTH_CLIENT_ID": "healthbot", "HEALTHBOT_PUBLIC_URL": "https://healthbot.example.com",
            "HEALTHBOT_TOKEN_KEY": Fernet.generate_key().decode()}
    for name, value in {**base, **env}.items():
        if value:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named) as raised:
        load_settings()
    assert base["HEALTHBOT_TOKEN_KEY"] not in str(raised.value)  # a key is never echoed


async def test_doctor_checks_the_oauth_app(workspace: FakeIdentityWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.host.doctor import run_doctor

    for name, value in {**user_mode(workspace), "HEALTHBOT_OAUTH_SCOPES": "all-apis"}.items():
        monkeypatch.setenv(name, value)
    lines = {line.name: line for line in await run_doctor(load_settings())}
    assert lines["oauth redirect"].mark == "✓" and "https://healthbot.example.com/oauth/callback" in lines["oauth redirect"].detail
    assert lines["oauth client"].mark == "✓" and "public: PKCE" in lines["oauth client"].detail
    assert lines["token key"].mark == "✓" and lines["oauth scopes"].mark == "!"


async def test_a_refusal_of_the_askers_own_token_is_theirs_to_fix_not_healthbots(
        workspace: FakeIdentityWorkspace, store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes.serving import error

    identities = build(workspace, store, monkeypatch)
    await connect(identities, asking())
    handler = ConversationHandler(store=store, engine=make_client(workspace), identity=identities)
    workspace.invocations.append(error("serving_error_403_permission_denied.json"))
    reply = await handler.handle(asking())
    await handler.engine.close()
    assert reply is not None and reply.content.startswith("Your Databricks account may not query")
    assert workspace.invoked_as == [ASKER]


async def test_a_database_blip_while_reading_a_persons_tokens_costs_them_nothing(
        workspace: FakeIdentityWorkspace, store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    identities = build(workspace, store, monkeypatch)
    await connect(identities, asking())
    real, failures = identities.store.tokens, [sqlite3.OperationalError("database is locked")]

    async def locked_once(key: str) -> Any:
        if failures:
            raise failures.pop()
        return await real(key)

    monkeypatch.setattr(identities.store, "tokens", locked_once)
    monkeypatch.setattr("bot.store.retry.STORE_RETRY_DELAYS_S", (0.01,))
    identities._memory.clear()
    assert await identities.token_for(asking()) in workspace.access and failures == []
