"""`trainledger train MODEL ...`: one training run in the foreground, with progress.

The models come from models.MODELS through load_builder; the run is recorded by the
Trainer (loop.py) like any other. This module imports torch only once a run starts, so
`trainledger train --help` and the error paths stay quick.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from trainledger.engines.training.models import MODELS

# the models that run on --backend mlx (mlx_models.MLX_MODELS; named here so that
# the error paths need not import mlx)
MLX_MODELS = ("lvm-gru", "ternary-vae", "san", "lora-lm")
LOOP_FLAGS = ("epochs", "batch_size", "lr", "seed", "patience", "log_every", "pace", "threads")


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trainledger train",
        description="Train one model in the foreground and record it as a run of a workspace.",
        epilog=f"models: {', '.join(MODELS)}",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="the model to train (optional with --resume)")
    p.add_argument("--data", help="dataset file or folder (default: the model generates its demo data)")
    p.add_argument("--backend", default="torch", choices=("torch", "mlx"), help="default torch")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="auto: cuda, then mps, then cpu (default auto)")  # fmt: skip
    p.add_argument("--epochs", type=int, help="most epochs to train; with --resume, the new total")
    p.add_argument("--batch-size", type=int, help="examples per step")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--patience", type=int, help="epochs without a better primary metric before stopping; 0 = never")
    p.add_argument("--seed", type=int, help="seed of the split, the init and the shuffling (default 0)")
    p.add_argument("--workspace", help="workspace folder (default: as the console finds one)")
    p.add_argument("--run-id", help="id of the new run folder (default: time-model-random)")
    p.add_argument("--name", help="a label for the run")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint, in its folder")
    p.add_argument("--force", action="store_true", help="let the model regenerate/overwrite what it would reuse")
    p.add_argument("--base", metavar="RUN", help="a base run the model builds on (e.g. LoRA over a base LM)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a loop setting (log_every, pace, balance_every, ...) or a model setting; "
                        "VALUE is JSON if it parses, else a string; repeatable")  # fmt: skip
    p.add_argument("--log-every", type=int, help="steps per train row")
    p.add_argument("--pace", type=float, help="at most this many steps per second; 0 = unlimited")
    p.add_argument("--threads", type=int, help="torch threads (default 1)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train on N processes with DDP under torchrun (gloo on CPU, nccl on CUDA); "
                        "rank 0 writes the run folder (default 1)")  # fmt: skip
    p.add_argument("--exit-with-parent", action="store_true", help="stop cleanly when the parent process goes away")
    return p


def parse_settings(items: list[str]) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value: Any = msgspec.json.decode(raw.encode())
        except msgspec.DecodeError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def _read_run(ws: Any, run_id: str) -> dict[str, Any]:
    import msgspec

    from trainledger.engines.workspace import RUN_FILE, validate_id

    path = ws.run_dir(validate_id(run_id, "run id")) / RUN_FILE
    try:
        info = msgspec.json.decode(path.read_bytes())
    except FileNotFoundError:
        raise CliError(f"--resume {run_id}: no such run in {ws.root}") from None
    except msgspec.DecodeError as exc:
        raise CliError(f"--resume {run_id}: run.json unreadable: {exc}") from None
    if not isinstance(info, dict):
        raise CliError(f"--resume {run_id}: run.json is not an object")
    return info


def _load_builder(model: str) -> Any:
    from trainledger.engines.training.models import load_builder

    try:
        return load_builder(model)
    except ModuleNotFoundError as exc:
        target = MODELS[model].split(":")[0]
        if exc.name and target.startswith(exc.name):
            raise CliError(f"model {model!r} is registered but not available yet ({target} does not exist)") from None
        raise CliError(f"model {model!r} needs a module that is not installed: {exc.name}") from None
    except AttributeError:
        raise CliError(f"model {model!r} is registered but {MODELS[model]} does not exist yet") from None


def _check_mlx(args: argparse.Namespace) -> None:
    """--backend mlx: only the models of mlx_models.MLX_MODELS, one process, no --resume yet."""
    if args.model not in MLX_MODELS:
        raise CliError(f"--backend mlx is not yet supported for {args.model}; use --backend torch "
                       f"(on mlx: {', '.join(MLX_MODELS)})")  # fmt: skip
    if args.resume:
        raise CliError("--resume is not yet supported with --backend mlx")


def _load_mlx_builder(model: str) -> Any:
    try:
        from trainledger.engines.training.mlx_models import MLX_MODELS as builders
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "mlx":
            raise CliError("--backend mlx needs the mlx package (pip install mlx, or mlx[cpu] off Apple silicon)") from None
        raise
    return builders[model]


# ----------------------------------------------------------------------------- progress
class PlainProgress:
    """One line per validation row; a train line at most every `every` seconds."""

    def __init__(self, primary: str, every: float = 10.0) -> None:
        self.primary = primary
        self.every = every
        self.last = time.monotonic()
        self.epochs = 0

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "start":
            self.epochs = info["epochs"]
            if info["step"]:
                print(f"resuming at step {info['step']}, epoch {info['epoch']}", flush=True)
        elif kind == "val":
            print(f"epoch {info['epoch']}/{self.epochs} step {info['step']} {_fmt(info['metrics'], self.primary)}",
                  flush=True)  # fmt: skip
            self.last = time.monotonic()
        elif kind == "train" and time.monotonic() - self.last >= self.every:
            print(f"epoch {info['epoch']:.2f}/{self.epochs} step {info['step']} {_fmt(info['metrics'], 'train/loss')}",
                  flush=True)  # fmt: skip
            self.last = time.monotonic()


def _fmt(metrics: dict[str, Any], first: str) -> str:
    keys = [first] if first in metrics else []
    keys += [k for k in ("train/loss", "val/loss", "samples_per_s") if k in metrics and k not in keys]
    return "  ".join(f"{k} {metrics[k]:.4g}" for k in keys if isinstance(metrics[k], (int, float)))


class RichProgress:
    """A rich progress bar over epochs (fractional), with the latest metrics beside it."""

    def __init__(self, primary: str) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.primary = primary
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch_text]}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
        )
        self.bar: Any = None
        self.val = ""

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "start":
            self.progress.start()
            self.bar = self.progress.add_task("train", total=info["epochs"], completed=info["epoch"],
                                              epoch_text=f"{info['epoch']}/{info['epochs']}", metrics="")  # fmt: skip
            self.epochs = info["epochs"]
        elif kind in ("train", "val") and self.bar is not None:
            if kind == "val":
                self.val = _fmt({k: v for k, v in info["metrics"].items() if k == self.primary}, self.primary)
                self.progress.console.print(f"epoch {info['epoch']} step {info['step']} {_fmt(info['metrics'], self.primary)}")
            train = _fmt({k: v for k, v in info["metrics"].items() if k in ("train/loss", "samples_per_s")}, "train/loss")
            self.progress.update(self.bar, completed=info["epoch"], epoch_text=f"{info['epoch']:.2f}/{self.epochs}",
                                 metrics="  ".join(x for x in (train if kind == "train" else "", self.val) if x))  # fmt: skip
        elif kind == "end":
            self.close()

    def close(self) -> None:
        self.progress.stop()


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parent = os.getppid()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        if args.nproc is not None and args.nproc < 1:
            raise CliError(f"--nproc {args.nproc}: expected 1 or more")
        from trainledger.engines.training.distributed import is_worker

        if args.nproc and args.nproc > 1 and not is_worker():
            return _launch(args, argv)
        return _run(args, parent)
    except CliError as exc:
        print(f"trainledger train: {exc}", file=sys.stderr, flush=True)
        return 2


def _launch(args: argparse.Namespace, argv: list[str]) -> int:
    """The parent of a --nproc run: check what can be checked, fix the run id, start torchrun."""
    from trainledger.engines.training.distributed import launch
    from trainledger.engines.workspace import InvalidId, NotAWorkspace, resolve_workspace, validate_id

    try:
        ws, _ = resolve_workspace(args.workspace)
    except (NotAWorkspace, NotADirectoryError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.resume:
        from trainledger.engines.workspace import read_run_info

        previous = _read_run(ws, args.resume)
        current = read_run_info(ws.run_dir(args.resume))
        if current.status == "running":
            raise CliError(f"run {args.resume} is still running (pid {current.pid} on {current.host})")
        args.model = args.model or previous.get("model")
    if not args.model:
        raise CliError(f"which model? known: {', '.join(MODELS)}")
    if args.model not in MODELS:
        raise CliError(f"unknown model {args.model!r}; known: {', '.join(MODELS)}")
    if args.backend == "mlx":
        raise CliError("--backend mlx does not run with --nproc; train on one process")
    if args.backend != "torch":
        raise CliError(f"--backend {args.backend} is not yet supported for {args.model}; use --backend torch")
    try:
        if args.resume:
            run_id = validate_id(args.resume, "run id")
        else:
            from trainledger.engines.metrics.writer import new_run_id

            run_id = validate_id(args.run_id, "run id") if args.run_id else new_run_id(args.model)
    except InvalidId as exc:
        raise CliError(str(exc)) from None
    if not args.resume and ws.run_dir(run_id).exists():
        raise CliError(f"run {run_id} already exists; --resume {run_id} continues it")
    if args.workspace is None:  # every rank must find the same workspace
        argv = [*argv, "--workspace", str(ws.root)]
    print(f"run {run_id}\nfolder {ws.run_dir(run_id)}\nnproc {args.nproc}", flush=True)
    return launch(argv, args.nproc, run_id)


def _run(args: argparse.Namespace, parent: int) -> int:
    from trainledger.engines.training.distributed import Dist, is_worker

    from trainledger.engines.workspace import InvalidId, NotAWorkspace, resolve_workspace, validate_id

    try:
        ws, _ = resolve_workspace(args.workspace)
    except (NotAWorkspace, NotADirectoryError, ValueError) as exc:
        raise CliError(str(exc)) from None

    previous: dict[str, Any] = {}
    if args.resume:
        previous = _read_run(ws, args.resume)
        from trainledger.engines.workspace import read_run_info

        current = read_run_info(ws.run_dir(args.resume))
        if current.status == "running" and not is_worker():  # the launcher checked it
            raise CliError(f"run {args.resume} is still running (pid {current.pid} on {current.host})")
        if args.model and previous.get("model") and args.model != previous["model"]:
            raise CliError(f"--resume {args.resume} is a {previous['model']} run, not {args.model}")
        args.model = args.model or previous.get("model")
    if not args.model:
        raise CliError(f"which model? known: {', '.join(MODELS)}")
    if args.model not in MODELS:
        raise CliError(f"unknown model {args.model!r}; known: {', '.join(MODELS)}")
    if args.backend == "mlx":
        _check_mlx(args)
    elif args.backend != "torch":
        raise CliError(f"--backend {args.backend} is not yet supported for {args.model}; use --backend torch")

    settings = parse_settings(args.set)
    old_opts = previous.get("task_options") or {}
    if args.resume:  # the task as it was built, with this invocation's settings on top
        settings = {**(old_opts.get("set") or {}), **settings}
        args.data = args.data or old_opts.get("data")
        args.seed = args.seed if args.seed is not None else old_opts.get("seed")
        args.base = args.base or old_opts.get("base")
    builder = _load_mlx_builder(args.model) if args.backend == "mlx" else _load_builder(args.model)

    try:
        if args.resume:
            run_id = validate_id(args.resume, "run id")
        else:
            from trainledger.engines.metrics.writer import new_run_id

            run_id = validate_id(args.run_id, "run id") if args.run_id else new_run_id(args.model)
    except InvalidId as exc:
        raise CliError(str(exc)) from None
    if not args.resume and ws.run_dir(run_id).exists() and not is_worker():  # the launcher checked
        raise CliError(f"run {run_id} already exists; --resume {run_id} continues it")
    threads = args.threads or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))

    import dataclasses

    from trainledger.engines.training.loop import LoopConfig, StopFlag, Trainer, install_signal_handlers
    from trainledger.engines.training.models import TaskOptions
    from trainledger.engines.training.provenance import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise CliError(str(exc)) from None

    dist = None
    if is_worker():  # a rank under torchrun (see distributed.py); the launcher printed the run
        dist = Dist.from_env(device)
        device = dist.device(device)
    else:
        print(f"run {run_id}\nfolder {ws.run_dir(run_id)}", flush=True)
    quiet = dist is not None and not dist.is_main
    loop_fields = {f.name for f in dataclasses.fields(LoopConfig)}
    loop_set = {k: v for k, v in settings.items() if k in loop_fields}
    task_set = {k: v for k, v in settings.items() if k not in loop_fields}
    base_dir = ws.run_dir(validate_id(args.base, "run id")) if args.base else None
    data = Path(args.data).expanduser() if args.data else None
    if data is not None and not data.exists():
        raise CliError(f"--data {data}: no such file or folder")
    extra = {**task_set, "set": task_set, "force": args.force, "base": args.base, "base_dir": base_dir}
    opts = TaskOptions(ws, data=data, seed=args.seed or 0, backend=args.backend, device=device, extra=extra)
    if quiet:  # rank 0 builds first (it may generate the demo data), then the others
        dist.barrier()  # type: ignore[union-attr]
    try:
        task = builder(opts)
    except (ValueError, FileNotFoundError, NotImplementedError) as exc:
        raise CliError(f"{args.model}: {exc}") from None
    if dist is not None and dist.is_main:
        dist.barrier()
    if data is None and not quiet:
        path, info = getattr(task, "data_path", None), getattr(task, "data_info", None)
        if path is not None:
            print(f"no --data: generated {path}", flush=True)
        elif isinstance(info, dict) and info.get("generated"):
            print(f"no --data: generated {info['generated']} (in memory)", flush=True)
    task_device = getattr(task, "device", None) or device
    if task_device != device and not quiet:
        print(f"{args.model} trains on {task_device}", flush=True)

    base: dict[str, Any] = {}
    if args.resume:
        base = {k: v for k, v in (previous.get("config") or {}).items() if k in loop_fields}
    else:
        base = {k: v for k, v in dict(getattr(task, "loop_defaults", {}) or {}).items() if k in loop_fields}
    flags = {k: getattr(args, k) for k in LOOP_FLAGS if getattr(args, k) is not None}
    cfg = LoopConfig(**{**base, **loop_set, **flags, "threads": threads})

    stop = StopFlag()
    install_signal_handlers(stop)
    if args.exit_with_parent:
        from trainledger.engines.training.__main__ import watch_parent

        watch_parent(stop, parent)
    progress: Any = RichProgress(task.primary_metric) if sys.stdout.isatty() else PlainProgress(task.primary_metric)
    if quiet:
        progress = lambda kind, info: None  # noqa: E731

    task_options = {"data": str(data.resolve()) if data else None, "seed": opts.seed, "set": task_set,
                    "base": args.base, "force": args.force}  # fmt: skip
    trainer: Any
    if args.backend == "mlx":
        from trainledger.engines.training.mlx_backend import MLXTrainer

        trainer = MLXTrainer(task, cfg, ws, run_id=run_id, name=args.name, stop=stop, progress=progress,
                             extra_info={"task_options": task_options})  # fmt: skip
    else:
        trainer = Trainer(task, cfg, ws, run_id=run_id, name=args.name, stop=stop, device=task_device,
                          backend=args.backend, resume=bool(args.resume), progress=progress,
                          extra_info={"task_options": task_options}, dist=dist)  # fmt: skip
    try:
        result = trainer.run()
    except KeyboardInterrupt:  # a second Ctrl-C: the run is marked stopped, without a last checkpoint
        _close(progress)
        print("interrupted", flush=True)
        return 130
    except ValueError as exc:
        _close(progress)
        if args.resume and "resume" in str(exc):
            raise CliError(str(exc)) from None
        raise
    finally:
        _close(progress)
        if dist is not None:
            dist.close()
    if quiet:
        return 0
    if result is None:
        print(f"stopped before the run started ({stop.reason})", flush=True)
        return 0
    extra_text = " (early stop)" if result.early_stopped else ""
    print(f"{result.status}{extra_text} at step {result.step}, epoch {result.epochs_done}", flush=True)
    if result.best:
        b = result.best
        print(f"best {b['metric']} {b['value']:.4g} at epoch {b['epoch']} (checkpoints/best.safetensors)", flush=True)
    return 0


def _close(progress: Any) -> None:
    if isinstance(progress, RichProgress):
        progress.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
