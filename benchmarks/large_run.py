"""A 1,000,000-step run x 4 metrics: trainledger's load paths beside the parse limit and TensorBoard.

One metrics.jsonl (step, epoch, time, train/loss, val/loss, lr, acc per row) is generated
once into benchmarks/.data/large-<steps>/ and reused. Figures, all from this script:
  a. bare parse: read the file + msgspec `Decoder().decode_lines` (the practical limit),
     and the engine alone (RunSeries.refresh in-process, no cache dir), median of --repeat;
  b. TensorBoard: the same scalars written once with tensorboard's own EventFileWriter
     (cached), then `EventAccumulator(dir, size_guidance={'scalars': 0}).Reload()`, once;
  c. first draw: a fresh process (benchmarks/_console_child.py) opens the console headless
     on a workspace holding only this run, cache removed; process start -> on_drawn(n=all).
     Goal: within 2x of (a);
  d. second open: the same with the cache in place; Curves pane mounted -> drawn (goal
     < 100 ms), and process start -> drawn. c and d alternate --repeat times;
  e. one append afterwards: the console in this process (run_test, watch=True) on a copy of
     the run; one row appended --appends times; RunSeries.refresh, the pane's redraw and
     render_chart timed per append, and write -> on_drawn; the same on a 1,000-row run.
     Goal: refresh on the large run within 2x of the small one (it must not grow with N).

Run: python benchmarks/large_run.py [--steps 1000000] [--repeat 5] [--skip-tensorboard]
     [--tb-layout per-step|per-scalar] [--appends 20] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from _bench import DATA, METRICS, make_workspace, median, ratio, run_child, spread, timed_method, verdict

import trainledger.console.widgets.chart as chart_mod
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.engines.metrics.series import CACHE_MIN_ROWS, RunSeries
from trainledger.engines.workspace import Workspace, init_workspace


# ---------------------------------------------------------------------- a, b
def bare_parse(path: Path, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        rows = msgspec.json.Decoder().decode_lines(open(path, "rb").read())
        out.append(time.perf_counter() - t0)
        del rows
    return out


def engine_alone(run_dir: Path, steps: int, repeat: int, cache: Path | None = None) -> list[float]:
    """RunSeries.refresh in this process: a parse (no cache dir), or an open from `cache`."""
    out = []
    for _ in range(repeat):
        gc.collect()
        series = RunSeries(run_dir, cache_dir=cache, run_id=run_dir.name)
        t0 = time.perf_counter()
        res = series.refresh()
        assert (res.cached_rows if cache else res.new_rows) == steps, res
        out.append(time.perf_counter() - t0)
        del series
    return out


def tensorboard_dir(metrics: Path, steps: int, layout: str) -> Path:
    """The run as a TensorBoard event file, written once with tensorboard's own writer."""
    final = DATA / f"large-{steps}" / f"tb-{layout}"
    if (final / ".complete").exists():
        return final
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"writing the TensorBoard event file once ({layout}; about a minute per 1M steps)...")
    writer = EventFileWriter(str(tmp), max_queue_size=1000, flush_secs=30)
    for row in msgspec.json.Decoder().decode_lines(metrics.read_bytes()):
        values = [Summary.Value(tag=m, simple_value=row[m]) for m in METRICS]
        if layout == "per-step":  # one Event per step holding all 4 scalars
            writer.add_event(Event(wall_time=row["time"], step=row["step"], summary=Summary(value=values)))
        else:  # one Event per scalar, as SummaryWriter.add_scalar writes them
            for v in values:
                writer.add_event(Event(wall_time=row["time"], step=row["step"], summary=Summary(value=[v])))
    writer.close()
    (tmp / ".complete").touch()
    tmp.rename(final)
    return final


def tensorboard_load(tb: Path, steps: int) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    gc.collect()
    t0 = time.perf_counter()
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    dt = time.perf_counter() - t0
    got = [len(acc.Scalars(m)) for m in METRICS]
    assert got == [steps] * 4, got
    return dt


