"""Lakebase: the password of every new connection is a token minted through databricks-sdk from the
fake workspace's credentials API, renewed before it expires; the App's PG* variables configure it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.databricks_config import databricks_config
from bot.config import ConfigError, load_settings
from adapters.host.server import create_app
from bot.store import open_store_for
from bot.store.lakebase import CredentialError, LakebaseCredentials, Provisioned
from bot.store.postgres import PostgresStore
from bot.workspace import Workspace
from tests.conftest import POSTGRES_DSN, make_client
from tests.fakes.base import serve
from tests.fakes.serving import Scripted, fixture
from tests.fakes.workspace import FakeWorkspace

APP_ENV = json.loads((Path(__file__).parent / "fixtures" / "databricks" / "apps_database_resource_env.json").read_text())


@pytest.fixture
async def workspace() -> AsyncIterator[FakeWorkspace]:
    fake = FakeWorkspace()
    await fake.start()
    yield fake
    await fake.stop()


def credentials(fake: FakeWorkspace, instance: str = "healthbot-pg", clock: list[float] | None = None) -> LakebaseCredentials:
    """Credentials minted from the fake; `clock` (a one-element list) lets a test move time forward."""
    url, token = fake.url, fake.token
    now = clock if clock is not None else [time.time()]
    return LakebaseCredentials(lakebase=Provisioned(instance),
                               workspace=Workspace(lambda: databricks_config(host=url, token=token)),
                               clock=lambda: now[0] if clock is not None else time.time())


async def test_new_connections_get_a_fresh_token_and_the_pool_keeps_serving(workspace: FakeWorkspace,
                                                                           pg_schema: str) -> None:
    clock = [time.time()]
    creds = credentials(workspace, clock=clock)
    handed: list[str] = []

    async def password() -> str:  # what asyncpg is given for each new connection
        token = await creds()
        handed.append(token)
        return token

    store = PostgresStore(POSTGRES_DSN, schema=pg_schema, min_size=2, max_size=4, password=password)
    try:
        await store.ping()
        assert workspace.credentials_issued == ["lakebase-token-1"] and handed == ["lakebase-token-1"] * 2
        [request] = workspace.requests_to("/api/2.0/database/credentials")
        assert request.json()["instance_names"] == ["healthbot-pg"] and request.json()["request_id"]
        clock[0] += 3600 - 200  # inside the last five minutes: renew for the next connection
        pool = await store.pool()
        busy = [asyncio.create_task(pool.fetchval("SELECT pg_sleep(0.2)")) for _ in range(3)]
        await asyncio.sleep(0.05)
        await pool.expire_connections()  # connections are replaced as they are released
        results = await asyncio.gather(*busy, *(store.ping() for _ in range(8)))
        assert len(results) == 11
        await pool.fetchval("SELECT 1")
        assert workspace.credentials_issued == ["lakebase-token-1", "lakebase-token-2"]  # one renewal, not one per connection
        assert handed[-1] == "lakebase-token-2" and creds.minted == 2
        assert "instance healthbot-pg" in creds.describe() and "2 minted" in creds.describe()
    finally:
        await store.close()


async def test_tokens_are_reused_until_near_expiry(workspace: FakeWorkspace) -> None:
    clock = [time.time()]
    creds = credentials(workspace, clock=clock)
    first = await asyncio.gather(*(creds() for _ in range(5)))
    assert set(first) == {"lakebase-token-1"} and len(workspace.credentials_issued) == 1
    clock[0] += 3000
    assert await creds() == "lakebase-token-1"
    clock[0] += 400  # 200 s left
    assert await creds() == "lakebase-token-2"


async def test_a_wrong_instance_or_missing_permission_says_which(workspace: FakeWorkspace) -> None:
    with pytest.raises(CredentialError, match="instance 'nope' does not exist"):
        await credentials(workspace, "nope")()
    denied = fixture("serving_error_403_permission_denied.json")
    workspace.fail("/api/2.0/database/credentials", Scripted(denied["status"], denied["body"]))
    with pytest.raises(CredentialError, match="may not connect to Lakebase instance 'healthbot-pg'"):
        await credentials(workspace)()


async def test_serve_refuses_to_start_with_a_wrong_instance(workspace: FakeWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": workspace.token,
                        "HEALTHBOT_LAKEBASE_INSTANCE": "wrong-instance", "HEALTHBOT_DATABASE_URL": POSTGRES_DSN}.items():
        monkeypatch.setenv(name, value)
    app = create_app(load_settings(), engine=make_client(workspace))
    with pytest.raises(ConfigError, match="'wrong-instance' does not exist"):
        await serve(app)


def test_the_app_database_resource_configures_lakebase(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in APP_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABRICKS_HOST", "https://dbc-01234567-89ab.cloud.databricks.com")
    monkeypatch.setenv("HEALTHBOT_LAKEBASE_INSTANCE", "healthbot-pg")
    settings = load_settings()
    assert settings.database_url == (f"postgresql://{APP_ENV['PGUSER']}@{APP_ENV['PGHOST']}:5432/databricks_postgres")
    assert settings.database_sslmode == "require"
    store = open_store_for(settings)
    assert isinstance(store, PostgresStore) and isinstance(store.password, LakebaseCredentials)
    assert store.sslmode == "require"
    monkeypatch.delenv("PGSSLMODE")
    assert load_settings().database_sslmode == "require"  # Lakebase: TLS by default
    monkeypatch.setenv("HEALTHBOT_DATABASE_URL", "postgresql://u@h/db?sslmode=verify-full")
    assert load_settings().database_sslmode is None  # the URL's own sslmode, read by asyncpg


@pytest.mark.parametrize(("env", "message"), [
    ({"HEALTHBOT_DATABASE_URL": "postgresql://u@h/db"}, "needs a workspace"),
    ({"DATABRICKS_HOST": "https://x.cloud.databricks.com"}, "needs a postgresql:// HEALTHBOT_DATABASE_URL or the PGHOST"),
    ({"DATABRICKS_HOST": "https://x.cloud.databricks.com", "HEALTHBOT_DATABASE_URL": "postgresql://u:secret@h/db"},
     "remove it from HEALTHBOT_DATABASE_URL"),
])
def test_lakebase_misconfiguration_is_a_start_up_error(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                       message: str) -> None:
    monkeypatch.setenv("HEALTHBOT_LAKEBASE_INSTANCE", "healthbot-pg")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


async def test_lakebase_with_an_explicit_sslmode_connects(workspace: FakeWorkspace, monkeypatch: pytest.MonkeyPatch,
                                                          pg_schema: str) -> None:
    """The whole path from settings: PG* variables, minted password, PGSSLMODE (the local server has no TLS)."""
    for name, value in {"DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": workspace.token, "PGHOST": "127.0.0.1",
                        "PGUSER": "postgres", "PGDATABASE": "test", "PGSSLMODE": "disable",
                        "HEALTHBOT_LAKEBASE_INSTANCE": "healthbot-pg"}.items():
        monkeypatch.setenv(name, value)
    store = open_store_for(load_settings())
    assert isinstance(store, PostgresStore)
    store.schema = pg_schema
    try:
        await store.ping()
        assert workspace.credentials_issued == ["lakebase-token-1"]
    finally:
        await store.close()
