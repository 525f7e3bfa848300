"""Many runs: time to the run list and to the selected run's chart, and memory, by run count.

Workspaces of 30, 300 and 3,000 finished runs (40 metrics per row; --rows rows each, the
3,000-run one --rows-3000) are generated once into benchmarks/.data/ (run folders hold
hard links to a few generated metrics files, so 3,000 runs cost the disk little). Each
round starts, in fresh interpreters and alternating so machine noise hits all alike, a
bare Textual App (one Static) and the console (`trainledger WORKSPACE` as the CLI starts
it: a Prefetch, then TrainledgerApp headless at 120x40) on each workspace, and takes
from the parent's spawn (BENCH_SPAWN_MONO):
  * listed: the first frame handed to the driver that holds every run's row;
  * charted: the first frame holding the selected run's chart with its points;
  * RSS when charted and after --settle seconds more (the rest of the screen read), and
    the bytes of parsed columns the pane holds against the selected run's own columns.
Goals: listed within 1 s at 300 runs and 2 s at 3,000; charted within 1 s of listed;
parsed columns held within 2x of the selected run's own.

Run: python benchmarks/many_runs.py [--repeat 5] [--sizes 30,300,3000] [--rows 2000]
     [--rows-3000 2000] [--settle 1.0] [--check]
"""

from __future__ import annotations

import json
import os
import sys
import time

METRICS = 40
TEMPLATES = 8  # distinct metrics files per workspace, hard-linked into the run folders


def _rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def child(workspace: str, expect: int, settle: float) -> None:
    """In the child process: open the console headless and report the marks as JSON."""
    marks: dict[str, float] = {}
    from trainledger.console.prefetch import Prefetch
    from trainledger.engines.workspace import open_workspace

    prefetch = Prefetch(open_workspace(workspace)).start()  # as `trainledger WORKSPACE` does
    from trainledger.console.app import TrainledgerApp
    from trainledger.console.panes.curves import CurvesPane
    from trainledger.console.widgets.chart import LineChart
    from trainledger.console.widgets.runlist import RunList

    out: dict[str, object] = {}

    def columns_bytes(snap: object) -> int:
        m = snap.metrics  # type: ignore[attr-defined]
        dense = m.dense() if hasattr(m, "dense") else dict(m)
        sparse = m.sparse() if hasattr(m, "sparse") else {}
        return (sum(a.nbytes for a in dense.values()) + sum(i.nbytes + v.nbytes for i, v in sparse.values())
                + 3 * snap.step.nbytes)  # type: ignore[attr-defined]  # fmt: skip

    class Timed(TrainledgerApp):
        def on_mount(self) -> None:  # before TrainledgerApp.on_mount (Textual walks the MRO)
            self.set_timer(120, self.exit)  # never hang a benchmark

        def _display(self, screen, renderable) -> None:  # type: ignore[no-untyped-def]
            super()._display(screen, renderable)  # headless: returns without writing
            if renderable is None or "charted" in marks:
                return
            now = time.monotonic()
            if "listed" not in marks:
                lists = self.screen.query(RunList)
                if lists and lists.first().row_count >= expect:
                    marks["listed"] = now
            if "listed" in marks:
                charts = self.screen.query(LineChart)
                result = charts.first().last_result if charts else None
                if result is not None and result.points_in > 0:
                    marks["charted"] = now
                    out["rss_charted"] = _rss_bytes()
                    self.set_timer(max(settle, 0.01), self._finish)  # 0 would divide by zero

        def _finish(self) -> None:
            pane = self.query_one(CurvesPane)
            cursor = pane.query_one(RunList).cursor_run
            held = sum(columns_bytes(s) for s in pane.snapshots.values())
            own = columns_bytes(pane.snapshots[cursor]) if cursor in pane.snapshots else 0
            out.update(rss_settled=_rss_bytes(), held_bytes=held, own_bytes=own,
                       series=len(pane.series), rows=pane.query_one(RunList).row_count)  # fmt: skip
            self.exit()

    Timed(open_workspace(workspace), watch=True, prefetch=prefetch).run(headless=True, size=(120, 40))
    spawn = float(os.environ.get("BENCH_SPAWN_MONO", "nan"))
    print(json.dumps({"since_spawn": {k: v - spawn for k, v in marks.items()}, **out}))


if __name__ == "__main__" and "--child" in sys.argv:
    i = sys.argv.index("--child")
    child(sys.argv[i + 1], int(sys.argv[i + 2]), float(sys.argv[i + 3]))
    sys.exit(0)

# ---------------------------------------------------------------------- the parent
import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import msgspec  # noqa: E402
import numpy as np  # noqa: E402
from _bench import DATA, median, ratio, run_child, spread, verdict  # noqa: E402

from trainledger.engines.workspace import Workspace, init_workspace  # noqa: E402

GOAL_LISTED = {300: 1.0, 3000: 2.0}
GOAL_CHART_AFTER = 1.0
GOAL_HELD = 2.0


