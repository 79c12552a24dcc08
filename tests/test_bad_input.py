"""Bad input never gets a 5xx: hypothesis mutates the real fixtures field by field (wrong types,
missing fields, lone surrogates, NULs, deep nesting, huge strings), also as sent by a guest (the
refusal paths), and sends them correctly signed to every route; every answer is < 500, nothing is
logged with a traceback, and the server still answers a valid question afterwards.

Profiles (tests/conftest.py): `ci` (default, fixed seed, 250 examples per route) and
`pytest --hypothesis-profile=long` (3,000 per route, a new seed each run).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import threading
from collections import Counter, defaultdict
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import load_settings
from adapters.host.server import SLACK, create_app
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.connector import FakeConnector
from tests.fakes.identity import FakeIdentityWorkspace, user_mode
from tests.fakes.serving import FakeServing
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, sign

FIXTURES = Path(__file__).parent / "fixtures"
ALERT_TOKEN = "alert-token-for-fuzzing"
SLACK_GUEST, TEAMS_GUEST = "U0GUESTFUZ", "29:1FAKEguestForFuzzing"  # looked up as guests: the refusal paths
SLACK_HOOKS = "https://hooks.slack.com/"


def load(kind: str, name: str) -> Any:
    return json.loads((FIXTURES / kind / name).read_text())


# -- the server under test, on its own event loop -------------------------------------------------


class Tracebacks(logging.Handler):
    """Collects every record logged with exception info: input that is merely bad must make none."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)

    def lines(self) -> list[str]:
        """Each record, with the end of its traceback: where the bug is."""
        import traceback

        return [f"{r.name}: {r.getMessage()}\n" + ("".join(traceback.format_exception(*r.exc_info)[-4:]) if r.exc_info else "")
                for r in self.records]


class Server:
    """healthbot with Slack (HTTP), Teams (emulator mode) and alerts, against local fakes."""

    def __init__(self, tmp: Path, *, user_mode: bool = False) -> None:
        self.tmp = tmp
        self.user_mode = user_mode  # HEALTHBOT_IDENTITY=user: questions need a connected account
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)  # per route: what the fuzzing got
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        self.slack, self.connector = FakeSlack(), FakeConnector()
        self.serving = FakeIdentityWorkspace() if self.user_mode else FakeServing()
        for fake in (self.slack, self.connector, self.serving):
            await fake.start()
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": self.slack.api_url,
               "HEALTHBOT_ALERT_TOKEN": ALERT_TOKEN, "HEALTHBOT_ALERT_CHANNELS": "slack:C0PLATFORM1",
               "HEALTHBOT_ALERT_PACE_SECONDS": "0", "HEALTHBOT_USER_RATE_PER_MIN": "100000",
               "HEALTHBOT_GLOBAL_RATE_PER_MIN": "100000",
               **(user_mode(self.serving) if isinstance(self.serving, FakeIdentityWorkspace) else {})}
        self.slack.users[SLACK_GUEST] = load("slack", "webapi_users_info_guest_single_channel.json")
        self.connector.members[TEAMS_GUEST] = load("teams", "member_get_guest.json")
        self.app = create_app(load_settings(**{k: v for k, v in env.items()}), store=SqliteStore(self.tmp / "bot.db"),
                              engine=make_client(self.serving))
        self.runner, self.url = await serve(self.app)

    async def stop(self) -> None:
        await self.runner.cleanup()
        for fake in (self.slack, self.connector, self.serving):
            await fake.stop()

    def post(self, path: str, body: bytes | None, headers: dict[str, str], method: str = "POST") -> int:
        request = urllib.request.Request(f"{self.url}{path}", data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        self.statuses[path.split("?")[0]][status] += 1
        return status


@contextlib.contextmanager
def running(tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Iterator[Server]:
    patch = pytest.MonkeyPatch()
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "SLACK_", "MICROSOFT_APP_", "HEALTHBOT_", "MLFLOW_")):
            patch.delenv(name)
    tmp = tmp_path_factory.mktemp("fuzz")
    patch.setenv("XDG_STATE_HOME", str(tmp / "state"))
    patch.setenv("HEALTHBOT_TEAMS_EMULATOR", "on")  # Teams activities from the fake connector on loopback
    patch.chdir(tmp)
    srv = Server(tmp, **options)
    srv.run(srv.start())
    yield srv
    srv.run(srv.stop())
    srv.loop.call_soon_threadsafe(srv.loop.stop)
    patch.undo()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory) as srv:
        yield srv


