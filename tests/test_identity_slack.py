"""HEALTHBOT_IDENTITY=user over the wire in Slack: signed events in, the fake Web API and a fake
workspace that signs people in (OAuth U2M with PKCE) out, the browser's visit played by following
the link the asker was sent."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.config import load_settings
from adapters.host.server import SLACK, create_app
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.identity import CLIENT_ID, PUBLIC_URL, FakeIdentityWorkspace, sign_in, user_mode, visit
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.test_slack import SlackRig, answer_posts, mention, slash

ASKER = "spengler@ghostbusters.example.com"
OTHER = "venkman@ghostbusters.example.com"


class IdentityRig(SlackRig):
    def __init__(self, slack: FakeSlack, workspace: FakeIdentityWorkspace, url: str, app: web.Application,
                 db: Path) -> None:
        super().__init__(slack, workspace, url, app)
        self.workspace, self.db = workspace, db

    async def command(self, text: str) -> int:
        status, _ = await self.form(slash(text, response_url=f"{self.slack.url}/hooks/1"))
        return status

    async def settle(self) -> None:
        """Until nothing more is sent: Bolt runs listeners on tasks of its own."""
        seen = -1
        while seen != len(self.slack.api) + len(self.workspace.calls):
            seen = len(self.slack.api) + len(self.workspace.calls)
            await self.app[SLACK].drain()  # type: ignore[attr-defined]
            await self.app[SLACK].handler.identity.drain()  # type: ignore[attr-defined]
            await asyncio.sleep(0.15)

    def prompts(self) -> list[dict[str, Any]]:
        return [c for c in self.slack.called("chat.postEphemeral") if "Connect your Databricks account" in c["text"]]

    def link(self, index: int = -1) -> str:
        blocks = self.prompts()[index]["blocks"]
        return next(e["url"] for b in blocks if b["type"] == "actions" for e in b["elements"])

    async def sign_in(self, link: str) -> tuple[int, str]:
        return await sign_in(self.url, link)

    async def visit(self, location: str) -> tuple[int, str]:
        return await visit(self.url, location)

    def stored(self) -> list[tuple[str, str, str]]:
        with sqlite3.connect(self.db) as db:
            return db.execute("SELECT user_key, email, sealed FROM user_tokens").fetchall()


@pytest.fixture
async def idrig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[IdentityRig]:
    workspace, slack = FakeIdentityWorkspace(), FakeSlack()
    await workspace.start()
    await slack.start()
    slack.emails["U0OTHER567"] = OTHER
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.api_url,
           **user_mode(workspace)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("adapters.slack.progress.PLACEHOLDER_DELAY_S", 0.3)
    db = tmp_path / "bot.db"
    app = create_app(load_settings(), store=SqliteStore(db), engine=make_client(workspace))
    runner, url = await serve(app)
    yield IdentityRig(slack, workspace, url, app, db)
    await runner.cleanup()
    await slack.stop()
    await workspace.stop()


async def connected(rig: IdentityRig, event_id: str = "EvConnect0001") -> None:
    """Ask once, follow the link, and let the waiting question be answered."""
    assert await rig.event(mention(event_id=event_id, ts="1712340000.000100")) == 200
    await rig.settle()
    status, _ = await rig.sign_in(rig.link())
    assert status == 200
    await rig.settle()


async def test_an_unconnected_asker_is_sent_the_link_alone_and_the_endpoint_is_not_called(idrig: IdentityRig) -> None:
    assert await idrig.event(mention()) == 200
    await idrig.settle()
    prompt = idrig.prompts()[0]
    assert prompt["user"] == "U0USER1234" and prompt["thread_ts"] == "1712345678.123456"
    link = idrig.link()
    assert link.startswith(f"{idrig.workspace.url}/oidc/v1/authorize?")
    assert "code_challenge_method=S256" in link and f"client_id={CLIENT_ID}" in link
    assert "scope=all-apis+offline_access" in link
    assert answer_posts(idrig.slack) == [] and idrig.workspace.invoked_as == []


async def test_after_connecting_the_waiting_question_is_answered_as_the_asker(idrig: IdentityRig) -> None:
    assert await idrig.event(mention()) == 200
    await idrig.settle()
    status, page = await idrig.sign_in(idrig.link())
    assert status == 200 and "connected" in page
    await idrig.settle()
    answers = answer_posts(idrig.slack)
    assert len(answers) == 1 and answers[0]["thread_ts"] == "1712345678.123456"
    assert idrig.workspace.invoked_as == [ASKER]
    [(key, email, sealed)] = idrig.stored()
    assert (key, email) == ("slack:U0USER1234", ASKER)
    assert "access-" not in sealed and "refresh-" not in sealed  # sealed, not stored in the clear
    assert len(idrig.prompts()) == 1  # never asked twice


async def test_a_connected_person_is_answered_at_once_and_a_quick_answer_is_never_served_to_another(
        idrig: IdentityRig) -> None:
    await connected(idrig)
    assert await idrig.event(mention("<@U0BOT12345> costs", event_id="EvCosts0001", ts="1712340001.000100")) == 200
    await idrig.settle()
    idrig.workspace.signing_in_as = OTHER
    other = mention("<@U0BOT12345> costs", event_id="EvCosts0002", ts="1712340002.000100")
    other["event"]["user"] = "U0OTHER567"
    assert await idrig.event(other) == 200
    await idrig.settle()
    assert len(idrig.prompts()) == 2  # the second person connects first: no answer of the first one's
    status, _ = await idrig.sign_in(idrig.link())
    await idrig.settle()
    assert status == 200
    assert idrig.workspace.invoked_as == [ASKER, ASKER, OTHER]  # the cached "costs" answer stayed the first one's


async def test_an_expiring_access_token_is_renewed_with_the_rotated_refresh_token(idrig: IdentityRig) -> None:
    idrig.workspace.access_ttl_s = 50  # within healthbot's renewal margin (60 s), not the SDK's (40 s)
    await connected(idrig)
    for n in range(2):
        assert await idrig.event(mention(f"<@U0BOT12345> question {n}", event_id=f"EvRenew{n}",
                                         ts=f"17123400{n + 10}.000100")) == 200
        await idrig.settle()
    grants = [c.body.decode() for c in idrig.workspace.requests_to("/oidc/v1/token")]
    assert sum("grant_type=refresh_token" in g for g in grants) == 3  # one per question: the resumed one, two more
    assert idrig.workspace.invoked_as == [ASKER] * 3 and len(idrig.prompts()) == 1
    assert len(answer_posts(idrig.slack)) == 3


async def test_a_revoked_refresh_token_asks_to_connect_again_without_an_error(idrig: IdentityRig,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.identity.service.RECHECK_EVERY_S", 0.01)
    idrig.workspace.access_ttl_s = 50
    await connected(idrig)
    idrig.workspace.refresh.clear()  # revoked by an admin, or expired
    assert await idrig.event(mention(event_id="EvRevoked01", ts="1712340020.000100")) == 200
    await idrig.settle()
    assert len(idrig.prompts()) == 2 and idrig.stored() == []
    assert len(answer_posts(idrig.slack)) == 1  # the first answer only: no error in the thread
    assert not [p for p in idrig.slack.posted() if ":warning:" in json.dumps(p)]


async def test_disconnect_deletes_and_revokes_and_the_next_question_asks_to_connect(idrig: IdentityRig) -> None:
    await connected(idrig)
    refresh_tokens = list(idrig.workspace.refresh)
    assert await idrig.command("disconnect") == 200
    await idrig.settle()
    assert "Disconnected" in idrig.slack.hooks[-1]["text"] and idrig.slack.hooks[-1]["response_type"] == "ephemeral"
    assert idrig.stored() == [] and idrig.workspace.revoked == refresh_tokens
    assert await idrig.event(mention(event_id="EvAfterDisc", ts="1712340030.000100")) == 200
    await idrig.settle()
    assert len(idrig.prompts()) == 2 and idrig.workspace.invoked_as == [ASKER]


async def test_signing_in_as_someone_else_stores_nothing_and_says_why(idrig: IdentityRig) -> None:
    assert await idrig.event(mention()) == 200
    await idrig.settle()
    idrig.workspace.signing_in_as = OTHER
    status, page = await idrig.sign_in(idrig.link())
    await idrig.settle()
    assert status == 403 and OTHER in page and ASKER in page and "Nothing was stored" in page
    assert idrig.stored() == [] and idrig.workspace.invoked_as == [] and idrig.workspace.refresh == {}


async def test_a_sign_in_link_works_once_and_forged_or_expired_ones_not_at_all(idrig: IdentityRig,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert await idrig.event(mention()) == 200
    await idrig.settle()
    async with aiohttp.ClientSession() as http, http.get(idrig.link(), allow_redirects=False) as resp:
        callback = resp.headers["Location"]
    assert (await idrig.visit(callback))[0] == 200
    status, page = await idrig.visit(callback)  # replayed
    assert status == 400 and "does not work any more" in page
    status, page = await idrig.visit(re.sub(r"state=[^&]+", "state=forged", callback))
    assert status == 400 and "does not work any more" in page
    status, page = await idrig.visit(f"{PUBLIC_URL}/oauth/callback?error=access_denied&error_description=User+said+no")
    assert status == 400 and "User said no" in page
    status, _ = await idrig.visit(f"{PUBLIC_URL}/oauth/callback")
    assert status == 400
    monkeypatch.setattr("bot.identity.service.CONNECT_WITHIN_S", -1.0)
    other = mention(event_id="EvExpired01", ts="1712340040.000100")
    other["event"]["user"] = "U0OTHER567"
    assert await idrig.event(other) == 200
    await idrig.settle()
    status, page = await idrig.sign_in(idrig.link())
    assert status == 400 and "expired" in page
    assert len(idrig.stored()) == 1  # only the sign-in that worked


async def test_a_down_or_slow_token_endpoint_gets_a_clear_page_and_stores_nothing(idrig: IdentityRig,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert await idrig.event(mention()) == 200
    await idrig.settle()
    idrig.workspace.token_down = True
    status, page = await idrig.sign_in(idrig.link())
    assert status == 502 and "Databricks could not redeem the sign-in" in page
    idrig.workspace.token_down, idrig.workspace.token_delay_s = False, 1.0
    handler = idrig.app[SLACK].handler  # type: ignore[attr-defined]
    monkeypatch.setattr(handler.identity.oauth, "timeout_s", 0.2)
    assert await idrig.event(mention(event_id="EvSlow00001", ts="1712340050.000100")) == 200
    await idrig.settle()
    status, page = await idrig.sign_in(idrig.link())
    assert status == 502 and "did not answer within 0.2 s" in page
    assert idrig.stored() == [] and answer_posts(idrig.slack) == []


async def test_health_counts_connected_people_and_no_token_reaches_a_log_line(
        idrig: IdentityRig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await connected(idrig)
    async with aiohttp.ClientSession() as http, http.get(f"{idrig.url}/health") as resp:
        health = await resp.json()
    assert health["checks"]["identity"] == {"ok": True, "detail": "1 person connected (HEALTHBOT_IDENTITY=user)"}
    secrets = [*idrig.workspace.access, *idrig.workspace.refresh, *idrig.workspace.revoked]
    assert secrets
    text = "\n".join(r.getMessage() for r in caplog.records) + json.dumps(health)
    leaked = [s for s in secrets if s in text]
    assert leaked == [] and "code_verifier" not in text
