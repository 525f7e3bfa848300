"""The console's frame time on its Capture tab while the capture server ingests at full rate.

Three processes on one machine: the trainledger capture server (`--fsync batch`) on a fresh
workspace, the load generator (benchmarks/_capture_load.py, 60-frame bodies on C keep-alive
connections, flat out) and the console headless on the Capture tab
(benchmarks/_capture_console_child.py, which says exactly what it measures: the lag of a
10 ms asyncio timer on Textual's event loop, and the duration of each Screen refresh).
Each round has two phases on the same workspace and the same running server:
  * ingest: the load runs through the whole measured window (checked from both windows);
  * reference: the server idle, no load, the same console on the files ingest left behind.
Their order alternates by round. Goal: p95 loop lag and p95 refresh time < 50 ms under
full-rate ingest. Afterwards every acknowledged frame must be in the session files.
The workspace is benchmarks/.data/capture-console/ (a real disk); at ~50,000 frames/s it
grows by ~115 MB/s of ingest (a few GB for the default run) and is deleted at the end.

Run: python benchmarks/capture_console.py [--rounds 3] [--seconds 10] [--concurrency 4]
                                          [--frames 60] [--port P] [--quick]
Exits 1 when the goal is missed, a request failed or a session file disagrees.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from _bench import DATA, median, ratio, verdict
from _capture_load import (
    HERE,
    check_sessions,
    free_port,
    server_cmd,
    start_server,
    stop_server,
)

from trainledger.engines.workspace import Workspace, init_workspace

GOAL_P95_MS = 50.0
CHILD = HERE / "_capture_console_child.py"


def console(ws: Workspace, seconds: float, settle: float) -> dict:
    proc = subprocess.run([sys.executable, str(CHILD), str(ws.root), "--seconds", str(seconds), "--settle",
                           str(settle)], check=False, capture_output=True, text=True,
                          timeout=seconds + settle + 90)  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or json.loads(lines[-1])["lag_ms"]["n"] == 0:
        raise RuntimeError(
            f"console child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def wait_growing(folder: Path, timeout: float = 15) -> None:
    """Return once a session file in `folder` grows between two looks."""

    def size() -> int:
        return sum(p.stat().st_size for p in folder.glob("*.jsonl"))

    deadline, last = time.monotonic() + timeout, size()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if (now := size()) > last > 0:
            return
        last = now
    raise RuntimeError("the load generator never got frames into the session files")


def ingest_phase(
    ws: Workspace, port: int, args: argparse.Namespace, tag: str
) -> tuple[dict, dict]:
    cmd = [sys.executable, str(HERE / "_capture_load.py"), "--port", str(port), "--frames", str(args.frames),
           "--concurrency", str(args.concurrency), "--warmup", "0.5", "--seconds", str(args.seconds + 600),
           "--prefix", tag]  # fmt: skip
    load = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_growing(ws.captures_dir)
        seen = console(ws, args.seconds, args.settle)
    finally:
        load.send_signal(signal.SIGTERM)
        out, err = load.communicate(timeout=60)
    lines = out.strip().splitlines()
    if load.returncode != 0 or not lines:
        raise RuntimeError(
            f"load generator failed ({load.returncode}):\n{out}\n{err[-3000:]}"
        )
    return seen, json.loads(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rounds", type=int, default=3, help="rounds of ingest + reference (default 3)"
    )
    ap.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="measured window per phase (default 10)",
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=1.5,
        help="seconds on the Capture tab before measuring",
    )
    ap.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="load generator connections (default 4)",
    )
    ap.add_argument(
        "--frames", type=int, default=60, help="frames per request body (default 60)"
    )
    ap.add_argument(
        "--port",
        type=int,
        default=0,
        help="server port (default: a free one)",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 4 s")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 4.0

    root = DATA / "capture-console"
    shutil.rmtree(root, ignore_errors=True)
    ws = init_workspace(root)
    # the pane finds the server through <ws>/.trainledger/, on whatever port
    port = args.port or free_port()
    log = DATA / "capture-console.log"
    server = start_server(server_cmd("trainledger", port, ws.root, "batch"), port, log)
    print(f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, {os.cpu_count()} cores; server on :{port}, "
          f"load {args.concurrency} connections x {args.frames}-frame bodies; "
          f"{args.seconds:g} s per phase")  # fmt: skip
    phases: dict[str, list[dict]] = {"ingest": [], "reference": []}
    loads: list[dict] = []
    problems: list[str] = []
    try:
        for r in range(args.rounds):
            for name in (
                ("ingest", "reference") if r % 2 == 0 else ("reference", "ingest")
            ):
                if name == "reference":
                    seen = console(ws, args.seconds, args.settle)
                else:
                    seen, res = ingest_phase(ws, port, args, f"console-r{r}")
                    loads.append(res)
                    lo, hi = res["window"]
                    if not (lo <= seen["window"][0] and seen["window"][1] <= hi):
                        problems.append(
                            f"round {r + 1}: the load did not cover the console's window"
                        )
                    problems += [f"request error: {e}" for e in res["error_samples"]]
                phases[name].append(seen)
                print(f"  round {r + 1} {name:<9}: lag p95 {seen['lag_ms']['p95']:6.1f} ms, refresh p95 "
                      f"{seen['refresh_ms']['p95']:6.1f} ms ({seen['refresh_ms']['n']} frames)"
                      + (f", ingest {loads[-1]['frames_per_s']:,.0f} frames/s" if name == "ingest" else ""),
                      flush=True)  # fmt: skip
    finally:
        clean = stop_server(server)
    acked: dict[str, int] = {}
    for res in loads:
        for k, v in res["acked"].items():
            acked[k] = acked.get(k, 0) + v
    problems += check_sessions(ws.captures_dir, acked)
    if not clean:
        problems.append("the server did not stop on SIGTERM")
    size = sum(p.stat().st_size for p in ws.captures_dir.glob("*.jsonl"))

    shows = sorted(
        {
            w
            for p in phases["ingest"] + phases["reference"]
            for w in p.get("tab2_shows", [])
        }
    )
    polled = sum(p.get("stats_seen", False) for ps in phases.values() for p in ps)
    print(f"\ntab 2 shows: {', '.join(shows)} (it had the server's /stats in {polled} of "
          f"{2 * args.rounds} phases); session files at the end: {size / 1e6:,.0f} MB, "
          f"{sum(acked.values()):,} frames")  # fmt: skip
    print(f"ms, median over {args.rounds} round(s) of each phase's p50 / p95 / max")
    print(f"  {'phase':<11} {'loop lag p50':>12} {'p95':>7} {'max':>7}   {'refresh p50':>11} {'p95':>7} {'max':>7}"
          f" {'frames':>7} {'ingest frames/s':>16}")  # fmt: skip
    p95 = {}
    for name, runs in phases.items():
        lag = {k: median([p["lag_ms"][k] for p in runs]) for k in ("p50", "p95", "max")}
        ref = {
            k: median([p["refresh_ms"][k] for p in runs]) for k in ("p50", "p95", "max")
        }
        p95[name] = (lag["p95"], ref["p95"])
        fps = (
            f"{median([x['frames_per_s'] for x in loads]):,.0f}"
            if name == "ingest"
            else "0"
        )
        print(f"  {name:<11} {lag['p50']:12.1f} {lag['p95']:7.1f} {lag['max']:7.1f}   {ref['p50']:11.1f}"
              f" {ref['p95']:7.1f} {ref['max']:7.1f} "
              f"{median([p['refresh_ms']['n'] for p in runs]):7.0f} {fps:>16}")  # fmt: skip
    print(f"ratio ingest / reference, p95: loop lag {ratio(p95['ingest'][0], p95['reference'][0])}, "
          f"refresh {ratio(p95['ingest'][1], p95['reference'][1])}")  # fmt: skip
    if any(p["torch_imported"] for ps in phases.values() for p in ps):
        problems.append("the console process imported torch")
    worst = max(
        (x for x in p95["ingest"] if math.isfinite(x)), default=0.0
    )  # nan: no frames were drawn
    ok = worst < GOAL_P95_MS and not problems
    for p in problems[:20]:
        print(f"PROBLEM: {p}")
    if not problems:
        print(
            f"data: the session files hold exactly the {sum(acked.values()):,} acknowledged frames; 0 request errors"
        )
    print(f"goal: p95 loop lag and refresh < {GOAL_P95_MS:.0f} ms under full-rate ingest: {verdict(ok)}"
          f" ({p95['ingest'][0]:.1f} / {p95['ingest'][1]:.1f} ms)")  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    log.unlink(missing_ok=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
