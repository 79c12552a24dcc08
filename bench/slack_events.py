"""Signed app_mention events per second through POST /slack/events, against a bare slack-bolt app.

The servers under test run in child processes; this process plays Slack: it sends signed events and
serves the fake Web API that answers are posted to. Reported, as ratios measured in the same run:
- bare bolt (empty listener) events/s — the baseline for acknowledging — and healthbot's;
- ack latency p50/p99 while every answer takes 5 s;
- answered end to end against a bare bolt app whose listener posts one chat_postMessage reply in the
  thread (what anyone would write first): healthbot with dedupe, sessions, history and the request
  log on SQLite and an engine that answers instantly (target: >= 0.9 x the answering bolt app);
- healthbot answering with a native chart in each answer (a data_visualization block in the answer's own
  message) against the same answers without: the server process's own CPU time per answer (os.times
  in the child), so the fake Slack does not count (target <= 1.05 x), with an A/A run of the same
  harness beside it (the noise floor), and the chart's own cost measured in-process (bench.charts).
The two end-to-end comparisons keep both servers up and send them batches in turn (`--rounds`), the
order alternated: this machine's speed drifts within minutes, and both then see the same drift.
Run: python -m bench.slack_events [--events N] [--batch B] [--rounds R] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import child_server, post_all
from tests.fakes.serving import FakeServing, Scripted, answer_body
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, fixture, sign

# -- the child: one server under test -------------------------------------------------------


def child(kind: str, port: int, slack_url: str, answer_delay: float, serving_url: str) -> None:
    async def cpu(request: web.Request) -> web.Response:  # the child's own CPU seconds: its cost, not the machine's
        times = os.times()
        return web.json_response({"cpu_s": times.user + times.system})

    os.environ.update({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack_url,
                       "HEALTHBOT_USER_RATE_PER_MIN": "1000000", "HEALTHBOT_GLOBAL_RATE_PER_MIN": "1000000"})
    if kind in ("bolt", "bolt-answer"):
        from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
        from slack_bolt.app.async_app import AsyncApp
        from slack_sdk.web.async_client import AsyncWebClient

        bolt = AsyncApp(token=BOT_TOKEN, signing_secret=SIGNING_SECRET)  # as its docs start
        # The fake Slack's URL set afterwards, as healthbot sets it: a client passed in with `client=` would log
        # through slack_sdk's own logger, whose unset level makes every call format its debug lines
        # (python-slack-sdk #1957), while bolt gives the client it makes its own logger at the root's level.
        bolt.client.base_url = slack_url

        if kind == "bolt":
            @bolt.event("app_mention")
            async def empty() -> None:
                return None
        else:
            @bolt.event("app_mention")
            async def reply(event: dict, client: AsyncWebClient) -> None:  # type: ignore[type-arg]
                await client.chat_postMessage(channel=event["channel"], thread_ts=event["ts"], text="an answer")

        async def events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

        app = web.Application()
        app.router.add_post("/slack/events", events)
        app.router.add_get("/bench/cpu", cpu)
    else:
        from bench.handler import InstantEngine
        from bot.config import load_settings
        from adapters.host.server import create_app
        from bot.store import SqliteStore

        class SlowEngine(InstantEngine):
            async def answer(self, request, *, on_progress=None):  # type: ignore[no-untyped-def]
                await asyncio.sleep(answer_delay)
                return await super().answer(request)

        class ChartEngine(InstantEngine):  # the same answers, each with CHART: the A/B differs by the chart alone
            charts = [CHART]

        tmp = tempfile.mkdtemp()
        engine: Any = SlowEngine() if answer_delay else ChartEngine() if kind == "healthbot-chart" else InstantEngine()
        if serving_url:  # the whole answer: asked of a Model Serving endpoint (the parent's fake) over HTTP
            from agent.databricks_config import databricks_config
            from agent.serving import ServingClient

            engine = ServingClient(endpoint_name="health_monitor_orchestrator", fmt="inputs",
                                   config_factory=lambda: databricks_config(host=serving_url, token="test-token"))
        app = create_app(load_settings(), store=SqliteStore(Path(tmp) / "bench.db"), engine=engine)

        app.router.add_get("/bench/cpu", cpu)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


CHART = {"type": "bar", "title": "Cost on Wednesdays, the last 4 weeks and yesterday",  # the demo's cost chart
         "x": ["2026-11-04", "2026-11-11", "2026-11-18", "2026-11-25", "2026-12-02"],
         "series": [{"name": "cost", "values": [1331.5, 1329.1, 1301.0, 1350.2, 1978.0]}], "unit": "USD",
         "threshold": 1331.66, "threshold_label": "average Wednesday", "x_label": "Wednesday"}

# -- the parent: Slack ----------------------------------------------------------------------


def event_body(i: int) -> bytes:
    body = fixture("event_app_mention_channel.json")
    ts = f"{1712345678 + i}.{i:06d}"
    body["event"].update(ts=ts, event_ts=ts, user=f"U0USER{i % 20:04d}")
    body["event_id"] = f"EvBench{i}"
    return json.dumps(body).encode()


async def child_cpu(port: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/bench/cpu") as response:
        return float((await response.json())["cpu_s"])


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", **sign(body)}


async def measure(kind: str, slack: FakeSlack, events: int, concurrency: int, answer_delay: float = 0.0) -> dict[str, float]:
    async with child_server("bench.slack_events", kind, "--slack-url", slack.api_url,
                            "--answer-delay", str(answer_delay)) as port:
        url = f"http://127.0.0.1:{port}/slack/events"
        await post_all(url, [event_body(10_000_000 + i) for i in range(50)], concurrency, signed)  # warm-up
        await asyncio.sleep(0.5 + answer_delay)
        slack.api.clear()
        bodies = [event_body(i) for i in range(events)]
        started = time.perf_counter()
        latencies = await post_all(url, bodies, concurrency, signed)
        acked = time.perf_counter() - started
        if kind != "bolt" and not answer_delay:  # let healthbot answer before it is stopped (no shutdown notices)
            deadline = time.monotonic() + 120
            while len(slack.called("chat.postMessage")) < events and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return {"acked_per_s": events / acked,
                "p50_ms": statistics.median(latencies) * 1000, "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


@dataclass(frozen=True)
class Server:
    kind: str  # bolt-answer, healthbot, healthbot-chart
    serving_url: str = ""  # healthbot asks this Model Serving endpoint instead of its instant engine
    charted: bool = False  # its answers carry a chart


async def interleaved(servers: tuple[Server, Server], slack: FakeSlack, events: int, rounds: int,
                      concurrency: int) -> list[list[dict[str, float]]]:
    """Both servers up at once, batches of `events` sent to each in turn (the order alternated) for
    `rounds`: this machine's speed drifts within minutes, and both see the same drift. For each, the
    seconds until every answer was posted and its own CPU seconds, a round each."""
    totals: list[list[dict[str, float]]] = [[], []]
    async with contextlib.AsyncExitStack() as stack:
        ports = [await stack.enter_async_context(child_server("bench.slack_events", server.kind, "--slack-url",
                                                              slack.api_url, "--serving-url", server.serving_url))
                 for server in servers]
        for side, port in enumerate(ports):  # warm-up
            await post_all(f"http://127.0.0.1:{port}/slack/events",
                           [event_body(10_000_000 + side * 1000 + i) for i in range(200)], concurrency, signed)
        await asyncio.sleep(0.5)
        for round_ in range(rounds):
            for side in (0, 1) if round_ % 2 == 0 else (1, 0):
                slack.api.clear()
                bodies = [event_body(round_ * events + i) for i in range(events)]
                cpu_before = await child_cpu(ports[side])
                started = time.perf_counter()
                await post_all(f"http://127.0.0.1:{ports[side]}/slack/events", bodies, concurrency, signed)
                while len(slack.called("chat.postMessage")) < events:
                    await asyncio.sleep(0.005)
                totals[side].append({"seconds": time.perf_counter() - started,
                                     "cpu_s": await child_cpu(ports[side]) - cpu_before, "events": events})
                posted = json.dumps(slack.called("chat.postMessage")[-1])
                assert ("data_visualization" in posted) == servers[side].charted  # a chart goes natively
    return totals


class BenchSlack(FakeSlack):
    """The fake Web API without its checks (the tests' job): a body is kept as it came, not parsed, so
    this process's own work is the same whether answers carry charts or not, and it weighs the same on
    the machine the children share."""

    async def _params(self, request: web.Request) -> dict[str, Any]:
        return {"_raw": (await request.read()).decode()}

    def _refused_blocks(self, blocks: list[dict[str, object]]) -> str:
        return ""


Round = dict[str, float]


def rate(rounds: list[Round]) -> float:
    return sum(r["events"] for r in rounds) / sum(r["seconds"] for r in rounds)


def cpu_us(rounds: list[Round]) -> float:
    return sum(r["cpu_s"] for r in rounds) / sum(r["events"] for r in rounds) * 1e6


def paired(base: list[Round], other: list[Round], figure: Callable[[list[Round]], float]) -> str:
    """The median of the rounds' ratios other/base (each pair sent back to back, so a burst of load
    elsewhere on the machine moves one pair, not the result), with the quartiles."""
    ratios = sorted(figure([b]) / figure([a]) for a, b in zip(base, other))
    low, _, high = statistics.quantiles(ratios, n=4)
    return f"{statistics.median(ratios):.3f} x (quartiles {low:.3f}–{high:.3f})"


async def main_async(events: int, batch: int, rounds: int, concurrency: int) -> None:
    slack = BenchSlack()
    await slack.start()
    serving, charting = FakeServing(), FakeServing(default=Scripted(200, answer_body(charts=[CHART])))
    await serving.start()
    await charting.start()
    try:
        bolt = await measure("bolt", slack, events, concurrency)
        bot = await measure("healthbot", slack, events, concurrency)
        slow = await measure("healthbot", slack, min(events, 400), concurrency, answer_delay=5.0)
        ours, answering = await interleaved((Server("healthbot"), Server("bolt-answer")), slack, batch, rounds, concurrency)
        plain, charted = await interleaved((Server("healthbot"), Server("healthbot-chart", charted=True)), slack, batch,
                                           rounds, concurrency)
        same, again = await interleaved((Server("healthbot"), Server("healthbot")), slack, batch, rounds, concurrency)
        served_plain, served_charted = await interleaved(
            (Server("healthbot", serving.url), Server("healthbot", charting.url, charted=True)), slack, batch, rounds,
            concurrency)
        from bench.charts import _native

        await _native(500)  # warm-up
        wire_off, wire_on, _ = await _native(5000)  # the chart's own cost, measured precisely in-process
    finally:
        await slack.stop()
        await serving.stop()
        await charting.stop()
    print(f"bare slack-bolt, empty listener : {bolt['acked_per_s']:>7,.0f} events/s (baseline)")
    print(f"healthbot, acknowledged         : {bot['acked_per_s']:>7,.0f} events/s = {bot['acked_per_s'] / bolt['acked_per_s']:.2f} x bolt")
    print(f"ack latency, answers taking 5 s : p50 {slow['p50_ms']:.1f} ms, p99 {slow['p99_ms']:.1f} ms"
          f" (bare bolt p50 {bolt['p50_ms']:.1f} ms, p99 {bolt['p99_ms']:.1f} ms)")
    print(f"answered end to end, {rounds} rounds of {batch} events to each server, both up, interleaved:")
    print(f"  bare slack-bolt posting a reply: {rate(answering):>7,.0f} events/s, {cpu_us(answering):,.0f} µs CPU an event")
    print(f"  healthbot                      : {rate(ours):>7,.0f} events/s, {cpu_us(ours):,.0f} µs CPU an answer;"
          f" events/s {paired(answering, ours, rate)} the answering bolt app (target >= 0.9)")
    print(f"answers with a native chart     : {cpu_us(charted):,.0f} µs of healthbot's CPU an answer against "
          f"{cpu_us(plain):,.0f} without: {paired(plain, charted, cpu_us)} (target <= 1.05)")
    print(f"  the same harness, A/A          : {paired(same, again, cpu_us)} (its noise floor)")
    print(f"  the whole answer, asking Model Serving (the parent's fake endpoint) over HTTP: {cpu_us(served_charted):,.0f} "
          f"µs with a chart against {cpu_us(served_plain):,.0f}: {paired(served_plain, served_charted, cpu_us)}")
    delta = wire_on - wire_off
    print(f"  the chart's own cost           : +{delta:.0f} µs an answer (its message built and serialised, in-process) "
          f"= {(cpu_us(plain) + delta) / cpu_us(plain):.3f} x an answer's CPU above")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=500, help="events a round, to each server")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--child")
    parser.add_argument("--port", type=int)
    parser.add_argument("--slack-url")
    parser.add_argument("--answer-delay", type=float, default=0.0)
    parser.add_argument("--serving-url", default="")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.slack_url, args.answer_delay, args.serving_url)
    else:
        asyncio.run(main_async(args.events, args.batch, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
