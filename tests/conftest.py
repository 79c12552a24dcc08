from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# Property-based tests: a fixed seed and a few hundred examples per property in CI; thousands with
# `pytest --hypothesis-profile=long` (a new seed each run).
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="healthbot-hypothesis-"))  # never `.hypothesis/` in the checkout
settings.register_profile("ci", max_examples=int(os.environ.get("HEALTHBOT_FUZZ_EXAMPLES", "250")), derandomize=True,
                          deadline=None, database=None, suppress_health_check=_SLOW_OK)
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile("ci")

from agent.databricks_config import databricks_config
from agent.demo import DemoEngine
from agent.serving import ServingClient
from bot.store import SqliteStore
from tests.fakes.serving import FakeServing


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's Databricks / Slack / Teams environment or .env file."""
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "SLACK_", "MICROSOFT_APP_", "HEALTHBOT_", "MLFLOW_")):
            monkeypatch.delenv(name, raising=False)
    for name in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSSLMODE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the default store lands in the test's dir
    # The tests play Teams as a local tool does (Agents Playground: loopback, no credentials); the tests of
    # the default (off) and of credentials unset or override it.
    monkeypatch.setenv("HEALTHBOT_TEAMS_EMULATOR", "on")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-data")


@pytest.fixture
def demo_engine(demo_data_dir: Path) -> DemoEngine:
    return DemoEngine(data_dir=demo_data_dir)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "healthbot.db")
    yield s
    await s.close()


POSTGRES_DSN = os.environ.get("HEALTHBOT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema in the local PostgreSQL, dropped afterwards.

    On a developer machine without PostgreSQL the PostgreSQL tests are skipped; in CI (CI=true) an
    unreachable server fails them, since the machine CI runs on starts PostgreSQL.
    """
    import uuid

    import asyncpg

    try:
        db = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL at {POSTGRES_DSN}: {exc}")
    schema = f"hb_test_{uuid.uuid4().hex[:12]}"
    await db.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        await db.execute(f"DROP SCHEMA {schema} CASCADE")
        await db.close()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    async with postgres_schema() as schema:
        yield schema


@pytest.fixture
async def fake_serving() -> AsyncIterator[FakeServing]:
    fake = FakeServing()
    await fake.start()
    yield fake
    await fake.stop()


def make_client(fake: FakeServing, **kwargs: object) -> ServingClient:
    # The seed app's `inputs` format unless a test says otherwise: a test of the `auto` default asks for it.
    options: dict[str, object] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "poll_interval_s": 0.02,
                                  "fmt": "inputs"}
    options.update(kwargs)
    url, token = fake.url, fake.token  # as configured now, even if the fake later rotates its token
    return ServingClient(
        endpoint_name=fake.endpoint_name,
        config_factory=lambda: databricks_config(host=url, token=token),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def serving_client(fake_serving: FakeServing) -> AsyncIterator[ServingClient]:
    client = make_client(fake_serving)
    yield client
    await client.close()
