"""Capture ingest throughput: the trainledger server against a bare aiohttp+orjson server.

Both servers run as child processes on 127.0.0.1 and are driven by the same load generator
in this process (benchmarks/_capture_load.py: C keep-alive connections, one session id
each, pre-built bodies of 1 or 60 schema-v2 frames, a warm-up then a fixed window):
  * bare: benchmarks/_bare_ingest.py, `orjson.loads` of each line, discarded;
  * trainledger: `python -m trainledger.engines.capture serve --fsync batch` (the default)
    on a fresh workspace: validation and the durable append;
  * trainledger --fsync always: one extra row, reported, no goal.
Each round runs bare and trainledger back to back (their order swapped every round) for each
body size, each trial in a fresh server process. Medians over the rounds; ratio
trainledger/bare of the median frames/s per body size. Goal: >= 0.8x for both sizes.
After every trainledger trial the server is stopped (SIGTERM) and each session file must
hold exactly the frames the load generator saw acknowledged, and its first and last lines
must be valid frames: a benchmark that loses data is not a result. Any non-200 fails it too.
Scratch workspaces go to benchmarks/.data/capture-scratch/ (a real disk, so fsync costs
what it costs) and are deleted after each trial.

Run: python benchmarks/capture_ingest.py [--rounds 5] [--seconds 5] [--concurrency 4]
                                         [--client raw|aiohttp] [--quick] [--stub]
"client CPU" is the load generator's CPU time per wall second (1 core = 100 %): well under
100 % means the client kept up and the server set the pace.
Exits 1 when a goal is missed, a request failed or a session file disagrees.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp
from _bench import DATA, median, ratio, verdict
from _capture_load import (
    LoadResult,
    check_sessions,
    free_port,
    load,
    make_bodies,
    make_frames,
    server_cmd,
    start_server,
    stop_server,
)
from trainledger.engines.workspace import init_workspace

GOAL = 0.8
SIZES = (1, 60)


@dataclass
class Trial:
    label: str
    size: int
    result: LoadResult
    problems: list[str]
    clean_stop: bool


def trial(
    kind: str,
    fsync: str,
    size: int,
    bodies: list[bytes],
    args: argparse.Namespace,
    tag: str,
) -> Trial:
    scratch = DATA / "capture-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    ws_root = scratch / tag
    shutil.rmtree(ws_root, ignore_errors=True)
    ws = init_workspace(ws_root) if kind != "bare" else None
    port = free_port()
    log = scratch / f"{tag}.log"
    proc = start_server(
        server_cmd(kind, port, ws_root if ws else None, fsync), port, log
    )
    try:
        res = asyncio.run(load("127.0.0.1", port, bodies, size, args.concurrency, args.seconds,
                               args.warmup, args.client, prefix=tag))  # fmt: skip
    finally:
        clean = stop_server(proc)
    problems = check_sessions(ws.captures_dir, res.acked) if ws else []
    problems += [f"request error: {e}" for e in res.error_samples]
    if not clean:
        problems.append(
            f"server did not stop on SIGTERM; log: {log.read_text()[-500:]}"
        )
    shutil.rmtree(ws_root, ignore_errors=True)
    log.unlink(missing_ok=True)
    label = "bare aiohttp+orjson" if kind == "bare" else f"{kind} --fsync {fsync}"
    return Trial(label, size, res, problems, clean)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds (default 5)"
    )
    ap.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="measured window per trial (default 5)",
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="warm-up per trial, not measured (default 1)",
    )
    ap.add_argument(
        "--concurrency", type=int, default=4, help="keep-alive connections (default 4)"
    )
    ap.add_argument(
        "--client",
        choices=("raw", "aiohttp"),
        default="raw",
        help="load generator's client",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    ap.add_argument(
        "--stub",
        action="store_true",
        help="dry run: a storing stub in place of the real server",
    )
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 2.0, 0.5
    ours = "stub" if args.stub else "trainledger"

    frames = make_frames(240)
    avg = sum(map(len, frames)) / len(frames)
    print(f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, commit {_commit()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}")  # fmt: skip
    print(f"{args.concurrency} keep-alive connections ({args.client} client), {args.warmup:g} s warm-up + "
          f"{args.seconds:g} s per trial, {args.rounds} round(s); frames of {avg:,.0f} B on average")  # fmt: skip
    trials: list[Trial] = []
    for r in range(args.rounds):
        for size in SIZES:
            bodies = make_bodies(frames, size)
            order = [("bare", "batch"), (ours, "batch")]
            for kind, fsync in order if r % 2 == 0 else order[::-1]:
                trials.append(
                    trial(
                        kind, fsync, size, bodies, args, f"r{r}-{kind}-{fsync}-{size}"
                    )
                )
            if not args.stub:
                trials.append(
                    trial(
                        ours, "always", size, bodies, args, f"r{r}-{ours}-always-{size}"
                    )
                )
            done = trials[-3:] if not args.stub else trials[-2:]
            print(f"  round {r + 1}, {size:>2}-frame bodies: "
                  + ", ".join(f"{t.label} {t.result.frames_per_s:,.0f}/s" for t in done), flush=True)  # fmt: skip

    print(
        f"\nmedian (min–max) over {args.rounds} round(s); latency: median of the rounds' p50/p99"
    )
    print(
        f"  {'frames/body':>11}  {'server':<30} {'frames/s':>24} {'MB/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'client CPU':>10}"
    )
    medians: dict[tuple[str, int], float] = {}
    labels = list(dict.fromkeys(t.label for t in trials))
    for size in SIZES:
        for label in labels:
            ts = [t for t in trials if t.label == label and t.size == size]
            fps = [t.result.frames_per_s for t in ts]
            medians[label, size] = median(fps)
            rng = f"{median(fps):,.0f} ({min(fps):,.0f}–{max(fps):,.0f})"
            print(f"  {size:>11}  {label:<30} {rng:>24} {median([t.result.mb_per_s for t in ts]):7.1f}"
                  f" {median([t.result.lat(50) for t in ts]):7.2f} {median([t.result.lat(99) for t in ts]):7.2f}"
                  f" {sum(t.result.errors for t in ts):6d} {median([t.result.client_cpu for t in ts]):9.0%}")  # fmt: skip

    ok = True
    bare, tl = labels[0] if "bare" in labels[0] else labels[1], f"{ours} --fsync batch"
    print(
        f"\nratio {tl} / bare, median frames/s (and the median of the per-round ratios):"
    )
    for size in SIZES:
        per_round = [a.result.frames_per_s / b.result.frames_per_s
                     for a, b in zip([t for t in trials if t.label == tl and t.size == size],
                                     [t for t in trials if t.label == bare and t.size == size])]  # fmt: skip
        m = medians[tl, size] / medians[bare, size]
        ok &= m >= GOAL
        print(f"  {size:>2}-frame bodies: {ratio(medians[tl, size], medians[bare, size])}"
              f" (per round {median(per_round):.2f}x)   goal >= {GOAL}x: {verdict(m >= GOAL)}")  # fmt: skip
    always = f"{ours} --fsync always"
    if (always, 1) in medians:
        for size in SIZES:
            print(f"  {always} / bare, {size:>2}-frame bodies: {ratio(medians[always, size], medians[bare, size])}"
                  " (reported, no goal)")  # fmt: skip
    problems = [f"{t.label} ({t.size}-frame): {p}" for t in trials for p in t.problems]
    stored = [t for t in trials if "bare" not in t.label]
    frames_checked = sum(sum(t.result.acked.values()) for t in stored)
    if problems:
        ok = False
        print(f"\nDATA OR REQUEST PROBLEMS ({len(problems)}):")
        for p in problems[:20]:
            print(f"  {p}")
    else:
        print(f"\ndata: after each of {len(stored)} {ours} trials the session files held exactly the "
              f"{frames_checked:,} acknowledged frames; 0 request errors in {len(trials)} trials")  # fmt: skip
    print(f"result: {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