@pytest.fixture(scope="module")
def user_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """HEALTHBOT_IDENTITY=user: the connect prompt on every question, and the OAuth callback route."""
    with running(tmp_path_factory, user_mode=True) as srv:
        yield srv


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


# -- strategies: the real fixtures, mutated ---------------------------------------------------------

LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from(["\ud800", "a\x00b", "\udfff\ud800x", "<!channel>", "http://[::1", "ftp://x", ""]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
    st.just("x" * 20_000), st.integers(1, 60).map(lambda depth: json.loads("[" * depth + "]" * depth)),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, prefix + (index,))
    return found


@st.composite
def mutated(draw: st.DrawFn, original: Any) -> Any:
    """One to three edits of a real payload: a value replaced, a key deleted, a key added."""
    body = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        where = paths(body)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        operation = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if operation == "replace":
            parent[path[-1]] = draw(LEAVES)
        elif operation == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(LEAVES)
    return body


def raw_bodies(originals: list[Any]) -> st.SearchStrategy[bytes]:
    """Mutated payloads as JSON (lone surrogates as \\ud800 escapes), plus broken bytes of real ones."""
    as_json = st.sampled_from(originals).flatmap(mutated).map(lambda v: json.dumps(v).encode())
    broken = st.one_of(
        st.sampled_from(originals).flatmap(lambda v: st.integers(0, len(json.dumps(v))).map(
            lambda cut, v=v: json.dumps(v).encode()[:cut])),
        st.binary(max_size=64),
        st.integers(100, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(100, 50_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
        st.sampled_from([b"null", b"[]", b'"text"', b"1e999999", b'{"type": "\\ud800"}', b"\xff\xfe{}"]),
    )
    return st.one_of(as_json, as_json, as_json, broken)


def as_guest(payloads: list[Any], path: tuple[str, ...], user: str) -> list[Any]:
    """Copies of the payloads that name an asker at `path`, asked by a guest instead."""
    copies = []
    for payload in payloads:
        payload = copy.deepcopy(payload)
        parent = payload
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent:
            parent[path[-1]] = user
            copies.append(payload)
    return copies


SLACK_EVENTS = [load("slack", name) for name in (
    "event_app_mention_channel.json", "event_app_mention_thread.json", "event_message_im.json",
    "event_message_changed.json", "event_message_thread_reply_no_mention.json", "event_message_subtype_bot_message.json",
    "event_app_mention_slack_connect_external_user.json", "url_verification.json",
    "event_assistant_thread_started.json", "event_assistant_thread_context_changed.json",
    "event_message_assistant_thread.json", "event_app_home_opened.json", "event_app_home_opened_messages.json",
    "event_app_context_changed.json", "event_message_im_agent_view.json")]
SLACK_EVENTS += as_guest(SLACK_EVENTS, ("event", "user"), SLACK_GUEST)
SLACK_ACTIONS = [load("slack", "interactive_block_actions_thread.payload.json"),
                 load("slack", "interactive_block_actions_home.payload.json"),
                 {**load("slack", "interactive_block_actions_thread.payload.json"),
                  "actions": [load("slack", "interactive_block_actions_feedback_buttons_action.json")]}]
SLACK_ACTIONS += as_guest(SLACK_ACTIONS, ("user", "id"), SLACK_GUEST)
SLACK_COMMANDS = [dict(urllib.parse.parse_qsl((FIXTURES / "slack" / "slash_command_healthbot.txt").read_text().strip()))]
SLACK_COMMANDS += as_guest(SLACK_COMMANDS, ("user_id",), SLACK_GUEST)
TEAMS_ACTIVITIES = [load("teams", name) for name in (
    "message_personal.json", "message_channel_mention_new_post.json", "message_channel_thread_reply_mention.json",
    "message_messageback_card_action.json", "message_action_submit_card.json", "invoke_adaptive_card_action_execute.json",
    "conversation_update_bot_added_to_team.json", "conversation_update_bot_added_personal.json",
    "message_reaction_like.json", "invoke_message_submit_action_feedback.json")]
TEAMS_ACTIVITIES += as_guest(TEAMS_ACTIVITIES, ("from", "id"), TEAMS_GUEST)
ALERTS = [load("databricks", name) for name in (
    "sql_alert_v2_webhook_triggered.json", "sql_alert_legacy_webhook_UNVERIFIED_redash_shape.json",
    "jobs_webhook_on_failure_job.json", "jobs_webhook_on_start_task.json", "jobs_webhook_on_success_task.json")] + [
    {"name": "High Error Rate", "state": "TRIGGERED", "severity": "high", "value": 0.14, "threshold": 0.1,
     "url": "https://example.com", "key": "k1", "domain": "costs"}]


def slack_headers(content_type: str) -> Callable[[bytes], dict[str, str]]:
    return lambda body: {"Content-Type": content_type, **sign(body)}


def check_route(server: Server, tracebacks: Tracebacks, path: str, body: bytes, headers: dict[str, str]) -> None:
    status = server.post(path, body, headers)
    assert status < 500, (status, body[:300])
    if tracebacks.records:
        pytest.fail("\n".join(tracebacks.lines()), pytrace=False)


def answers_afterwards(server: Server, tracebacks: Tracebacks) -> None:
    """A valid mention is still answered once the fuzzing is over."""
    async def settle() -> None:
        await server.app[SLACK].drain()  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)

    server.run(settle())
    before = len(server.slack.called("chat.postMessage"))
    event = copy.deepcopy(SLACK_EVENTS[0])
    event["event_id"] = f"EvAfter{before}"
    event["event"]["ts"] = event["event"]["event_ts"] = f"17999999{before:02d}.000100"
    body = json.dumps(event).encode()
    assert server.post("/slack/events", body, slack_headers("application/json")(body)) == 200
    server.run(settle())
    posted = server.slack.called("chat.postMessage")[before:]
    assert any("Costs rose" in json.dumps(p) for p in posted), posted[-3:]
    assert not tracebacks.records, tracebacks.lines()


# -- one property per route ------------------------------------------------------------------------


@given(body=raw_bodies(SLACK_EVENTS))
def test_slack_events_never_5xx(server: Server, tracebacks: Tracebacks, body: bytes) -> None:
    check_route(server, tracebacks, "/slack/events", body, slack_headers("application/json")(body))


@given(command=st.sampled_from(SLACK_COMMANDS).flatmap(mutated), action=st.sampled_from(SLACK_ACTIONS).flatmap(mutated),
       kind=st.sampled_from(["command", "action"]),
       raw=st.booleans())
def test_slack_commands_and_buttons_never_5xx(server: Server, tracebacks: Tracebacks, command: dict[str, Any],
                                              action: Any, kind: str, raw: bool) -> None:
    hooks = f"{server.slack.url}/hooks/"  # response_url answers (refusals) go to the fake, not out to Slack
    if kind == "command":  # form fields are strings; other generated values arrive as their JSON text
        fields = {str(k): (v if isinstance(v, str) else json.dumps(v)).replace(SLACK_HOOKS, hooks) for k, v in command.items()}
    else:
        fields = {"payload": json.dumps(action).replace(SLACK_HOOKS, hooks)}
    body = urllib.parse.urlencode(fields, errors="surrogatepass").encode()
    if raw:  # a broken form encoding
        body = body[: len(body) // 2] + b"%ZZ&&=" + body[len(body) // 2:]
    check_route(server, tracebacks, "/slack/events", body, slack_headers("application/x-www-form-urlencoded")(body))


@given(body=raw_bodies(TEAMS_ACTIVITIES))
def test_teams_activities_never_5xx_and_get_no_internal_error(server: Server, tracebacks: Tracebacks, body: bytes) -> None:
    loopback = server.connector.url + "/"
    try:
        text = body.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        text = None
    if text is not None:  # emulator mode: the fixtures' serviceUrl is the fake connector on loopback
        body = text.replace("https://smba.trafficmanager.net/amer/00000000-0000-0000-0000-0000000000aa/", loopback) \
            .replace("https://smba.trafficmanager.net/amer-client-ss.msg/", loopback).encode("utf-8", "surrogatepass")
    check_route(server, tracebacks, "/api/messages", body, {"Content-Type": "application/json"})
    internal = [s for s in server.connector.sent if "internal error" in json.dumps(s.activity)]
    assert not internal, internal[:1]


@given(body=raw_bodies(ALERTS))
def test_alert_webhooks_never_5xx(server: Server, tracebacks: Tracebacks, body: bytes) -> None:
    check_route(server, tracebacks, "/alerts/databricks", body,
                {"Content-Type": "application/json", "Authorization": f"Bearer {ALERT_TOKEN}"})


@given(body=raw_bodies(SLACK_EVENTS))
def test_slack_events_in_user_mode_never_5xx(user_server: Server, tracebacks: Tracebacks, body: bytes) -> None:
    check_route(user_server, tracebacks, "/slack/events", body, slack_headers("application/json")(body))


def test_the_user_mode_fuzzing_reached_the_connect_prompt(user_server: Server) -> None:
    async def settle() -> None:
        await user_server.app[SLACK].drain()  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)

    user_server.run(settle())
    prompts = [c for c in user_server.slack.called("chat.postEphemeral") if "Connect your Databricks" in c.get("text", "")]
    assert prompts and user_server.serving.invocation_bodies() == []  # nothing reached the endpoint unconnected


CALLBACK_VALUES = st.one_of(st.text(max_size=40), st.sampled_from(["\ud800", "a\x00b", "x" * 5000, "", "code-1"]))


@given(params=st.dictionaries(st.sampled_from(["code", "state", "error", "error_description", "scope", "x"]),
                              CALLBACK_VALUES, max_size=5), raw=st.binary(max_size=40))
def test_the_oauth_callback_never_5xx(user_server: Server, tracebacks: Tracebacks, params: dict[str, str],
                                      raw: bytes) -> None:
    query = urllib.parse.urlencode(params, errors="surrogatepass") if params else urllib.parse.quote_from_bytes(raw)
    status = user_server.post(f"/oauth/callback?{query}", None, {}, method="GET")
    assert status < 500, (status, query[:200])
    if tracebacks.records:
        pytest.fail("\n".join(tracebacks.lines()), pytrace=False)


def test_the_server_still_answers_after_the_fuzzing(server: Server, tracebacks: Tracebacks) -> None:
    answers_afterwards(server, tracebacks)
    internal = [p for p in server.slack.called("chat.postMessage") if "internal error" in json.dumps(p)]
    assert not internal, internal[:1]  # bad input gets a 400 or a plain answer, never "internal error"
    print("statuses per route:", {path: dict(counts) for path, counts in server.statuses.items()})
    for path, counts in server.statuses.items():  # the mutations must reach the handlers, not only the 400s
        accepted = sum(n for status, n in counts.items() if status < 300)
        assert accepted >= 0.05 * sum(counts.values()), (path, counts)
