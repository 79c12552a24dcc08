"""Teams without credentials, and which tenants Teams may come from: emulator mode is explicit and
loopback-only (no proxy, a strictly loopback serviceUrl, the URL used exactly as checked), Teams is off
otherwise, and a bot registration accepts its home tenant (or an allowlist), never any tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from adapters.teams import emulator
from bot.config import ConfigError, load_settings
from tests.fakes.connector import FakeConnector
from tests.fakes.serving import FakeServing
from tests.test_teams import TENANT, FakeOpenId, TeamsRig, start_rig

APP_ID = "11111111-aaaa-bbbb-cccc-000000000001"


@pytest.fixture
async def rigs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               fake_serving: FakeServing) -> AsyncIterator[tuple[TeamsRig, FakeConnector]]:
    """healthbot in emulator mode with its (good) fake connector, and another connector nobody should reach."""
    evil = FakeConnector()
    await evil.start()
    rig, runner = await start_rig(monkeypatch, tmp_path, fake_serving)
    yield rig, evil
    await runner.cleanup()
    await rig.connector.stop()
    await evil.stop()


def forms(good: str, evil: str) -> list[str]:
    """serviceUrls an attacker would try: each is refused, whatever urlparse makes of it."""
    good_host, evil_host = good.removeprefix("http://").rstrip("/"), evil.removeprefix("http://").rstrip("/")
    return [
        f"http://{evil_host}\\@{good_host}/",  # urlparse: loopback after the @; urllib3: the host before the backslash
        f"http://user@{good_host}/",  # userinfo
        f"http://{good_host}/%2e%2e/",  # percent-encoded
        f"http://{good_host} /",  # whitespace
        f"http://{good_host}/\tx",  # a control character
        f"http://127.0.0.1.nip.io:{good_host.split(':')[1]}/",  # a host name that starts like loopback
        "https://smba.trafficmanager.net/amer/",  # not loopback at all
        f"ftp://{good_host}/",
        f"http://{good_host}:99999/",
    ]


async def test_malformed_service_urls_are_refused_and_reach_no_host(rigs: tuple[TeamsRig, FakeConnector]) -> None:
    rig, evil = rigs
    for number, service_url in enumerate(forms(rig.connector.url, evil.url)):
        status, body = await rig.post(rig.activity("message_personal.json", serviceUrl=service_url, id=f"1760{number}"))
        assert status in (400, 401) and "serviceUrl" in body["error"], service_url  # 400: not even a URL
    await rig.settle()
    assert evil.calls == [] and rig.connector.calls == [] and rig.serving.invocation_bodies() == []
    status, _ = await rig.post(rig.activity("message_personal.json"))  # the loopback connector itself is fine
    assert status in (200, 201)
    await rig.connector.wait_for(lambda: rig.connector.cards())
    assert evil.calls == []


@pytest.mark.parametrize("header", [{"Forwarded": "for=203.0.113.7"}, {"X-Forwarded-For": "203.0.113.7"},
                                    {"X-Forwarded-Host": "bot.example.com"}, {"X-Forwarded-Proto": "https"}])
async def test_proxied_requests_are_refused(rigs: tuple[TeamsRig, FakeConnector], header: dict[str, str]) -> None:
    rig, _ = rigs
    status, body = await rig.post(rig.activity("message_personal.json"), header)
    assert status == 401 and "proxied" in body["error"]
    await rig.settle()
    assert rig.connector.calls == [] and rig.serving.invocation_bodies() == []


def test_only_loopback_peers_and_exact_loopback_urls_pass() -> None:
    assert emulator.refusal("192.0.2.10", {}, "http://127.0.0.1:3978/")[0] == "emulator mode accepts loopback callers only"
    assert emulator.refusal("127.0.0.1", {}, "http://127.0.0.1:3978/") == ("", "http://127.0.0.1:3978/")
    assert emulator.loopback_service_url("http://localhost:56150/_connector") == "http://localhost:56150/_connector"
    assert emulator.loopback_service_url("http://[::1]:3978") == "http://[::1]:3978/"
    assert emulator.loopback_service_url("http://127.0.0.1:03978/") == "http://127.0.0.1:3978/"
    for bad in ("http://127.0.0.1:3978/?x=1", "http://127.0.0.1:3978/#f", "http://127.1/", "http://0x7f.0.0.1/",
                "http://256.0.0.1/", "http://10.0.0.1/", "http://127.0.0.1:3978\\@10.0.0.1/"):
        assert emulator.loopback_service_url(bad) is None, bad


async def test_emulator_mode_is_off_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               fake_serving: FakeServing) -> None:
    monkeypatch.delenv("HEALTHBOT_TEAMS_EMULATOR", raising=False)
    rig, runner = await start_rig(monkeypatch, tmp_path, fake_serving)
    try:
        status, body = await rig.post(rig.activity("message_personal.json"))
        assert status == 401 and body["error"].startswith("Teams is off") and "\n" not in body["error"]
        async with aiohttp.ClientSession() as http, http.get(f"{rig.url}/health") as resp:
            health = await resp.json()
        assert health["checks"]["teams"]["detail"].startswith("off")
        await rig.settle()
        assert rig.connector.calls == [] and fake_serving.invocation_bodies() == []
    finally:
        await runner.cleanup()
        await rig.connector.stop()


def test_multitenant_without_an_allowlist_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSOFT_APP_ID", APP_ID)
    monkeypatch.setenv("MICROSOFT_APP_PASSWORD", "not-a-real-secret")
    monkeypatch.setenv("MICROSOFT_APP_TYPE", "MultiTenant")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "HEALTHBOT_TEAMS_TENANT_IDS" in str(refused.value) and "SingleTenant" in str(refused.value)
    monkeypatch.setenv("HEALTHBOT_TEAMS_TENANT_IDS", TENANT)
    assert load_settings().teams_tenants == [TENANT]
    monkeypatch.delenv("MICROSOFT_APP_TYPE")  # SingleTenant, the default, needs the home tenant
    with pytest.raises(ConfigError, match="MICROSOFT_APP_TENANT_ID"):
        load_settings()
    monkeypatch.setenv("MICROSOFT_APP_TENANT_ID", TENANT)
    assert load_settings().teams_tenants == [TENANT]


async def test_single_tenant_ignores_a_conversation_of_another_tenant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                      fake_serving: FakeServing) -> None:
    """A valid Bot Framework token, a conversation of a tenant that sideloaded the bot's id: no answer."""
    from botframework.connector.auth import AuthenticationConstants, MicrosoftAppCredentials

    monkeypatch.setattr(MicrosoftAppCredentials, "get_access_token", lambda self, force_refresh=False: "entra-token")
    openid = FakeOpenId()
    monkeypatch.setattr(AuthenticationConstants, "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL", openid.start())
    rig, runner = await start_rig(monkeypatch, tmp_path, fake_serving, MICROSOFT_APP_ID=APP_ID,
                                  MICROSOFT_APP_PASSWORD="not-a-real-secret", MICROSOFT_APP_TENANT_ID=TENANT)
    try:
        stranger = "22222222-0000-0000-0000-0000000000ee"
        activity = rig.activity("message_personal.json", id="17601")
        activity["conversation"]["tenantId"] = stranger
        activity["channelData"] = {"tenant": {"id": stranger}}
        status, _ = await rig.post(activity, {"Authorization": f"Bearer {openid.token(rig.connector.url + '/')}"})
        assert status in (200, 201)
        await rig.settle()
        assert rig.connector.calls == [] and fake_serving.invocation_bodies() == []
        home = rig.activity("message_personal.json", id="17602")
        status, _ = await rig.post(home, {"Authorization": f"Bearer {openid.token(rig.connector.url + '/')}"})
        await rig.connector.wait_for(lambda: rig.connector.cards())
    finally:
        await runner.cleanup()
        await rig.connector.stop()
        openid.server.shutdown()
