"""The training loop on MLX: `trainledger train MODEL --backend mlx`.

It writes the same run folder as loop.Trainer, through MetricsWriter: run.json (with
backend "mlx", device, versions incl. mlx, data), train rows every log_every steps
(train/<part> means, samples_per_s, steps_per_s, the schedule's values, lr), validation
rows per epoch (and at step 0), best / early_stop / stopped events, and
checkpoints/best + last .safetensors with sha256 sidecars (numpy tensors named by the
flattened MLX parameter path, e.g. rnn.Wx). The best, early stop and the pacing of mid-run
`last` checkpoints (one per `last_every` seconds) are bookkeeping.Bookkeeper's, as on torch.

Not on MLX yet: --resume, --nproc, the loss-term balance rows (balance_every), and
optimizer state in checkpoints. The tasks come from mlx_models.MLX_MODELS. This module
imports mlx at import time; only the CLI's MLX path imports it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import safetensors.numpy
from mlx import nn
from mlx.utils import tree_flatten

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.training.bookkeeping import Bookkeeper, record_end
from trainledger.engines.training.checkpoints import write_checkpoint_bytes
from trainledger.engines.training.loop_parts import (
    LoopConfig,
    RunResult,
    StopFlag,
    _Pacer,
    new_writer,
    stop_handling,
    system_monitor,
)
from trainledger.engines.workspace import (
    Workspace,
)

Progress = Callable[[str, dict[str, Any]], None]


def mlx_device() -> str:
    """"cpu" or "gpu": where MLX computes by default."""
    return "gpu" if mx.default_device() == mx.gpu else "cpu"


def save_mlx_checkpoint(run_dir: Path, tag: str, model: nn.Module, info: dict[str, Any]) -> dict[str, Any]:
    """checkpoints/<tag>.safetensors (the model's parameters as numpy float arrays) and its
    <tag>.json sidecar with the file's sha256, each written atomically."""
    state = {k: np.ascontiguousarray(np.array(v)) for k, v in tree_flatten(model.parameters())}
    data = safetensors.numpy.save(state, metadata={"tag": tag, "backend": "mlx"})
    return write_checkpoint_bytes(run_dir, tag, data, {"backend": "mlx", **info})


class MLXTrainer:
    """Trains an MLX task (mlx_models) under `cfg` as one new run of `workspace`."""

    def __init__(
        self,
        task: Any,
        cfg: LoopConfig,
        workspace: Workspace,
        run_id: str | None = None,
        name: str | None = None,
        stop: StopFlag | None = None,
        *,
        progress: Progress | None = None,
        extra_info: dict[str, Any] | None = None,
        monitor: bool = True,
        compile: bool = True,
    ) -> None:
        self.task = task
        self.compile = compile  # mx.compile the training step
        self.cfg = cfg
        self.workspace = workspace
        self.run_id = run_id
        self.name = name
        self.stop = stop
        self.progress = progress or (lambda kind, info: None)
        self.extra_info = extra_info or {}
        self.monitor = monitor
        self.device = mlx_device()

    def run_config(self) -> dict[str, Any]:
        return {**asdict(self.cfg), "device": self.device, "mlx_version": str(mx.__version__),
                "optimizer": "adam", "mlx_compile": self.compile,
                **self.task.config()}  # fmt: skip

    def run_extra(self) -> dict[str, Any]:
        from trainledger.engines.training.provenance import (
            describe_data,
            library_versions,
        )

        return {
            "backend": "mlx",
            "device": self.device,
            "versions": {**library_versions(), "mlx": str(mx.__version__), "platform": platform.platform()},
            "data": describe_data(self.task),
            **self.extra_info,
        }

    def run(self) -> RunResult | None:
        with stop_handling(self.stop) as stop:
            if stop.is_set():
                return None
            mx.random.seed(self.cfg.seed)
            model = self.task.build_model()
            mx.eval(model.parameters())
            optimizer = optim.Adam(learning_rate=self.cfg.lr, bias_correction=True)  # as torch.optim.Adam
            shuffle = np.random.default_rng(self.cfg.seed)
            writer = new_writer(self.workspace, self.run_id, self.name, self.task, self.run_config(), self.run_extra())
            with system_monitor(self.monitor, writer.dir):
                with writer:
                    self.progress("start", {"run_id": writer.run_id, "run_dir": writer.dir, "epochs": self.cfg.epochs,
                                            "step": 0, "epoch": 0})  # fmt: skip
                    result = self._train(model, optimizer, shuffle, writer, stop)
                    record_end(writer, self.task.model_name, result, stop.reason,
                               partial(save_mlx_checkpoint, writer.dir, "last", model))  # fmt: skip
                self.progress("end", {"result": result})
            return result

    def _train(
        self, model: nn.Module, optimizer: optim.Optimizer, shuffle: np.random.Generator,
        writer: MetricsWriter, stop: StopFlag,
    ) -> RunResult:  # fmt: skip
        task, cfg = self.task, self.cfg
        pacer = _Pacer(cfg.pace, stop)
        book = Bookkeeper(task.model_name, task.primary_metric, task.directions, patience=cfg.patience,
                          last_every=cfg.last_every)  # fmt: skip
        window = book.window
        step, epochs_done = 0, 0

        def loss_fn(batch: mx.array) -> tuple[mx.array, dict[str, mx.array]]:
            parts = task.loss(model, batch)
            return parts["loss"], parts

        value_and_grad = nn.value_and_grad(model, loss_fn)
        # the task's per-step values (mx arrays, e.g. a VAE's beta) and the random state go
        # in and out of the compiled step, so neither is frozen at trace time
        step_values: dict[str, mx.array] = getattr(task, "step_values", {})
        state = [model.state, optimizer.state, mx.random.state, step_values]

        def train_step(batch: mx.array) -> dict[str, mx.array]:
            (_, parts), grads = value_and_grad(batch)
            optimizer.update(model, grads)
            return parts

        # one compiled graph per batch shape; the model and optimizer state go in and out
        step_fn = mx.compile(train_step, inputs=state, outputs=state) if self.compile else train_step

        def result(status: str, early: bool = False) -> RunResult:
            return RunResult(writer.run_id, writer.dir, status, step, epochs_done, early, book.best)

        if cfg.eval_at_start:
            model.eval()
            metrics = task.evaluate(model)
            writer.log(metrics, step=0, epoch=0)
            self.progress("val", {"step": 0, "epoch": 0, "metrics": metrics})

        phase = None
        for epoch in range(cfg.epochs):
            model.train()
            batches = task.train_batches(cfg.batch_size, shuffle)
            for i, batch_np in enumerate(batches):
                frac = epoch + i / len(batches)
                if hasattr(task, "schedule"):  # a loop.Schedule: LR scale, values, phase events
                    sched = task.schedule(frac)
                    values, lr = dict(sched.values), cfg.lr * sched.lr_scale
                    if sched.phase != phase:
                        if phase is not None:
                            writer.event("phase", sched.description, step=step, epoch=frac,
                                         phase=sched.phase, previous=phase, lr=lr, **sched.values)  # fmt: skip
                        phase = sched.phase
                else:
                    values, lr = task.schedule_values(frac), cfg.lr
                for key in step_values:
                    step_values[key] = mx.array(values[key], dtype=mx.float32)
                optimizer.learning_rate = lr
                batch = mx.array(batch_np)
                parts = step_fn(batch)
                mx.eval(state, parts)
                step += 1
                window.add({k: float(v.item()) for k, v in parts.items()}, int(batch_np.shape[0]))
                if step % cfg.log_every == 0:
                    row = {**window.row("train/"), **values, "lr": lr}
                    at = epoch + (i + 1) / len(batches)
                    writer.log(row, step=step, epoch=at)
                    self.progress("train", {"step": step, "epoch": at, "metrics": row, "epochs": cfg.epochs})
                    window.reset()
                if stop.is_set():
                    return result("stopped")
                pacer.wait()

            epochs_done = epoch + 1
            model.eval()
            metrics = task.evaluate(model)
            writer.log(metrics, step=step, epoch=epochs_done)
            self.progress("val", {"step": step, "epoch": epochs_done, "metrics": metrics, "epochs": cfg.epochs})
            book.validated(metrics, step=step, epoch=epochs_done, writer=writer,
                           save_best=lambda info: save_mlx_checkpoint(writer.dir, "best", model, info))  # fmt: skip
            info = {"model": task.model_name, "epoch": epochs_done, "step": step, "status": "running"}
            book.save_last_if_due(partial(save_mlx_checkpoint, writer.dir, "last", model, info))
            if book.early_stop_due():
                book.write_early_stop(writer, step=step, epoch=epochs_done)
                return result("finished", early=True)
            if stop.is_set():
                return result("stopped")
        return result("finished")

