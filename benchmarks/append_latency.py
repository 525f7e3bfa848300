"""Latency from a metrics row appended on disk to the Curves pane holding it.

The real console runs headless in this process (`App.run_test`, watch=True) on a fresh
workspace with one run; a separate writer process appends rows to its metrics.jsonl at
~10 Hz and records time.monotonic() right after each write (CLOCK_MONOTONIC is one clock
for every process on the machine). For each row the latency is the time from its write
to `CurvesPane.on_drawn` first reporting a row count that includes it: the watcher's
batch, the thread worker's RunSeries.refresh, the message and the pane's redraw.

Two phases, same script, same pipeline:
  * trainledger: the watcher as shipped (DEBOUNCE_MS=50, STEP_MS=10);
  * reference: watchfiles' defaults (debounce=1600, step=50) patched into
    trainledger.console.watcher before the app starts.
Goal: p95 < 150 ms as shipped. `--rounds R` alternates the phases R times.

Run: python benchmarks/append_latency.py [--appends 100] [--hz 10] [--rounds 1] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import median, pct, ratio, verdict

import trainledger.console.watcher as watcher
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import init_workspace

GOAL_P95_MS = 150.0
BASE_ROWS = 20
PHASES = {"trainledger (50, 10)": (50, 10), "watchfiles default (1600, 50)": (1600, 50)}

# The writer process: plain os.write of one line per row on an O_APPEND descriptor, the
# way any training script appends; prints "row monotonic" after each write.
WRITER = r"""
import os, sys, time, json
path, count, hz, first = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
period, t_next, out = 1.0 / hz, time.monotonic(), []
for k in range(count):
    t_next += period
    time.sleep(max(0.0, t_next - time.monotonic()))
    step = first + k
    os.write(fd, json.dumps({"step": step, "time": time.time(), "train/loss": 1.0 / (1 + step)}).encode() + b"\n")
    out.append(f"{k + 1} {time.monotonic()!r}")
print("\n".join(out))
"""


async def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


async def phase(root: Path, debounce: int, step: int, appends: int, hz: float) -> list[float]:
    """Latencies (ms) of `appends` rows written by a separate process at `hz`."""
    ws = init_workspace(root)
    run = MetricsWriter(ws, "live", name="live", model="bench")
    for i in range(BASE_ROWS):
        run.log({"train/loss": 1.0 / (1 + i)}, step=i)
    watcher.DEBOUNCE_MS, watcher.STEP_MS = debounce, step
    drawn: dict[int, float] = {}
    app = TrainledgerApp(ws, theme="trainledger-dark", watch=True)
    try:
        async with app.run_test(size=(120, 40)):
            pane = app.query_one(CurvesPane)
            if not await _wait(lambda: pane.drawn_rows.get("live") == BASE_ROWS, 10):
                raise RuntimeError("the console never drew the starting rows")
            pane.on_drawn = lambda run_id, n: drawn.setdefault(n, time.monotonic())
            await asyncio.sleep(0.5)  # the watcher is up and idle
            proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(run.dir / "metrics.jsonl"), str(appends), str(hz),
                 str(BASE_ROWS)], stdout=subprocess.PIPE, text=True)  # fmt: skip
            await _wait(lambda: proc.poll() is not None, appends / hz + 30)
            await _wait(lambda: max(drawn, default=0) >= BASE_ROWS + appends, 5)
            written = dict(line.split() for line in proc.communicate()[0].split("\n") if line)
    finally:
        run.finish()
    lat = []
    for k, t_write in written.items():
        seen = [t for n, t in drawn.items() if n >= BASE_ROWS + int(k)]
        lat.append((min(seen) - float(t_write)) * 1000 if seen else float("inf"))
    return lat


async def main_async(args: argparse.Namespace) -> int:
    results: dict[str, list[float]] = {name: [] for name in PHASES}
    saved = watcher.DEBOUNCE_MS, watcher.STEP_MS
    try:
        with tempfile.TemporaryDirectory(prefix="tl-append-") as tmp:
            for r in range(args.rounds):
                for name, (debounce, step) in PHASES.items():
                    root = Path(tmp) / f"ws-{r}-{debounce}"
                    results[name] += await phase(root, debounce, step, args.appends, args.hz)
    finally:
        watcher.DEBOUNCE_MS, watcher.STEP_MS = saved
    print(f"{args.appends} appends x {args.rounds} round(s) at {args.hz:g} Hz by a separate process;"
          " ms from the write to CurvesPane.on_drawn holding the row")  # fmt: skip
    print(f"  {'watcher (debounce, step ms)':<32} {'p50':>7} {'p95':>7} {'max':>7} {'missed':>7}")
    stats = {}
    for name, lat in results.items():
        ok = [x for x in lat if x != float("inf")]
        stats[name] = (median(ok), pct(ok, 95), max(ok, default=float("nan")))
        print(f"  {name:<32} {stats[name][0]:7.1f} {stats[name][1]:7.1f} {stats[name][2]:7.1f}"
              f" {len(lat) - len(ok):7d}")  # fmt: skip
    ours, ref = stats[next(iter(PHASES))], stats[list(PHASES)[1]]
    print(f"ratio default / trainledger: p50 {ratio(ref[0], ours[0])}, p95 {ratio(ref[1], ours[1])}")
    missed = sum(x == float("inf") for x in results[next(iter(PHASES))])
    ok = ours[1] < GOAL_P95_MS and missed == 0
    print(f"goal: p95 < {GOAL_P95_MS:.0f} ms as shipped: {verdict(ok)} ({ours[1]:.1f} ms)")
    return 1 if args.check and not ok else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--appends", type=int, default=100, help="rows appended per phase (default 100)")
    ap.add_argument("--hz", type=float, default=10.0, help="append rate of the writer (default 10)")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the two phases this often")
    ap.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