# ---------------------------------------------------------------------- c, d
def first_and_second(ws: Workspace, steps: int, repeat: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(value)

    for _ in range(repeat):
        shutil.rmtree(ws.cache_dir, ignore_errors=True)
        c = run_child(str(ws.root), "--rows", str(steps))
        assert c.get("rows") == steps, c
        s = c["since_start"]
        add("c.drawn", s["drawn"]), add("c.painted", s["painted"]), add("c.pane", s["pane_mounted"])
        add("c.asked_drawn", s["drawn"] - s["asked"])
        cached = (ws.cache_dir / "large" / "meta.json").exists()
        assert cached or steps < CACHE_MIN_ROWS, "the first open wrote no cache"
        d = run_child(str(ws.root), "--rows", str(steps))
        s = d["since_start"]
        add("d.drawn", s["drawn"]), add("d.painted", s["painted"])
        add("d.pane_drawn", s["drawn"] - s["pane_mounted"]), add("d.asked_drawn", s["drawn"] - s["asked"])
    return out


# ---------------------------------------------------------------------- e
async def append_cost(src: Workspace, run_id: str, rows: int, appends: int) -> dict[str, list[float]]:
    """The console on a copy of `src`: time what one appended row costs, `appends` times."""
    sinks: dict[str, list[float]] = {k: [] for k in ("refresh", "save_cache", "redraw", "render", "e2e")}
    undo = [timed_method(RunSeries, "refresh", sinks["refresh"]),
            timed_method(RunSeries, "_save_cache", sinks["save_cache"]),
            timed_method(CurvesPane, "redraw", sinks["redraw"])]  # fmt: skip
    render = chart_mod.render_chart

    def timed_render(*a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return render(*a, **k)
        finally:
            sinks["render"].append(time.perf_counter() - t0)

    chart_mod.render_chart = timed_render
    drawn: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory(dir=DATA, prefix="append-") as tmp:
            ws = init_workspace(Path(tmp) / "ws")
            shutil.copytree(src.run_dir(run_id), ws.run_dir(run_id))
            app = TrainledgerApp(ws, theme="trainledger-dark", watch=True)
            async with app.run_test(size=(120, 40)):
                pane = app.query_one(CurvesPane)
                t0 = time.monotonic()
                while pane.drawn_rows.get(run_id) != rows and time.monotonic() - t0 < 120:
                    await asyncio.sleep(0.02)
                load = dict(first_refresh=list(sinks["refresh"]), first_save=list(sinks["save_cache"]))
                await asyncio.sleep(0.5)
                for v in sinks.values():
                    v.clear()
                pane.on_drawn = lambda rid, n: drawn.setdefault(n, time.monotonic())
                fd = os.open(ws.run_dir(run_id) / "metrics.jsonl", os.O_WRONLY | os.O_APPEND)
                for k in range(1, appends + 1):
                    line = {"step": rows + k, "time": time.time(), **{m: 0.5 for m in METRICS}}
                    os.write(fd, msgspec.json.encode(line) + b"\n")
                    t_write = time.monotonic()
                    while rows + k not in drawn and time.monotonic() - t_write < 5:
                        await asyncio.sleep(0.002)
                    sinks["e2e"].append(drawn.get(rows + k, float("inf")) - t_write)
                    await asyncio.sleep(0.15)  # the frame is painted; rows arrive one at a time
                os.close(fd)
    finally:
        for u in undo:
            u()
        chart_mod.render_chart = render
    return {**sinks, **load}


# ---------------------------------------------------------------------- report
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1_000_000, help="rows of the large run (default 1M)")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of a, c and d (default 5)")
    ap.add_argument("--appends", type=int, default=20, help="appended rows in e (default 20)")
    ap.add_argument("--skip-tensorboard", action="store_true", help="leave out b (~1 min)")
    ap.add_argument("--tb-layout", choices=("per-step", "per-scalar"), default="per-step",
                    help="events in b: one per step with 4 values (default) or one per scalar")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args()
    steps = args.steps

    print(f"generating / reusing the {steps:,}-step run in {DATA}...")
    ws = make_workspace(DATA / f"large-{steps}" / "ws", {"large": steps})
    small = make_workspace(DATA / "small-1000" / "ws", {"small": 1000})
    path = ws.run_dir("large") / "metrics.jsonl"
    print(f"{path}: {path.stat().st_size / 1e6:.0f} MB, {steps:,} rows x {len(METRICS)} metrics")

    a = bare_parse(path, args.repeat)
    eng = engine_alone(path.parent, steps, args.repeat)
    tb = None if args.skip_tensorboard else tensorboard_load(tensorboard_dir(path, steps, args.tb_layout), steps)
    cd = first_and_second(ws, steps, args.repeat)
    if steps < CACHE_MIN_ROWS:
        print(f"note: under {CACHE_MIN_ROWS:,} rows no cache is written; d opens without one")
    eng_cached = engine_alone(path.parent, steps, args.repeat, cache=ws.cache_dir) if steps >= CACHE_MIN_ROWS else []
    e_small = asyncio.run(append_cost(small, "small", 1000, args.appends))
    e_large = asyncio.run(append_cost(ws, "large", steps, args.appends))

    ms = lambda xs: spread(xs, 1000, " ms")  # noqa: E731
    print(f"\n{steps:,} steps x 4 metrics; median (min–max, n)")
    print(f"  a  bare parse: read + msgspec decode_lines        {ms(a)}")
    print(f"     engine alone: RunSeries.refresh, no cache       {ms(eng)}")
    print(f"  b  TensorBoard EventAccumulator.Reload ({args.tb_layout})"
          f"  {ms([tb]) if tb is not None else 'skipped'}")  # fmt: skip
    print(f"  c  first draw, process start -> on_drawn(n)      {ms(cd['c.drawn'])}")
    print(f"       process start -> Curves pane mounted         {ms(cd['c.pane'])}")
    print(f"       pane asked for the run -> drawn              {ms(cd['c.asked_drawn'])}")
    print(f"       process start -> frame with the chart        {ms(cd['c.painted'])}")
    print(f"  d  second open, pane mounted -> drawn            {ms(cd['d.pane_drawn'])}")
    print(f"       pane asked for the run -> drawn              {ms(cd['d.asked_drawn'])}")
    print(f"       process start -> on_drawn(n)                 {ms(cd['d.drawn'])}")
    print(f"     engine alone: RunSeries.refresh from the cache {ms(eng_cached)}")
    print(f"     in-process first load (e): refresh, no cache   {ms(e_large['first_refresh'])}")
    print(f"       of which writing the cache                   {ms(e_large['first_save'])}")
    print(f"  e  one appended row, {'1,000 rows':>10} vs {steps:>9,} rows      ratio")
    for key, label in (("refresh", "RunSeries.refresh"), ("redraw", "CurvesPane.redraw"),
                       ("render", "render_chart"), ("e2e", "write -> on_drawn")):  # fmt: skip
        s, big = median(e_small[key]) * 1000, median(e_large[key]) * 1000
        print(f"     {label:<22} {s:8.2f} ms {big:10.2f} ms  {ratio(big, s):>8}")

    print("\nratios")
    print(f"  first draw / bare parse (c / a):            {ratio(median(cd['c.drawn']), median(a))}")
    print(f"  engine alone / bare parse:                  {ratio(median(eng), median(a))}")
    if tb is not None:
        print(f"  TensorBoard / first draw (b / c):           {ratio(tb, median(cd['c.drawn']))}")
    goals = [
        ("c first draw <= 2x bare parse", median(cd["c.drawn"]) <= 2 * median(a),
         f"{median(cd['c.drawn']) / median(a):.3f}x"),
        ("d second open, pane mounted -> drawn < 100 ms", median(cd["d.pane_drawn"]) < 0.1,
         f"{median(cd['d.pane_drawn']) * 1000:.0f} ms"),
        ("e refresh of one row does not grow with N (<= 2x)",
         median(e_large["refresh"]) <= 2 * median(e_small["refresh"]),
         f"{median(e_large['refresh']) / median(e_small['refresh']):.3f}x"),
    ]  # fmt: skip
    print("goals")
    for label, ok, figure in goals:
        print(f"  {label:<52} {verdict(ok)} ({figure})")
    return 1 if args.check and not all(ok for _, ok, _ in goals) else 0


if __name__ == "__main__":
    sys.exit(main())