def _metrics_file(path: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = [f"group{k % 5}/metric_{k}" for k in range(METRICS)]
    enc = msgspec.json.Encoder()
    base = rng.uniform(0.5, 3.0, METRICS)
    i = np.arange(rows)
    vals = base[None, :] * np.exp(-i[:, None] / max(rows / 5, 1)) + 0.01 * rng.standard_normal((rows, METRICS))
    with open(path, "wb") as fh:
        lines = []
        for s, row in zip(i.tolist(), vals.tolist()):
            rec = {"step": s, "epoch": s // 100, "time": 1.795e9 + s * 0.5, **dict(zip(names, row))}
            lines.append(enc.encode(rec))
        fh.write(b"\n".join(lines) + b"\n")


def workspace(runs: int, rows: int) -> Workspace:
    """A finished workspace of `runs` runs x `rows` rows x 40 metrics; built once, atomically."""
    root = DATA / f"many-{runs}x{rows}"
    if (root / ".complete").exists():
        return Workspace(root)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ws = init_workspace(tmp)
    templates = tmp / "templates"
    templates.mkdir()
    for t in range(TEMPLATES):
        _metrics_file(templates / f"{t}.jsonl", rows, seed=t)
    for k in range(runs):
        d = ws.runs_dir / f"run-{k:05d}"
        d.mkdir(parents=True)
        info = {"name": f"sweep lr={k}", "status": "finished", "model": "bench", "started": 1.795e9 + k,
                "ended": 1.795e9 + k + 600, "primary_metric": "group0/metric_0"}  # fmt: skip
        (d / "run.json").write_bytes(msgspec.json.encode(info))  # no fsync: the whole tree is renamed
        os.link(templates / f"{k % TEMPLATES}.jsonl", d / "metrics.jsonl")
    (tmp / ".complete").write_text(json.dumps({"runs": runs, "rows": rows}))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return Workspace(root)


def run_console(ws: Workspace, runs: int, settle: float) -> dict:
    env = {**os.environ, "BENCH_SPAWN_MONO": repr(time.monotonic())}
    proc = subprocess.run([sys.executable, __file__, "--child", str(ws.root), str(runs), str(settle)],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument("--sizes", default="30,300,3000", help="run counts (default 30,300,3000)")
    ap.add_argument("--rows", type=int, default=2000, help="rows per run (default 2,000)")
    ap.add_argument("--rows-3000", type=int, default=2000, help="rows per run of the 3,000-run workspace")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds after the chart before RSS")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    spaces = {n: workspace(n, args.rows_3000 if n >= 3000 else args.rows) for n in sizes}
    for n, ws in spaces.items():
        print(f"workspace {n:>5} runs: {ws.root}")
    run_child("--bare"), [run_console(ws, n, 0.0) for n, ws in spaces.items()]  # warm the file cache

    bare: list[float] = []
    got: dict[int, list[dict]] = {n: [] for n in sizes}
    for _ in range(args.repeat):
        b = run_child("--bare")
        bare.append(b["since_spawn"]["painted"])
        for n, ws in spaces.items():
            got[n].append(run_console(ws, n, args.settle))
    ref = sizes[0]

    def col(n: int, key: str) -> list[float]:
        return [r["since_spawn"][key] for r in got[n] if key in r["since_spawn"]]

    def val(n: int, key: str) -> list[float]:
        return [float(r[key]) for r in got[n] if key in r]

    print(f"\nseconds from spawn, median (min–max, n) over {args.repeat} alternating rounds")
    print(f"  {'bare Textual App: first frame':<44} {spread(bare, 1000, ' ms')}")
    ok = True
    for n in sizes:
        listed, charted = col(n, "listed"), col(n, "charted")
        after = [c - at for at, c in zip(listed, charted)]
        print(f"  {f'{n:,} runs: run list drawn':<44} {spread(listed, 1000, ' ms')}")
        print(f"  {f'{n:,} runs: selected chart drawn':<44} {spread(charted, 1000, ' ms')}")
        print(f"  {f'{n:,} runs: chart after list':<44} {spread(after, 1000, ' ms')}")
        goal = GOAL_LISTED.get(n)
        if goal is not None:
            met = len(listed) == args.repeat and median(listed) < goal and median(after) < GOAL_CHART_AFTER
            ok &= met
            print(f"    goal list < {goal:g} s, chart < {GOAL_CHART_AFTER:g} s after: {verdict(met)}")
    print("\nratios (medians)")
    for n in sizes:
        print(f"  {n:>5} runs: list / bare first frame {ratio(median(col(n, 'listed')), median(bare))}"
              f"   list / {ref} runs {ratio(median(col(n, 'listed')), median(col(ref, 'listed')))}"
              f"   chart / {ref} runs {ratio(median(col(n, 'charted')), median(col(ref, 'charted')))}")
    print("\nmemory (medians)")
    for n in sizes:
        held, own = median(val(n, "held_bytes")), median(val(n, "own_bytes"))
        rss_c, rss_s = median(val(n, "rss_charted")), median(val(n, "rss_settled"))
        ref_s = median(val(ref, "rss_settled"))
        met = own > 0 and held <= GOAL_HELD * own
        ok &= met
        print(f"  {n:>5} runs: RSS {rss_c / 2**20:6.1f} MB charted, {rss_s / 2**20:6.1f} MB settled "
              f"({ratio(rss_s, ref_s)} of {ref} runs); parsed columns held {held / 2**20:.2f} MB = "
              f"{ratio(held, own)} the selected run's own [goal <= {GOAL_HELD:g}x: {verdict(met)}]")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
