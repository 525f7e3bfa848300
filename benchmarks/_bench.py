"""Shared helpers of the benchmark scripts: generated data, statistics, child processes.

Not a benchmark itself. Generated data lives in benchmarks/.data/ (git-ignored) and is
reused between runs; delete the folder to regenerate it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import msgspec
import numpy as np

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import Workspace, init_workspace

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
CHILD = HERE / "_console_child.py"
METRICS = ("train/loss", "val/loss", "lr", "acc")  # 4 metrics per row


# ---------------------------------------------------------------------- statistics
def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def pct(xs: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation; nan when empty."""
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


def spread(xs: Sequence[float], scale: float = 1.0, unit: str = "") -> str:
    """`median (min–max, n=k)` in the given unit."""
    if not xs:
        return "n/a"
    m, lo, hi = median(xs) * scale, min(xs) * scale, max(xs) * scale
    return f"{m:8.1f}{unit} ({lo:.1f}–{hi:.1f}, n={len(xs)})"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and np.isfinite(a) and np.isfinite(b) else "n/a"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# ---------------------------------------------------------------------- data
def write_rows(path: Path, steps: int, start: int = 0, seed: int = 0) -> None:
    """Append `steps` rows of step, epoch, time and the 4 METRICS, like a training loop."""
    rng = np.random.default_rng(seed + start)
    enc = msgspec.json.Encoder()
    with open(path, "ab") as fh:
        for lo in range(start, start + steps, 100_000):
            i = np.arange(lo, min(start + steps, lo + 100_000))
            loss = 0.8 + 2.0 * np.exp(-i / max(steps / 20, 1)) + 0.02 * rng.standard_normal(i.size)
            val = loss + 0.05 + 0.01 * rng.standard_normal(i.size)
            acc = 1.0 - loss / 3.0
            rows = [
                {"step": int(s), "epoch": s / 1000, "time": 1.795e9 + s * 0.01, "train/loss": float(a),
                 "val/loss": float(b), "lr": 1e-3, "acc": float(c)}
                for s, a, b, c in zip(i.tolist(), loss.tolist(), val.tolist(), acc.tolist())
            ]  # fmt: skip
            fh.write(b"\n".join(enc.encode(r) for r in rows) + b"\n")


def make_workspace(root: Path, runs: dict[str, int], seed: int = 0) -> Workspace:
    """A finished workspace at `root` with one run per (id, rows); built once, atomically."""
    if (root / ".complete").exists():
        return Workspace(root)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ws = init_workspace(tmp)
    for k, (run_id, rows) in enumerate(runs.items()):
        writer = MetricsWriter(ws, run_id, name=run_id, model="bench", directions={"acc": "max"},
                               primary_metric="val/loss")  # fmt: skip
        write_rows(writer.dir / "metrics.jsonl", rows, seed=seed + k)
        writer.finish()
    (tmp / ".complete").write_text(json.dumps(runs))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return Workspace(root)


def demo_workspace(runs: int = 4, rows: int = 3000) -> Workspace:
    """The demo-like workspace: a few finished runs of a few thousand rows each."""
    ids = {f"demo-{k + 1}": rows for k in range(runs)}
    return make_workspace(DATA / f"demo-{runs}x{rows}", ids)


# ---------------------------------------------------------------------- child processes
def run_child(*args: str, timeout: float = 300) -> dict:
    """Run benchmarks/_console_child.py; its last stdout line is a JSON report."""
    env = {**os.environ, "BENCH_SPAWN_MONO": repr(time.monotonic())}
    proc = subprocess.run([sys.executable, str(CHILD), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1])


def wall(cmd: Sequence[str], timeout: float = 60) -> float:
    """Seconds from spawning `cmd` to its exit (its output discarded)."""
    t0 = time.monotonic()
    subprocess.run(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout,
                   check=True)  # fmt: skip
    return time.monotonic() - t0


def timed_method(cls: type, name: str, sink: list[float]) -> Callable[[], None]:
    """Wrap cls.name so every call appends its duration (s) to sink; returns the undo."""
    original = getattr(cls, name)

    def wrapper(self, *a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            sink.append(time.perf_counter() - t0)

    setattr(cls, name, wrapper)
    return lambda: setattr(cls, name, original)
