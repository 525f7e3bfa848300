"""The training loop: runs a Task epoch by epoch and writes its run folder through MetricsWriter.

A Task holds what is particular to one model (data, loss, β/LR schedule, evaluation); the
Trainer holds what every run needs: train and validation rows, phase/best/early-stop
events, atomic safetensors checkpoints with sha256 sidecars, pacing, and a clean stop on
SIGTERM/SIGINT. New models add a Task; they do not copy the loop.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import safetensors.torch
import torch
from torch import Tensor, nn

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import Workspace, atomic_write_bytes, atomic_write_json

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_SCHEMA = "trainledger-checkpoint/1"


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


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(run_dir: Path, tag: str, model: nn.Module, info: dict[str, Any]) -> dict[str, Any]:
    """Write checkpoints/<tag>.safetensors, then its <tag>.json sidecar, each atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = safetensors.torch.save(state, metadata={"tag": tag})
    folder = run_dir / CHECKPOINT_DIR
    atomic_write_bytes(folder / f"{tag}.safetensors", data)
    sidecar = {
        "schema": CHECKPOINT_SCHEMA,
        "file": f"{tag}.safetensors",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "time": time.time(),
        **info,
    }
    atomic_write_json(folder / f"{tag}.json", sidecar)
    return sidecar


def load_checkpoint(run_dir: Path, tag: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors and sidecar of a checkpoint; ValueError if the file's sha256 does not match."""
    import msgspec

    folder = run_dir / CHECKPOINT_DIR
    sidecar = msgspec.json.decode((folder / f"{tag}.json").read_bytes())
    data = (folder / sidecar["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != sidecar["sha256"]:
        raise ValueError(f"{folder / sidecar['file']}: sha256 does not match its sidecar")
    return safetensors.torch.load(data), sidecar


# ----------------------------------------------------------------------------- the loop
@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str  # finished (also after early stopping) or stopped
    step: int
    epochs_done: int
    early_stopped: bool
    best: dict[str, Any] | None


class _Window:
    """Means of the loss parts over the steps since the last train row, and the throughput."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.samples = 0
        self.started = time.perf_counter()

    def add(self, parts: dict[str, Tensor], samples: int) -> None:
        for key, value in parts.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach())
        self.steps += 1
        self.samples += samples

    def row(self, prefix: str) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        means = {f"{prefix}{k}": v / self.steps for k, v in self.sums.items()}
        return {**means, "samples_per_s": self.samples / elapsed}


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


class Trainer:
    """Trains `task` under `cfg` and records it as one run of `workspace`."""

    def __init__(
        self,
        task: Task,
        cfg: LoopConfig,
        workspace: Workspace,
        run_id: str | None = None,
        name: str | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.task = task
        self.cfg = cfg
        self.workspace = workspace
        self.run_id = run_id
        self.name = name
        self.stop = stop

    def run_config(self) -> dict[str, Any]:
        return {**asdict(self.cfg), "device": "cpu", "torch_version": str(torch.__version__), **self.task.config()}

    def run(self) -> RunResult | None:
        """Train until done, early stop or a stop request. None if stopped before starting.

        Without a StopFlag of its own, the trainer handles SIGTERM/SIGINT itself (main
        thread only) and restores the previous handlers afterwards.
        """
        stop = self.stop or StopFlag()
        restore: Callable[[], None] = lambda: None
        if self.stop is None and threading.current_thread() is threading.main_thread():
            restore = install_signal_handlers(stop)
        try:
            if stop.is_set():
                return None
            torch.set_num_threads(self.cfg.threads)
            torch.manual_seed(self.cfg.seed)
            model = self.task.build_model()
            with MetricsWriter(
                self.workspace,
                self.run_id,
                name=self.name,
                model=self.task.model_name,
                config=self.run_config(),
                directions=self.task.directions,
                primary_metric=self.task.primary_metric,
            ) as writer:
                result = self._train(model, writer, stop)
                info = {"model": self.task.model_name, "epoch": result.epochs_done, "step": result.step}
                save_checkpoint(writer.dir, "last", model, {**info, "status": result.status})
                writer.update(summary={"best": result.best, **info, "early_stopped": result.early_stopped})
                if result.status == "stopped":
                    writer.event("stopped", f"stopped by {stop.reason}", step=result.step, reason=stop.reason)
                    writer.finish("stopped")
            return result
        finally:
            restore()

    def _train(self, model: nn.Module, writer: MetricsWriter, stop: StopFlag) -> RunResult:
        task, cfg = self.task, self.cfg
        primary = task.primary_metric
        sign = -1.0 if task.directions.get(primary, "min") == "min" else 1.0
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        pacer = _Pacer(cfg.pace, stop)
        window = _Window()
        step, epochs_done, phase = 0, 0, None
        best: dict[str, Any] | None = None
        since_best = 0

        def result(status: str, early: bool = False) -> RunResult:
            return RunResult(writer.run_id, writer.dir, status, step, epochs_done, early, best)

        if cfg.eval_at_start:
            model.eval()
            writer.log(task.evaluate(model, task.schedule(0.0)), step=0, epoch=0)

        for epoch in range(cfg.epochs):
            model.train()
            batches = task.train_batches(cfg.batch_size, shuffle)
            for i, batch in enumerate(batches):
                sched = task.schedule(epoch + i / len(batches))
                lr = cfg.lr * sched.lr_scale
                if sched.phase != phase:
                    if phase is not None:
                        writer.event("phase", sched.description, step=step, epoch=epoch + i / len(batches),
                                     phase=sched.phase, previous=phase, lr=lr, **sched.values)  # fmt: skip
                    phase = sched.phase
                for group in optimizer.param_groups:
                    group["lr"] = lr
                parts = task.loss(model, batch, sched)
                optimizer.zero_grad(set_to_none=True)
                parts["loss"].backward()
                optimizer.step()
                step += 1
                window.add(parts, len(batch))
                if step % cfg.log_every == 0:
                    row = {**window.row("train/"), **sched.values, "lr": lr}
                    writer.log(row, step=step, epoch=epoch + (i + 1) / len(batches))
                    window.reset()
                if stop.is_set():
                    return result("stopped")
                pacer.wait()

            model.eval()
            metrics = task.evaluate(model, sched)
            epochs_done = epoch + 1
            writer.log(metrics, step=step, epoch=epochs_done)
            value = metrics[primary]
            if best is None or sign * value > sign * best["value"]:
                previous = None if best is None else best["value"]
                best = {"metric": primary, "value": value, "epoch": epochs_done, "step": step}
                info = {"model": task.model_name, "epoch": epochs_done, "step": step, "metrics": metrics}
                save_checkpoint(writer.dir, "best", model, info)
                writer.event("best", f"{primary} {value:.4g}", step=step, epoch=epochs_done, metric=primary,
                             value=value, previous=previous, checkpoint=f"{CHECKPOINT_DIR}/best.safetensors")  # fmt: skip
                since_best = 0
            else:
                since_best += 1
            if cfg.patience and since_best >= cfg.patience:
                writer.event(
                    "early_stop",
                    f"no better {primary} for {since_best} epochs (best {best['value']:.4g} at epoch {best['epoch']})",
                    step=step, epoch=epochs_done, metric=primary, patience=cfg.patience, best_epoch=best["epoch"],
                )  # fmt: skip
                return result("finished", early=True)
            if stop.is_set():
                return result("stopped")
        return result("finished")
