"""The pieces the training loops share: the loop's settings, the Task protocol, the stop flag
and signal handlers, pacing, and reopening a run folder for --resume. The train-row window,
the best of a run, early stop and checkpoint pacing are in bookkeeping.py.

Split from loop.py so the Trainer reads as one class; loop.py re-exports these names.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import Workspace


@dataclass
class LoopConfig:
    epochs: int = 400
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    patience: int = 100  # epochs without a better primary metric before stopping; 0 = never
    log_every: int = 10  # steps per train row
    pace: float = 0.0  # at most this many steps per second; 0 = as fast as possible
    threads: int = 1  # torch threads; one leaves a core for the console
    eval_at_start: bool = True  # a validation row at step 0 (not a candidate for best)
    balance_every: int = 50  # steps between loss-term gradient-norm checks; 0 = never
    dominance_factor: float = 10.0  # a term whose grad norm is this many times another's dominates
    last_every: float = 30.0  # seconds between mid-run `last` checkpoints (the end always writes one)


@dataclass(frozen=True)
class Schedule:
    """The hyperparameters in force at one point of training; a new `phase` is an event."""

    phase: str
    lr_scale: float = 1.0
    values: dict[str, float] = field(default_factory=dict)  # logged on every train row (e.g. beta)
    description: str = ""


class Task(Protocol):
    """One model's part of a run; see ternary_vae.TernaryVAETask for an example."""

    model_name: str
    primary_metric: str
    directions: dict[str, str]

    def config(self) -> dict[str, Any]: ...

    def build_model(self) -> nn.Module: ...

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Sequence[Any]: ...

    def schedule(self, epoch: float) -> Schedule: ...

    def loss(self, model: nn.Module, batch: Any, schedule: Schedule) -> dict[str, Tensor]: ...

    def evaluate(self, model: nn.Module, schedule: Schedule) -> dict[str, float]: ...


# ----------------------------------------------------------------------------- stopping
class StopFlag:
    """Set once, by a signal handler or a watcher thread; the loop stops after its step."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def install_signal_handlers(flag: StopFlag) -> Callable[[], None]:
    """SIGTERM and SIGINT set `flag`; a second SIGINT interrupts at once. Returns a restore."""

    def handler(signum: int, frame: Any) -> None:
        if flag.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.set(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


@contextmanager
def stop_handling(own: StopFlag | None) -> Iterator[StopFlag]:
    """The run's stop flag: `own`, or a new one that SIGTERM/SIGINT set (main thread only),
    with the previous handlers restored afterwards."""
    stop = own or StopFlag()
    def restore() -> None:
        return None
    if own is None and threading.current_thread() is threading.main_thread():
        restore = install_signal_handlers(stop)
    try:
        yield stop
    finally:
        restore()


@contextmanager
def system_monitor(enabled: bool, run_dir: Path) -> Iterator[None]:
    """system.jsonl rows for `run_dir` while the block runs (if `enabled`)."""
    monitor = None
    if enabled:
        from trainledger.engines.training.system import SystemMonitor

        monitor = SystemMonitor(run_dir).start()
    try:
        yield
    finally:
        if monitor is not None:
            monitor.stop()


def new_writer(
    workspace: Workspace, run_id: str | None, name: str | None, task: Any, config: dict[str, Any],
    extra: dict[str, Any],
) -> MetricsWriter:  # fmt: skip
    """The MetricsWriter of a new run of `task` (either backend's)."""
    return MetricsWriter(workspace, run_id, name=name, model=task.model_name, config=config,
                         directions=task.directions, primary_metric=task.primary_metric, extra=extra)  # fmt: skip


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str  # finished (also after early stopping) or stopped
    step: int
    epochs_done: int
    early_stopped: bool
    best: dict[str, Any] | None


class _Pacer:
    """Sleeps so that steps come at most `hz` per second; a stop request wakes it."""

    def __init__(self, hz: float, stop: StopFlag) -> None:
        self.interval = 1.0 / hz if hz > 0 else 0.0
        self.stop = stop
        self.next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        self.next += self.interval
        delay = self.next - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)
        elif delay < -1.0:  # fell behind (an evaluation): carry on at pace, no burst
            self.next = time.monotonic()


def reopen_writer(workspace: Workspace, run_id: str) -> MetricsWriter:
    """A MetricsWriter that appends to the existing run folder `run_id` (for --resume).

    MetricsWriter only creates folders; this builds one around an existing folder, with the
    same attributes its constructor sets, and leaves run.json to the caller's `update`.
    """
    import msgspec

    from trainledger.engines.workspace import EVENTS_FILE, METRICS_FILE, RUN_FILE

    run_dir = workspace.run_dir(run_id)
    info = msgspec.json.decode((run_dir / RUN_FILE).read_bytes())
    if not isinstance(info, dict):
        raise ValueError(f"{run_dir / RUN_FILE} is not a JSON object")
    writer = MetricsWriter.__new__(MetricsWriter)
    writer.run_id = run_id
    writer.dir = run_dir
    writer._info = info
    writer._metrics = open(run_dir / METRICS_FILE, "ab", buffering=0)
    writer._events = open(run_dir / EVENTS_FILE, "ab", buffering=0)
    writer._step = -1
    return writer


def _to_device(batch: Any, device: str) -> Any:
    if device == "cpu":
        return batch
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


@dataclass
class _Start:
    step: int = 0
    epochs_done: int = 0
    best: dict[str, Any] | None = None
