"""MLX against torch on this machine's CPU: steps/s of `trainledger train` on each backend.

For each model, the same command (same generated data, seed, batch size, epochs) runs once
with `--backend torch` and once with `--backend mlx`, alternating `--rounds` times so a
slow moment of the machine hits both alike. A run's figure is the median `steps_per_s` of its
train rows, the first row left out (it holds start-up and, on MLX, graph compilation). The
medians over the rounds and their ratio are printed. Both are the real CLI in a child process,
so each backend pays its own imports, logging and checkpoints alike; torch runs on one thread
(the trainer's default), MLX on its default CPU device.

    python benchmarks/mlx_vs_torch.py [--models lvm-gru ternary-vae san] [--rounds 3] [--epochs 3]

There is no goal: issue 4 asks for the figures side by side. The CPU build of MLX is not
what MLX is for (Apple silicon); this says what a Linux user of `--backend mlx` can expect.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainledger.engines.workspace import init_workspace

MODELS = ("lvm-gru", "ternary-vae", "san")
BACKENDS = ("torch", "mlx")


def run_once(ws: Path, model: str, backend: str, run_id: str, epochs: int) -> float:
    """One `trainledger train` in a child; the median steps/s of its train rows."""
    cmd = [sys.executable, "-m", "trainledger", "train", model, "--backend", backend,
           "--workspace", str(ws), "--run-id", run_id, "--epochs", str(epochs),
           "--seed", "0", "--patience", "0", "--log-every", "10"]  # fmt: skip
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    rates = []
    with open(ws / "runs" / run_id / "metrics.jsonl") as fh:
        for line in fh:
            row = json.loads(line)
            if "steps_per_s" in row:
                rates.append(row["steps_per_s"])
    if len(rates) < 3:
        raise SystemExit(f"{run_id}: only {len(rates)} throughput rows; raise --epochs")
    return statistics.median(rates[1:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args(argv)

    import mlx.core as mx
    import torch

    stamp = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    print(f"{stamp}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"mlx {mx.__version__}; {args.rounds} alternating round(s) of {args.epochs} epoch(s)")  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="tl-mlx-bench-") as tmp:
        ws = init_workspace(Path(tmp) / "ws").root
        for model in args.models:
            results[model] = {b: [] for b in BACKENDS}
            for r in range(args.rounds):
                order = BACKENDS if r % 2 == 0 else BACKENDS[::-1]
                for backend in order:
                    # no --data: the first run generates the model's demo data into the
                    # workspace (datasets/<model>/, by seed) and every later run reuses it
                    rate = run_once(ws, model, backend, f"{model}-{backend}-{r}", args.epochs)
                    results[model][backend].append(rate)
                    print(f"  {model:<12} round {r + 1} {backend:<5} {rate:8.1f} steps/s", flush=True)
    print()
    print(f"  {'model':<12} {'torch steps/s':>22} {'MLX steps/s':>22} {'MLX / torch':>12}")
    for model, per in results.items():
        t, m = statistics.median(per["torch"]), statistics.median(per["mlx"])
        spread = {b: f"{statistics.median(v):.1f} ({min(v):.0f}–{max(v):.0f})" for b, v in per.items()}
        print(f"  {model:<12} {spread['torch']:>22} {spread['mlx']:>22} {m / t:>11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
