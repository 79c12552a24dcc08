"""Lakebase Autoscaling (projects, branches, endpoints): the password of every new connection is a
token minted through databricks-sdk's Postgres API (`postgres.generate_database_credential(endpoint=…)`)
from the fake workspace, renewed before it expires on the live pool under load with no request lost;
where nothing else says where to connect, the endpoint's own host and the token's identity are used."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from agent.databricks_config import databricks_config
from bot.config import ConfigError, load_settings
from bot.models import ThreadKey, Platform
from bot.store import open_store_for
from bot.store.lakebase import Autoscaling, CredentialError, LakebaseCredentials
from bot.store.postgres import PostgresStore
from bot.workspace import Workspace
from tests.conftest import POSTGRES_DSN
from tests.fakes.workspace import FakeWorkspace
from tests.test_lakebase import workspace  # noqa: F401  (the fixture)

ENDPOINT = "projects/healthbot/branches/production/endpoints/primary"
FIXTURES = Path(__file__).parent / "fixtures" / "databricks"


def local_endpoint(fake: FakeWorkspace) -> None:
    """The recorded endpoint shape, its host pointed at the local PostgreSQL (trust auth for `postgres`)."""
    endpoint = json.loads((FIXTURES / "postgres_endpoint_get_response.json").read_text())
    endpoint["status"]["hosts"]["host"] = "127.0.0.1"
    fake.pg_endpoints[ENDPOINT] = endpoint
    fake.me = "postgres"


def credentials(fake: FakeWorkspace, clock: list[float]) -> LakebaseCredentials:
    url, token = fake.url, fake.token
    return LakebaseCredentials(lakebase=Autoscaling(ENDPOINT),
                               workspace=Workspace(lambda: databricks_config(host=url, token=token)),
                               clock=lambda: clock[0])


async def test_tokens_from_the_postgres_api_are_renewed_under_load_and_nothing_is_lost(
        workspace: FakeWorkspace, pg_schema: str) -> None:
    local_endpoint(workspace)
    workspace.credential_ttl_s = 900  # a short-lived token: renewed in its last quarter
    clock = [time.time()]
    creds = credentials(workspace, clock)
    store = PostgresStore(POSTGRES_DSN, schema=pg_schema, min_size=1, max_size=4, password=creds)
    try:
        await store.ping()
        [request] = workspace.requests_to("/api/2.0/postgres/credentials")
        assert request.json() == json.loads((FIXTURES / "postgres_credentials_request.json").read_text())
        pool = await store.pool()
        done: list[str] = []

        async def ask(number: int) -> None:
            key = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread=f"1.{number}")
            session = await store.session_for(key)
            done.append(session.session_id)

        first = [asyncio.create_task(ask(n)) for n in range(20)]
        clock[0] += 900 - 100  # past the renewal point: the next new connection gets a new token
        await pool.expire_connections()  # every connection is replaced as it is released
        await asyncio.gather(*first, *(ask(n) for n in range(20, 40)))
        assert len(done) == 40  # nothing lost while tokens changed under it
        assert workspace.credentials_issued == ["lakebase-token-1", "lakebase-token-2"]
        assert "Autoscaling endpoint projects/healthbot/branches/production/endpoints/primary" in creds.describe()
    finally:
        await store.close()


async def test_the_endpoint_says_where_to_connect_when_nothing_else_does(
        workspace: FakeWorkspace, monkeypatch: pytest.MonkeyPatch, pg_schema: str) -> None:
    local_endpoint(workspace)
    for name, value in {"DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": workspace.token, "PGDATABASE": "test",
                        "PGSSLMODE": "disable", "HEALTHBOT_LAKEBASE_ENDPOINT": ENDPOINT}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.database_url.startswith("postgresql:///test")
    store = open_store_for(settings)
    assert isinstance(store, PostgresStore) and store.connect_to is not None
    store.schema = pg_schema
    try:
        await store.ping()
        assert workspace.requests_to(f"/api/2.0/postgres/{ENDPOINT}") and workspace.credentials_issued
    finally:
        await store.close()


async def test_an_unknown_endpoint_says_which(workspace: FakeWorkspace) -> None:
    with pytest.raises(CredentialError, match="Autoscaling endpoint 'projects/healthbot/.*' does not exist"):
        await credentials(workspace, [time.time()])()


def test_both_kinds_at_once_are_refused_and_the_app_resource_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", "https://dbc-01234567-89ab.cloud.databricks.com")
    monkeypatch.setenv("HEALTHBOT_LAKEBASE_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("HEALTHBOT_LAKEBASE_INSTANCE", "healthbot-pg")
    with pytest.raises(ConfigError, match="not both"):
        load_settings()
    monkeypatch.delenv("HEALTHBOT_LAKEBASE_INSTANCE")
    monkeypatch.setenv("PGHOST", "ep-summer-sound-a1b2c3d4.database.us-east-1.cloud.databricks.com")
    monkeypatch.setenv("PGUSER", "4f1b1c2d-app-service-principal")
    settings = load_settings()
    assert settings.database_url.startswith("postgresql://4f1b1c2d-app-service-principal@ep-summer-sound")
    assert settings.database_sslmode == "require"
    store = open_store_for(settings)
    assert isinstance(store, PostgresStore) and store.connect_to is None  # the App's resource says where
    monkeypatch.setenv("HEALTHBOT_LAKEBASE_ENDPOINT", "healthbot/production/primary")
    with pytest.raises(ConfigError, match="HEALTHBOT_LAKEBASE_ENDPOINT"):
        load_settings()
