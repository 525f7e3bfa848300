"""Capture ingest throughput: the trainledger server against a bare aiohttp+orjson server.

All servers run as child processes on 127.0.0.1 and are driven by the same load generator
in this process (benchmarks/_capture_load.py: C keep-alive connections, one session id
each, pre-built bodies of 1 or 60 schema-v2 frames, a warm-up then a fixed window):
  * bare: benchmarks/_bare_ingest.py, `orjson.loads` of each line, discarded (the goal's
    reference);
  * append: benchmarks/_append_ingest.py, `orjson.loads` of each line, then the body in one
    O_APPEND write (no validation, no fsync): bare -> append is the cost of the write;
  * trainledger --fsync off: `python -m trainledger.engines.capture serve` on a fresh
    workspace: append -> off is validation and our bookkeeping;
  * trainledger --fsync batch (the default, the goal's subject): off -> batch is the fsyncs;
  * trainledger --fsync always (with --always): reported, no goal.
Each round runs every server once per body size, back to back, the order rotated every round,
each trial in a fresh server process. Rounds are many and short, because other load on the
machine comes and goes: what decides is the per-round ratio trainledger/bare (each pair ran
seconds apart), reported as the median and the interquartile range (p25-p75) over the rounds.
Goal: median per-round ratio >= 0.8x for both sizes.
After every storing trial the server is stopped (SIGTERM) and each session file must hold
exactly the frames the load generator saw acknowledged, and its first and last lines must be
valid frames: a benchmark that loses data is not a result. Any non-200 fails it too.
Scratch workspaces go to benchmarks/.data/capture-scratch/ (a real disk, so fsync costs
what it costs) and are deleted after each trial.

Run: python benchmarks/capture_ingest.py [--rounds 12] [--seconds 3] [--concurrency 4]
                                         [--client raw|aiohttp] [--always] [--quick] [--stub]
"client CPU" is the load generator's CPU time per wall second (1 core = 100 %): well under
100 % means the client kept up and the server set the pace; near 100 % the client is the
bottleneck and the ratio says little (the run warns).
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
from _bench import DATA, median, pct, verdict
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
    round: int = 0


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
    ws = init_workspace(ws_root) if kind != "bare" else None  # append, stub: bare folders
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
    names = {"bare": "bare aiohttp+orjson", "append": "append (parse+write)"}
    label = names.get(kind) or f"{kind} --fsync {fsync}"
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


CLIENT_BOUND = 0.9  # client CPU per wall second above which a trial measured the client


def _ratios(trials: list[Trial], num: str, den: str, size: int) -> list[float]:
    """Per-round ratios num/den of frames/s for one body size (pairs from the same round)."""
    by_round = {(t.round, t.label): t for t in trials if t.size == size}
    rounds = sorted({t.round for t in trials})
    return [by_round[r, num].result.frames_per_s / by_round[r, den].result.frames_per_s
            for r in rounds if (r, num) in by_round and (r, den) in by_round
            and by_round[r, den].result.frames_per_s > 0]  # fmt: skip


def _iqr(xs: list[float]) -> str:
    return f"{pct(xs, 25):.2f}–{pct(xs, 75):.2f}" if xs else "n/a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=12, help="rotating rounds (default 12)")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured window per trial (default 3)")
    ap.add_argument("--warmup", type=float, default=0.5, help="warm-up per trial, not measured (default 0.5)")
    ap.add_argument("--concurrency", type=int, default=4, help="keep-alive connections (default 4)")
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw", help="load generator's client")
    ap.add_argument("--always", action="store_true", help="also run trainledger --fsync always (no goal)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 1 s")
    ap.add_argument("--stub", action="store_true", help="dry run: a storing stub in place of the real server")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup = 2, 1.0, 0.3
    ours = "stub" if args.stub else "trainledger"
    servers = [("bare", "batch"), ("append", "batch"), (ours, "batch")]
    if not args.stub:
        servers.insert(2, (ours, "off"))
    if args.always and not args.stub:
        servers.append((ours, "always"))

    frames = make_frames(240)
    avg = sum(map(len, frames)) / len(frames)
    print(f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, commit {_commit()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{args.concurrency} keep-alive connections ({args.client} client), {args.warmup:g} s warm-up + "
          f"{args.seconds:g} s per trial, {args.rounds} round(s) of {len(servers)} servers x {len(SIZES)} "
          f"sizes; frames of {avg:,.0f} B on average")  # fmt: skip
    trials: list[Trial] = []
    for r in range(args.rounds):
        for size in SIZES:
            bodies = make_bodies(frames, size)
            k = r % len(servers)
            done = []
            for kind, fsync in servers[k:] + servers[:k]:
                t = trial(kind, fsync, size, bodies, args, f"r{r}-{kind}-{fsync}-{size}")
                t.round = r
                done.append(t)
            trials += done
            print(f"  round {r + 1:>2}, {size:>2}-frame: "
                  + ", ".join(f"{t.label.split(' ')[0]}{'' if 'fsync' not in t.label else '/' + t.label.split()[-1]}"
                              f" {t.result.frames_per_s:,.0f}/s ({t.result.client_cpu:.0%})" for t in done),
                  flush=True)  # fmt: skip

    labels = list(dict.fromkeys(t.label for t in trials))
    print(f"\nper server: median frames/s (p25–p75) over {args.rounds} round(s); "
          "latency: median of the rounds' p50/p99")
    print(f"  {'frames/body':>11}  {'server':<30} {'frames/s':>26} {'MB/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
          f" {'errors':>6} {'client CPU med/max':>19}")  # fmt: skip
    for size in SIZES:
        for label in labels:
            ts = [t for t in trials if t.label == label and t.size == size]
            fps = [t.result.frames_per_s for t in ts]
            cpu = [t.result.client_cpu for t in ts]
            rng = f"{median(fps):,.0f} ({pct(fps, 25):,.0f}–{pct(fps, 75):,.0f})"
            print(f"  {size:>11}  {label:<30} {rng:>26} {median([t.result.mb_per_s for t in ts]):7.1f}"
                  f" {median([t.result.lat(50) for t in ts]):7.2f} {median([t.result.lat(99) for t in ts]):7.2f}"
                  f" {sum(t.result.errors for t in ts):6d} {median(cpu):>10.0%}/{max(cpu):.0%}")  # fmt: skip

    ok = True
    bare = "bare aiohttp+orjson"
    tl = f"{ours} --fsync batch"
    print("\nper-round ratios against bare, median (p25–p75) over the rounds:")
    for size in SIZES:
        for label in labels[1:]:
            rs = _ratios(trials, label, bare, size)
            line = f"  {size:>2}-frame  {label:<30} {median(rs):.2f}x ({_iqr(rs)})"
            if label == tl:
                met = median(rs) >= GOAL
                ok &= met
                line += f"   goal >= {GOAL}x: {verdict(met)}"
            print(line)
    bound = [t for t in trials if t.result.client_cpu >= CLIENT_BOUND]
    if bound:
        print(f"\nWARNING: in {len(bound)} of {len(trials)} trials the load generator used >= "
              f"{CLIENT_BOUND:.0%} of a core: those figures measure the client, not the server")  # fmt: skip
    problems = [f"{t.label} ({t.size}-frame): {p}" for t in trials for p in t.problems]
    stored = [t for t in trials if "bare" not in t.label]
    frames_checked = sum(sum(t.result.acked.values()) for t in stored)
    if problems:
        ok = False
        print(f"\nDATA OR REQUEST PROBLEMS ({len(problems)}):")
        for p in problems[:20]:
            print(f"  {p}")
    else:
        print(f"\ndata: after each of {len(stored)} storing trials the session files held exactly the "
              f"{frames_checked:,} acknowledged frames; 0 request errors in {len(trials)} trials")  # fmt: skip
    print(f"result: {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
