"""Multi-process training: `trainledger train MODEL --nproc N` under torchrun (DDP).

The parent (`launch`) picks the run id, then runs `python -m torch.distributed.run
--standalone --nproc-per-node N -m trainledger.engines.training.cli ... --run-id ID` and
forwards SIGTERM/SIGINT to it (torchrun passes them on to every worker). Each worker calls
`Dist.from_env()` (RANK, WORLD_SIZE, LOCAL_RANK from torchrun), which joins the process
group: gloo on CPU, nccl on CUDA. The Trainer then wraps the model in
DistributedDataParallel, trains on its shard of each epoch's batches, and leaves the run
folder to rank 0 (see loop.Trainer).

Agreement between ranks, so that none waits forever on a collective:
- a stop request (signal) on any rank is all-reduced (max) after every step;
- validation runs on rank 0 only, on the unwrapped model; the others wait in the
  all-reduce that follows, which carries rank 0's early-stop decision with every rank's
  stop flag.

This module imports torch lazily: the launcher side must stay quick.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKER_ENV = "TRAINLEDGER_DIST_WORKER"  # set by `launch` for the workers it starts


def is_worker() -> bool:
    """True in a process started by `launch` through torchrun."""
    return os.environ.get(WORKER_ENV) == "1" and "WORLD_SIZE" in os.environ and "RANK" in os.environ


def strip_nproc(argv: list[str]) -> list[str]:
    """`argv` without `--nproc N` / `--nproc=N` and without any `--run-id`."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--nproc", "--run-id"):
            skip = True
            continue
        if arg.startswith(("--nproc=", "--run-id=")):
            continue
        out.append(arg)
    return out


def launch_command(argv: list[str], nproc: int, run_id: str) -> list[str]:
    """The torchrun command line that runs `argv` (train's own arguments) on `nproc` ranks."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
        "-m", "trainledger.engines.training.cli", *strip_nproc(argv), "--run-id", run_id,
    ]  # fmt: skip


def launch(argv: list[str], nproc: int, run_id: str, run_dir: Path | None = None) -> int:
    """Run the workers under torchrun and wait; SIGTERM/SIGINT here go to torchrun, which
    stops its workers (each stops after its step; rank 0 marks the run stopped).

    Exits as a one-process run would: 3 (EXIT_STOPPED) after a stop, whether the signal
    came here or went to a rank directly (then run.json, written by rank 0, says so)."""
    env = {**os.environ, WORKER_ENV: "1", "MASTER_ADDR": "127.0.0.1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.Popen(launch_command(argv, nproc, run_id), env=env)
    forwarded: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        forwarded.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # torchrun forwards SIGTERM to its workers

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - the handler above replaces it
                continue
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    from trainledger.engines.training.cli_checks import EXIT_STOPPED

    if forwarded:  # torchrun exits non-zero after a forwarded signal even when all stopped cleanly
        print(f"stopped ({signal.Signals(forwarded[0]).name})", flush=True)
        return EXIT_STOPPED
    if run_dir is not None and _status(run_dir) == "stopped":
        return EXIT_STOPPED
    return rc


def _status(run_dir: Path) -> str | None:
    from trainledger.engines.workspace import read_run_info

    return read_run_info(run_dir, check_pid=False).status


@dataclass
class Dist:
    """This process's place in the process group, and the few collectives the loop uses."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> "Dist":
        """Join the process group torchrun describes in the environment: nccl for CUDA, else gloo."""
        import torch
        import torch.distributed as dist

        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
        return cls(rank=rank, world_size=world, local_rank=local, backend=backend)

    def device(self, device: str) -> str:
        """This rank's device: cuda:<local rank> for CUDA, else `device`."""
        return f"cuda:{self.local_rank}" if device.startswith("cuda") else device

    def _tensor(self, values: list[float]) -> Any:
        import torch

        dev = f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"
        return torch.tensor(values, dtype=torch.float64, device=dev)

    def all_max(self, values: list[float]) -> list[float]:
        import torch.distributed as dist

        t = self._tensor(values)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [float(v) for v in t.tolist()]

    def all_sum(self, values: list[float]) -> list[float]:
        import torch.distributed as dist

        t = self._tensor(values)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.tolist()]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def wrap(self, model: Any) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        if self.backend == "nccl":
            return DistributedDataParallel(model, device_ids=[self.local_rank], output_device=self.local_rank)
        return DistributedDataParallel(model)

    def shard(self, batches: Any) -> list[Any]:
        """This rank's batches: every world_size-th from `rank`, the same count on every rank
        (up to world_size - 1 trailing batches of the epoch are dropped) so that the DDP
        gradient all-reduces pair up."""
        per_rank = len(batches) // self.world_size
        return list(batches[self.rank :: self.world_size])[:per_rank]

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            try:  # wait for rank 0 to finish writing: a rank that leaves early can abort gloo
                dist.barrier()
            finally:
                dist.destroy_process_group()


class NullWriter:
    """What ranks other than 0 write to: nothing. The MetricsWriter calls the loop makes."""

    def __init__(self, run_id: str, run_dir: Any) -> None:
        self.run_id = run_id
        self.dir = run_dir
        self.info: dict[str, Any] = {}

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass

    def event(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update(self, **fields: Any) -> None:
        pass

    def finish(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> "NullWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass
