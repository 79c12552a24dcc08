"""What asking as each person (HEALTHBOT_IDENTITY=user) adds to a question, against the service
principal mode in the same run.

Both go through ConversationHandler on SQLite with an instant engine; in user mode 50 people are
connected (sealed tokens in the store). "warm": the access token comes from memory, as for every
question within 30 s of the last store read. "store read": memory is bypassed, so each question reads
the person's row and opens it (Fernet), as one question per person per 30 s does. The serving client's
side — a databricks-sdk Config per token, built once, then `authenticate()` — is measured against the
service principal's Config, both against a local fake workspace.
Targets: warm ≤ 0.2 ms more per question; store read ≤ 0.5 ms more.
Run: python -m bench.identity [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

from bench.handler import incoming, through_handler
from bot.identity import service
from bot.identity.oauth import Tokens, WorkspaceOAuth
from bot.identity.service import Identities
from bot.identity.vault import Sealer
from bot.store import SqliteStore
from bot.store.identity import StoredTokens

PEOPLE = 50


async def connected(store: SqliteStore) -> Identities:
    """50 people with tokens valid for an hour; the OAuth endpoints are never reached."""
    sealer = Sealer.from_setting(Fernet.generate_key().decode())
    oauth = WorkspaceOAuth(host="https://workspace.invalid", client_id="bench", redirect_url="https://bench/oauth/callback",
                           scopes=["all-apis", "offline_access"])
    for n in range(PEOPLE):
        tokens = Tokens(f"access-{n}", f"refresh-{n}", time.time() + 3600)
        await store.identities.save_tokens(StoredTokens(f"slack:U{n}", f"user{n}@example.com",
                                                        sealer.seal(tokens.as_dict()), time.time()))
    return Identities(store=store.identities, oauth=oauth, sealer=sealer)


async def serving_auth(rounds: int) -> tuple[float, float]:
    """Seconds per `_auth()` for the bot, and for a person's token (their Config cached)."""
    from agent.databricks_config import databricks_config
    from agent.serving import ServingClient
    from tests.fakes.serving import FakeServing

    fake = FakeServing()
    await fake.start()
    client = ServingClient(endpoint_name="bench", config_factory=lambda: databricks_config(host=fake.url, token="bot"))
    try:
        await client.http.auth()
        await client.http.auth("person-token")
        figures = []
        for token in ("", "person-token"):
            started = time.perf_counter()
            for _ in range(rounds):
                await client.http.auth(token)
            figures.append((time.perf_counter() - started) / rounds)
        return figures[0], figures[1]
    finally:
        await client.close()
        await fake.stop()


async def run(messages: int) -> dict[str, float]:
    batch = [incoming(i, 500) for i in range(messages)]
    with tempfile.TemporaryDirectory() as tmp:
        bot = await through_handler(SqliteStore(Path(tmp) / "sp.db"), batch)
        store = SqliteStore(Path(tmp) / "user.db")
        warm = await through_handler(store, batch, identity=await connected(store))
        store = SqliteStore(Path(tmp) / "read.db")
        identities = await connected(store)
        service.REVALIDATE_S = -1.0  # every question reads the store
        read = await through_handler(store, batch, identity=identities)
        service.REVALIDATE_S = 30.0
    sp_auth, person_auth = await serving_auth(messages)
    return {"bot_ms": bot / messages * 1000, "warm_ms": (warm - bot) / messages * 1000,
            "read_ms": (read - bot) / messages * 1000, "ratio_warm": bot / warm,
            "sp_auth_ms": sp_auth * 1000, "person_auth_ms": person_auth * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    figures = asyncio.run(run(parser.parse_args().messages))
    print(f"service principal mode   : {figures['bot_ms']:.3f} ms per question through the handler")
    print(f"user mode, token in memory: {figures['warm_ms']:+.3f} ms per question = {figures['ratio_warm']:.3f} x "
          "as many questions per second (target <= +0.2 ms)")
    print(f"user mode, store read     : {figures['read_ms']:+.3f} ms per question (target <= +0.5 ms)")
    print(f"serving client auth       : bot {figures['sp_auth_ms']:.4f} ms, person {figures['person_auth_ms']:.4f} ms "
          f"per call ({figures['person_auth_ms'] - figures['sp_auth_ms']:+.4f} ms)")


if __name__ == "__main__":
    main()
