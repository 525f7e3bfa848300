"""The training loop: runs a Task epoch by epoch and writes its run folder through MetricsWriter.

A Task holds what is particular to one model (data, loss, β/LR schedule, evaluation); the
Trainer holds what every run needs: train and validation rows, phase/best/early-stop
events, atomic safetensors checkpoints with sha256 sidecars, pacing, and a clean stop on
SIGTERM/SIGINT. New models add a Task; they do not copy the loop.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.training.bookkeeping import Bookkeeper, Window, record_end
from trainledger.engines.training.checkpoints import (  # noqa: F401  (re-exported)
    CHECKPOINT_DIR,
    CHECKPOINT_SCHEMA,
    CheckpointError,
    _flatten_optimizer,
    _unflatten_optimizer,
    checkpoint_position,
    load_checkpoint,
    load_trainer_state,
    read_sidecar,
    save_checkpoint,
    save_trainer_state,
)
from trainledger.engines.training.loop_parts import (  # noqa: F401  (re-exported)
    LoopConfig,
    RunResult,
    Schedule,
    StopFlag,
    Task,
    _Pacer,
    _Start,
    _to_device,
    install_signal_handlers,
    new_writer,
    reopen_writer,
    stop_handling,
    system_monitor,
)
from trainledger.engines.workspace import Workspace

Progress = Callable[[str, dict[str, Any]], None]


class Trainer:
    """Trains `task` under `cfg` and records it as one run of `workspace`.

    `resume=True` continues the existing run `run_id` from its last checkpoint, in its own
    folder. `progress(kind, info)` is called with kind start, train, val and end.
    """

    def __init__(
        self,
        task: Task,
        cfg: LoopConfig,
        workspace: Workspace,
        run_id: str | None = None,
        name: str | None = None,
        stop: StopFlag | None = None,
        *,
        device: str = "cpu",
        backend: str = "torch",
        resume: bool = False,
        progress: Progress | None = None,
        extra_info: dict[str, Any] | None = None,
        monitor: bool = True,
        dist: Any = None,
    ) -> None:
        if resume and not run_id:
            raise ValueError("resume needs the run id")
        self.task = task
        self.cfg = cfg
        self.workspace = workspace
        self.run_id = run_id
        self.name = name
        self.stop = stop
        self.device = device
        self.backend = backend
        self.resume = resume
        self.progress = progress or (lambda kind, info: None)
        self.extra_info = extra_info or {}
        self.monitor = monitor
        self.dist = dist  # a distributed.Dist under torchrun; None = one process
        self.is_main = dist is None or dist.is_main

    def run_config(self) -> dict[str, Any]:
        config = {**asdict(self.cfg), "device": self.device, "torch_version": str(torch.__version__),
                  "optimizer": "adam", **self.task.config()}  # fmt: skip
        if self.dist is not None:
            config.update(world_size=self.dist.world_size, dist_backend=self.dist.backend)
        return config

    def run_extra(self) -> dict[str, Any]:
        """run.json fields beside the writer's own: backend, device, versions, data."""
        from trainledger.engines.training.provenance import describe_data, library_versions

        return {
            "backend": self.backend,
            "device": self.device,
            "versions": library_versions(),
            "data": describe_data(self.task),
            **self.extra_info,
        }

    def run(self) -> RunResult | None:
        """Train until done, early stop or a stop request. None if stopped before starting.

        Without a StopFlag of its own, the trainer handles SIGTERM/SIGINT itself (main
        thread only) and restores the previous handlers afterwards.
        """
        with stop_handling(self.stop) as stop:
            if stop.is_set():
                return None
            torch.set_num_threads(self.cfg.threads)
            torch.manual_seed(self.cfg.seed)
            model = self.task.build_model().to(self.device)
            optimizer = torch.optim.Adam(model.parameters(), lr=self.cfg.lr)
            shuffle = torch.Generator().manual_seed(self.cfg.seed)
            start = _Start()
            if self.resume:
                assert self.run_id is not None
                start = self._restore(self.workspace.run_dir(self.run_id), model, optimizer, shuffle)
            if not self.is_main:  # ranks other than 0 write nothing
                from trainledger.engines.training.distributed import NullWriter

                assert self.run_id is not None
                writer: Any = NullWriter(self.run_id, self.workspace.run_dir(self.run_id))
            elif self.resume:
                assert self.run_id is not None
                writer = reopen_writer(self.workspace, self.run_id)
                info = writer.info
                resumes = list(info.get("resumes") or [])
                resumes.append({"time": time.time(), "step": start.step, "epoch": start.epochs_done,
                                "pid": os.getpid(), "argv": list(sys.argv)})  # fmt: skip
                writer.update(status="running", ended=None, error=None, pid=os.getpid(), host=socket.gethostname(),
                              config=self.run_config(), resumes=resumes, **self.run_extra())  # fmt: skip
            else:
                writer = new_writer(self.workspace, self.run_id, self.name, self.task, self.run_config(),
                                    self.run_extra())  # fmt: skip
            with system_monitor(self.monitor and self.is_main, writer.dir):
                with writer:
                    if self.resume:
                        writer.event("resumed", f"resumed at step {start.step}, epoch {start.epochs_done}",
                                     step=start.step, epoch=start.epochs_done)  # fmt: skip
                    self.progress("start", {"run_id": writer.run_id, "run_dir": writer.dir, "epochs": self.cfg.epochs,
                                            "step": start.step, "epoch": start.epochs_done})  # fmt: skip
                    train_model = self.dist.wrap(model) if self.dist is not None else model
                    result = self._train(train_model, optimizer, shuffle, writer, stop, start)
                    record_end(writer, self.task.model_name, result, stop.reason,
                               partial(self._save_last, writer.dir, model, optimizer, shuffle))  # fmt: skip
                self.progress("end", {"result": result})
            return result

    def _save_last(
        self, run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator,
        info: dict[str, Any],
    ) -> None:  # fmt: skip
        if not self.is_main:
            return
        ref = save_trainer_state(run_dir, "last", optimizer, shuffle)
        save_checkpoint(run_dir, "last", model, {**info, "trainer_state": ref})

    def _restore(
        self, run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator
    ) -> _Start:
        """Load the last checkpoint (+ optimizer and shuffle RNG if saved); where to go on from."""
        import msgspec

        from trainledger.engines.workspace import RUN_FILE

        if not (run_dir / CHECKPOINT_DIR / "last.json").exists():
            raise CheckpointError(f"cannot resume {run_dir.name}: it has no checkpoints/last.safetensors")
        tensors, sidecar = load_checkpoint(run_dir, "last")
        model.load_state_dict({k: v.to(self.device) for k, v in tensors.items()})
        ref = sidecar.get("trainer_state")
        if ref:
            optim_state, rng = load_trainer_state(run_dir, ref)
            optimizer.load_state_dict(optim_state)
            if rng is not None:
                shuffle.set_state(rng)
        info = msgspec.json.decode((run_dir / RUN_FILE).read_bytes())
        best = (info.get("summary") or {}).get("best")
        if best is None and (run_dir / CHECKPOINT_DIR / "best.json").exists():
            side = read_sidecar(run_dir / CHECKPOINT_DIR / "best.json")
            metric = self.task.primary_metric
            if metric in (side.get("metrics") or {}):
                best = {"metric": metric, "value": side["metrics"][metric],
                        "epoch": side.get("epoch"), "step": side.get("step")}  # fmt: skip
        step, epoch = checkpoint_position(sidecar, run_dir / CHECKPOINT_DIR / "last.json")
        return _Start(step=step, epochs_done=epoch, best=best)

    def _agreed_stop(self, stop: StopFlag) -> bool:
        """Whether to stop after this step: the local flag, or under DDP whether any rank's
        flag is set (all-reduced, so every rank decides the same)."""
        if self.dist is None:
            return stop.is_set()
        if self.dist.all_max([float(stop.is_set())])[0] > 0:
            stop.set("stop request on another rank")
            return True
        return False

    def _window_row(self, window: Window) -> dict[str, float]:
        """The train row of `window`; under DDP the loss means are averaged over the ranks and
        samples_per_s is the sum over the ranks (steps_per_s stays per rank)."""
        row = window.row("train/")
        if self.dist is None:
            return row
        keys = [k for k in row if k != "steps_per_s"]
        sums = self.dist.all_sum([row[k] for k in keys])
        world = self.dist.world_size
        return {**{k: v if k == "samples_per_s" else v / world for k, v in zip(keys, sums)},
                "steps_per_s": row["steps_per_s"]}  # fmt: skip

    def _balance(
        self, model: nn.Module, parts: dict[str, Tensor], terms: list[str], step: int, epoch: float,
        writer: MetricsWriter, last_warned: dict[tuple[str, str], int],
    ) -> dict[str, float]:  # fmt: skip
        """Each loss term's gradient norm over the trainable parameters, its share of their sum,
        and a loss_dominance event when one term's norm is dominance_factor x another's."""
        params = [p for p in model.parameters() if p.requires_grad]
        norms: dict[str, float] = {}
        for key in terms:
            name = key[len("term/"):]
            value = parts[key]
            if not value.requires_grad:
                norms[name] = 0.0
                continue
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            sq = sum(float(g.detach().float().pow(2).sum()) for g in grads if g is not None)
            norms[name] = float(sq) ** 0.5
        total = sum(norms.values())
        row: dict[str, float] = {}
        for name, norm in norms.items():
            row[f"balance/{name}/grad_norm"] = norm
            row[f"balance/{name}/share"] = norm / total if total > 0 else 0.0
        factor, cooldown = self.cfg.dominance_factor, 10 * self.cfg.balance_every
        for big, nb in norms.items():
            for small, ns in norms.items():
                if big == small or not nb > factor * ns:
                    continue
                last = last_warned.get((big, small))
                if last is not None and step - last < cooldown:
                    continue
                last_warned[(big, small)] = step
                ratio = nb / ns if ns > 0 else None
                text = f"{ratio:.3g}x" if ratio is not None else "infinitely"
                writer.event("loss_dominance", f"{big} gradient {text} larger than {small}", step=step, epoch=epoch,
                             dominant=big, dominated=small, ratio=ratio, grad_norms={big: nb, small: ns},
                             factor=factor)  # fmt: skip
        return row

    def _train(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator,
        writer: MetricsWriter, stop: StopFlag, start: _Start,
    ) -> RunResult:  # fmt: skip
        task, cfg, device, dist = self.task, self.cfg, self.device, self.dist
        # under DDP, `model` is the wrapper (for the training steps); `raw` is what is
        # evaluated and saved, on rank 0 only
        raw: nn.Module = model.module if dist is not None else model  # type: ignore[assignment]
        pacer = _Pacer(cfg.pace, stop)
        step, epochs_done = start.step, start.epochs_done
        book = Bookkeeper(task.model_name, task.primary_metric, task.directions, patience=cfg.patience,
                          last_every=cfg.last_every, best=start.best, epochs_done=epochs_done)  # fmt: skip
        window = book.window
        phase = task.schedule(float(epochs_done)).phase if self.resume else None
        balance_row: dict[str, float] = {}
        last_warned: dict[tuple[str, str], int] = {}
        sched = task.schedule(float(epochs_done))

        def result(status: str, early: bool = False) -> RunResult:
            return RunResult(writer.run_id, writer.dir, status, step, epochs_done, early, book.best)

        if cfg.eval_at_start and not self.resume and self.is_main:
            model.eval()
            metrics = task.evaluate(raw, task.schedule(0.0))
            writer.log(metrics, step=0, epoch=0)
            self.progress("val", {"step": 0, "epoch": 0, "metrics": metrics})

        for epoch in range(epochs_done, cfg.epochs):
            model.train()
            batches = task.train_batches(cfg.batch_size, shuffle)
            if dist is not None:  # the same shuffle on every rank: disjoint shards
                batches = dist.shard(batches)
            for i, batch in enumerate(batches):
                frac = epoch + i / len(batches)
                sched = task.schedule(frac)
                lr = cfg.lr * sched.lr_scale
                if sched.phase != phase:
                    if phase is not None:
                        writer.event("phase", sched.description, step=step, epoch=frac,
                                     phase=sched.phase, previous=phase, lr=lr, **sched.values)  # fmt: skip
                    phase = sched.phase
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = _to_device(batch, device)
                parts = task.loss(model, batch, sched)
                optimizer.zero_grad(set_to_none=True)
                if cfg.balance_every and (step + 1) % cfg.balance_every == 0:
                    terms = [k for k in parts if k.startswith("term/")]
                    if len(terms) > 1:
                        balance_row = self._balance(model, parts, terms, step + 1, frac, writer, last_warned)
                parts["loss"].backward()
                optimizer.step()
                step += 1
                window.add({k: float(v.detach()) for k, v in parts.items()}, len(batch))
                if step % cfg.log_every == 0:
                    row = {**self._window_row(window), **sched.values, "lr": lr, **balance_row}
                    balance_row = {}
                    at = epoch + (i + 1) / len(batches)
                    writer.log(row, step=step, epoch=at)
                    self.progress("train", {"step": step, "epoch": at, "metrics": row, "epochs": cfg.epochs})
                    window.reset()
                if self._agreed_stop(stop):
                    return result("stopped")
                pacer.wait()

            epochs_done = epoch + 1
            if not self.is_main:  # rank 0 validates; wait for its verdict (and any rank's stop)
                early, stopping = dist.all_max([0.0, float(stop.is_set())])
                if early > 0:
                    return result("finished", early=True)
                if stopping > 0:
                    stop.set("stop request on another rank")
                    return result("stopped")
                continue
            model.eval()
            metrics = task.evaluate(raw, sched)
            writer.log(metrics, step=step, epoch=epochs_done)
            self.progress("val", {"step": step, "epoch": epochs_done, "metrics": metrics, "epochs": cfg.epochs})
            book.validated(metrics, step=step, epoch=epochs_done, writer=writer,
                           save_best=lambda info: save_checkpoint(writer.dir, "best", raw, info))  # fmt: skip
            info = {"model": task.model_name, "epoch": epochs_done, "step": step, "status": "running"}
            # what --resume continues from: throttled by the bookkeeper, and always at the end
            book.save_last_if_due(partial(self._save_last, writer.dir, raw, optimizer, shuffle, info))
            early_stop = book.early_stop_due()
            stopping = stop.is_set()
            if dist is not None:  # decide on the reduced flags only: a signal may land after it
                stopping = dist.all_max([float(early_stop), float(stopping)])[1] > 0
                if stopping:
                    stop.set("stop request on another rank")
            if early_stop:
                book.write_early_stop(writer, step=step, epoch=epochs_done)
                return result("finished", early=True)
            if stopping if dist is not None else stop.is_set():
                return result("stopped")
        return result("finished")
