"""Start-up cost of `healthbot ask` and `healthbot serve`, against a bare `python -c pass`.

Targets: `healthbot ask` on the demo engine returns within 3 s; `healthbot serve` answers
/health within 2 s of start. Figures are medians of several runs, and ratios to the bare
interpreter measured in the same run, because this machine is shared and noisy.
Run: python -m bench.startup [--runs N]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HEALTHBOT = str(Path(sys.executable).parent / "healthbot")


def timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env, cwd=cwd)
    return time.perf_counter() - started


def serve_until_healthy(env: dict[str, str], cwd: str) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.Popen([HEALTHBOT, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
            if time.perf_counter() - started > 30:
                raise TimeoutError("serve never became healthy")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HEALTHBOT_DEMO_DATA_DIR": tmp}
        subprocess.run([HEALTHBOT, "ask", "warm-up"], check=True, capture_output=True, env=env, cwd=tmp)  # builds the dataset
        bare = statistics.median(timed([sys.executable, "-c", "pass"], env, tmp) for _ in range(args.runs))
        ask = statistics.median(timed([HEALTHBOT, "ask", "Which jobs failed today?"], env, tmp) for _ in range(args.runs))
        serve = statistics.median(serve_until_healthy(env, tmp) for _ in range(args.runs))
    print(f"python -c pass            : {bare:.3f} s (baseline)")
    print(f"healthbot ask (demo)      : {ask:.3f} s = {ask / bare:.1f} x baseline (target < 3 s)")
    print(f"healthbot serve → /health : {serve:.3f} s = {serve / bare:.1f} x baseline (target < 2 s)")


if __name__ == "__main__":
    main()
