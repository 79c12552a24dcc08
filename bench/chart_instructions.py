"""What a native chart costs an answer, in instructions: the server under valgrind's callgrind.

bench.slack_events times the chart A/B in CPU seconds, and on this shared machine a round's CPU time
moves by ±10 % with the neighbours' load, more than the few per cent being measured. Instructions
executed do not: the same healthbot child as there (embedded store, instant engine, the answer's own
message carrying the chart or not) runs under callgrind, warms up, then counts only while it answers
`--events` app_mention events from the fake Slack of this process; then the same with the answer asked
of a Model Serving endpoint (this process's fake) over HTTP. The figure is instructions an answer
with the chart over without, a pair of runs each time (the A/A spread between pairs is the noise, well
under 1 %). Instructions are not time (a cache miss costs more than an add), so it is the stable half of
the picture beside the timed one, not a replacement for it. Needs valgrind (Debian: `apt install valgrind`).

Run: python -m bench.chart_instructions [--events N] [--pairs P]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

from bench.common import free_port, post_all
from bench.slack_events import CHART, BenchSlack, event_body, signed
from tests.fakes.serving import FakeServing, Scripted, answer_body


async def _answered(slack: BenchSlack, count: int) -> None:
    while len(slack.called("chat.postMessage")) < count:
        await asyncio.sleep(0.05)


async def instructions_an_answer(kind: str, slack: BenchSlack, events: int, out_dir: str, serving_url: str = "") -> float:
    """Instructions the `kind` child (asking `serving_url`, if given) executes an answer, counted from
    after its warm-up."""
    port = free_port()
    out = os.path.join(out_dir, f"callgrind.{kind}.{port}")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                             sys.executable, "-m", "bench.slack_events", "--child", kind, "--port", str(port),
                             "--slack-url", slack.api_url, "--serving-url", serving_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(3000):  # starting under valgrind takes a while
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        url = f"http://127.0.0.1:{port}/slack/events"
        slack.api.clear()
        await post_all(url, [event_body(10_000_000 + i) for i in range(100)], 16, signed)  # warm-up
        await _answered(slack, 100)
        subprocess.run(["callgrind_control", "--instr=on", str(proc.pid)], check=True, capture_output=True)
        await asyncio.sleep(1.0)
        slack.api.clear()
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        await post_all(url, [event_body(i) for i in range(events)], 16, signed)
        await _answered(slack, events)
        await asyncio.sleep(0.5)
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        proc.wait()
    [dump] = glob.glob(out + ".*")  # --dump writes <out>.1; the exit's own lands in <out>
    with open(dump, encoding="utf-8") as file:
        found = re.search(r"^(?:summary|totals): (\d+)", file.read(), re.M)
    assert found is not None, f"no instruction count in {dump}"
    return int(found.group(1)) / events


async def pairs_of(label: str, plain: tuple[str, str], charted: tuple[str, str], slack: BenchSlack, events: int,
                   pairs: int) -> None:
    """`pairs` runs of each side, in turn; one line a pair and the range."""
    ratios = []
    with tempfile.TemporaryDirectory() as out_dir:
        for _ in range(pairs):
            without = await instructions_an_answer(plain[0], slack, events, out_dir, plain[1])
            with_chart = await instructions_an_answer(charted[0], slack, events, out_dir, charted[1])
            ratios.append(with_chart / without)
            print(f"  {without:,.0f} instructions an answer without a chart, {with_chart:,.0f} with: "
                  f"{with_chart / without:.4f} x (+{with_chart - without:,.0f})", flush=True)
    print(f"{label}: {min(ratios):.3f}–{max(ratios):.3f} x over {pairs} pairs of {events} answers (target <= 1.05)",
          flush=True)


async def main_async(events: int, pairs: int) -> None:
    slack = BenchSlack()
    serving, charting = FakeServing(), FakeServing(default=Scripted(200, answer_body(charts=[CHART])))
    for fake in (slack, serving, charting):
        await fake.start()
    try:
        await pairs_of("answers with a native chart, in instructions", ("healthbot", ""), ("healthbot-chart", ""),
                       slack, events, pairs)
        await pairs_of("the same, asking Model Serving over HTTP", ("healthbot", serving.url),
                       ("healthbot", charting.url), slack, events, pairs)
    finally:
        for fake in (slack, serving, charting):
            await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench.chart_instructions needs valgrind (Debian: apt install valgrind)")
    asyncio.run(main_async(args.events, args.pairs))


if __name__ == "__main__":
    main()
