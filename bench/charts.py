"""Charts: how long drawing one takes (warm, and cold in a fresh process with matplotlib's import), what
it costs in memory, and what answers with charts cost the conversation path.

- render: p50 / p95 of `bot.charts.render` over 50 charts (the demo engine's cost chart and a 24-point
  line with a threshold), warm; cold = the first chart of a fresh process. Target p95 <= 200 ms warm.
- memory: the process's peak RSS after importing matplotlib and drawing, over a bare interpreter's.
- answer path: the conversation handler answering a question whose answer carries a chart against the
  same answer without one, interleaved. Target: within 5 %.
- native charts: the handler's answer turned into what goes on the wire — Slack's message (translate, the
  data_visualization block, slack_sdk's request preparation, the JSON body) and Teams' Chart.* element — with
  a chart against without, interleaved, no network. Target: within 5 %. (Teams also draws the first chart's
  PNG as the element's fallback, as it drew the PNG before: the render time above.)
Run: python -m bench.charts
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = {"type": "line", "title": "healthbot: High Error Rate: hourly, the last 24 h", "x": [f"{h:02d}:00" for h in range(24)],
        "series": [{"name": "hourly", "values": [float(h % 7) for h in range(24)]}], "unit": "%", "threshold": 10.0}
BAR = {"type": "bar", "title": "Cost on Wednesdays, the last 4 weeks and yesterday",
       "x": ["2026-11-04", "2026-11-11", "2026-11-18", "2026-11-25", "2026-12-02"],
       "series": [{"name": "cost", "values": [1331.5, 1329.1, 1301.0, 1350.2, 1978.0]}], "unit": "USD",
       "threshold": 1331.66}
AA = False  # an A/A run (both without charts) shows the noise floor
COLD = """
import asyncio, resource, time
started = time.perf_counter()
from bot.charts import render
asyncio.run(render({chart!r}))
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
BARE = "import resource; print(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def _child(code: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


async def _warm(n: int) -> list[float]:
    from bot.charts import render

    await render(LINE)
    times = []
    for i in range(n):
        started = time.perf_counter()
        await render(LINE if i % 2 else BAR)
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


async def _answer_path(n: int) -> tuple[float, float]:
    from agent.base import Answer
    from bot.handler import ConversationHandler
    from bot.models import Incoming, Membership, Platform, ThreadKey
    from bot.store import SqliteStore

    class Engine:
        name = "bench"

        def __init__(self, charts: list[dict[str, object]]) -> None:
            self.charts = charts

        async def answer(self, request: object, *, on_progress: object = None) -> Answer:
            return Answer("Costs rose 42%.", ["system.billing.usage"], 0.9, ["costs"], charts=list(self.charts))

        async def close(self) -> None:
            return None

    with tempfile.TemporaryDirectory() as tmp:
        handlers = {name: ConversationHandler(store=SqliteStore(Path(tmp) / f"{name}.db"), engine=Engine(charts))
                    for name, charts in (("off", []), ("on", [] if AA else [BAR]))}
        totals = {"off": 0.0, "on": 0.0}
        for i in range(n):
            for name in ("off", "on") if i % 2 else ("on", "off"):
                message = Incoming(key=ThreadKey(platform=Platform.CONSOLE, workspace="w", channel="c", thread=f"t{i}"),
                                   user_id="u", text=f"question {i}", event_id=f"{name}{i}", membership=Membership.OPERATOR)
                started = time.perf_counter()
                await handlers[name].handle(message)
                totals[name] += time.perf_counter() - started
        for handler in handlers.values():
            await handler.store.close()
    return totals["off"] / n * 1e6, totals["on"] / n * 1e6


async def _native(n: int) -> tuple[float, float, float]:
    """(µs per answer without a chart, with one, a Teams Chart.* element alone) on the wire, no network."""
    import json

    from slack_sdk.web import async_base_client
    from slack_sdk.web.async_client import AsyncWebClient

    from adapters.slack import translate as t
    from adapters.teams.charts import native_element
    from bot.charts import parse_spec
    from bot.models import Reply

    async def no_network(self: object, *, http_verb: str, api_url: str, req_args: dict[str, object]) -> dict[str, object]:
        json.dumps(req_args.get("json") or {})  # the body as it would be sent
        return {"data": {"ok": True}, "headers": {}, "status_code": 200}

    async_base_client.AsyncBaseClient._request = no_network  # type: ignore[method-assign]
    client = AsyncWebClient(token="xoxb-bench", base_url="http://127.0.0.1:9/")
    plain = Reply(content="Costs rose 42%.", sources=["system.billing.usage"], confidence=0.9, domains=["costs"], request_id="r")
    replies = {"off": plain, "on": plain.model_copy(update={"charts": [BAR]})}
    totals = {"off": 0.0, "on": 0.0}
    for i in range(n):
        for name in ("off", "on") if i % 2 else ("on", "off"):
            started = time.perf_counter()
            for text, blocks in t.reply_messages(replies[name]):
                await client.chat_postMessage(channel="C1", thread_ts="1.0", text=text, blocks=blocks)
            totals[name] += time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(n):
        json.dumps(native_element(parse_spec(BAR)))
    teams = (time.perf_counter() - started) / n * 1e6
    return totals["off"] / n * 1e6, totals["on"] / n * 1e6, teams


def main() -> None:
    cold_s, rss_kb = _child(COLD.format(chart=LINE))
    _, bare_kb = _child(BARE)
    warm = asyncio.run(_warm(50))
    p50, p95 = statistics.median(warm), warm[int(0.95 * (len(warm) - 1))]
    print(f"render: warm p50 {p50:.0f} ms, p95 {p95:.0f} ms (target p95 <= 200 ms); cold {cold_s * 1000:.0f} ms "
          f"(matplotlib's import included); peak RSS {rss_kb / 1024:.0f} MB, {(rss_kb - bare_kb) / 1024:.0f} MB over a "
          "bare interpreter")
    global AA
    AA = True
    asyncio.run(_answer_path(500))  # warm-up: the first pass of a process is skewed whichever handler goes first
    aa_off, aa_on = asyncio.run(_answer_path(2000))
    AA = False
    off, on = asyncio.run(_answer_path(2000))
    print(f"answer path: {on:.0f} µs with a chart, {off:.0f} µs without: {on / off:.3f} × (target <= 1.05 ×); "
          f"an A/A run (both without): {aa_on / aa_off:.3f} ×")
    asyncio.run(_native(500))  # warm-up
    wire_off, wire_on, teams = asyncio.run(_native(5000))
    print(f"native chart on the wire: Slack's answer message {wire_on:.0f} µs with a data_visualization block, "
          f"{wire_off:.0f} µs without (+{wire_on - wire_off:.0f} µs an answer); Teams' Chart.* element {teams:.0f} µs "
          "(bench.slack_events sets the Slack delta against the CPU an answered event costs)")

if __name__ == "__main__":
    main()
