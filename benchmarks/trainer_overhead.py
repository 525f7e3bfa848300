"""What trainledger's trainer costs: steps/s of the Trainer against a bare PyTorch loop.

Both train `lvm-gru` on the same generated data, batch size, learning rate and seed, with
one torch thread, and both evaluate once per epoch (and once at the start), so what
differs is only what the trainer adds: metrics rows, events, best/last safetensors
checkpoints with sha256 sidecars, the system.jsonl sampler and the loss-term check.
The two alternate `--rounds` times; the medians and their ratio are printed.

    python benchmarks/trainer_overhead.py [--epochs 8] [--rounds 5] [--batch-size 64] [--check]

Goal (issue 4): the trainer's steps/s at least 97 % of the bare loop's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from trainledger.engines.training.loop import LoopConfig, StopFlag, Trainer
from trainledger.engines.training.lvm import build_gru
from trainledger.engines.training.models import TaskOptions
from trainledger.engines.workspace import init_workspace

LR = 1e-3


def bare(task, epochs: int, batch_size: int, seed: int) -> tuple[int, float]:
    """The loop a user would write by hand: no logging, no checkpoints."""
    torch.manual_seed(seed)
    model = task.build_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    steps = 0
    t0 = time.perf_counter()
    model.eval()
    task.evaluate(model, task.schedule(0.0))
    for epoch in range(epochs):
        model.train()
        for batch in task.train_batches(batch_size, gen):
            loss = task.loss(model, batch, task.schedule(float(epoch)))["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        model.eval()
        task.evaluate(model, task.schedule(float(epoch + 1)))
    return steps, time.perf_counter() - t0


def trainer(task, ws, epochs: int, batch_size: int, seed: int, i: int) -> tuple[int, float]:
    cfg = LoopConfig(epochs=epochs, batch_size=batch_size, lr=LR, seed=seed, patience=0,
                     log_every=10, eval_at_start=True)
    t0 = time.perf_counter()
    result = Trainer(task, cfg, ws, run_id=f"overhead-{i}", stop=StopFlag()).run()
    elapsed = time.perf_counter() - t0
    assert result is not None and result.status == "finished"
    return result.step, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        task = build_gru(TaskOptions(workspace=ws, seed=0))
        bare(task, 1, args.batch_size, 0)  # warm-up: allocator, first autograd graph
        rates: dict[str, list[float]] = {"bare": [], "trainer": []}
        for i in range(args.rounds):
            steps, secs = bare(task, args.epochs, args.batch_size, i)
            rates["bare"].append(steps / secs)
            steps, secs = trainer(task, ws, args.epochs, args.batch_size, i, i)
            rates["trainer"].append(steps / secs)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"lvm-gru, {args.epochs} epochs, batch {args.batch_size}, 1 torch thread, "
          f"{args.rounds} alternating rounds; steps/s median (min-max)")
    for k, v in rates.items():
        print(f"  {k:<8} {med[k]:8.1f}  ({min(v):.1f}-{max(v):.1f})")
    ratio = med["trainer"] / med["bare"]
    print(f"trainer / bare: {ratio:.3f}  (overhead {100 * (1 - ratio):.1f} %)")
    met = ratio >= 0.97
    print(f"goal: overhead <= 3 %: {'met' if met else 'MISSED'}")
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
