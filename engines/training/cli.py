"""`trainledger train MODEL ...`: one training run in the foreground, with progress.

The models come from models.MODELS through load_builder; the run is recorded by the
Trainer (loop.py) like any other. This module imports torch only once a run starts, so
`trainledger train --help` and the error paths stay quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from trainledger.engines.training.cli_checks import (  # noqa: F401  (CliError, MLX_MODELS re-exported)
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_USAGE,
    MLX_MODELS,
    CliError,
    check_base,
    check_data_path,
    check_flags,
    check_mlx,
    check_resume,
    check_settings,
    read_run,
    resolve_resume,
)
from trainledger.engines.training.cli_progress import (
    PlainProgress,
    RichProgress,
    _Announce,
    _close,
)
from trainledger.engines.training.models import MODELS

LOOP_FLAGS = ("epochs", "batch_size", "lr", "seed", "patience", "log_every", "pace", "threads")


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


def _load_mlx_builder(model: str) -> Any:
    try:
        from trainledger.engines.training.mlx_models import MLX_MODELS as builders
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "mlx":
            raise CliError(
                "--backend mlx needs the mlx package (pip install mlx, or mlx[cpu] off Apple silicon)"
            ) from None
        raise
    return builders[model]


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parent = os.getppid()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        resolve_resume(args)  # --resume NAME -> its run id (creates nothing)
        check_flags(args)  # before a workspace is looked up: a bad value creates nothing
        if args.model and not args.resume:
            check_settings(args.model, parse_settings(args.set))
        from trainledger.engines.training.distributed import is_worker

        if args.nproc and args.nproc > 1 and not is_worker():
            return _launch(args, argv)
        return _run(args, parent)
    except CliError as exc:
        print(f"trainledger train: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE


def _launch(args: argparse.Namespace, argv: list[str]) -> int:
    """The parent of a --nproc run: check what can be checked, fix the run id, start torchrun."""
    from trainledger.engines.training.distributed import launch
    from trainledger.engines.workspace import (
        InvalidId,
        NotAWorkspace,
        resolve_workspace,
        validate_id,
    )

    try:
        ws, _ = resolve_workspace(args.workspace)
    except (NotAWorkspace, NotADirectoryError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.resume:
        from trainledger.engines.workspace import read_run_info

        previous = read_run(ws, args.resume)
        check_resume(args.resume, previous, args.backend)
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
    if args.resume and args.name:  # --resume RUN --name NEW renames it (meta.json)
        from trainledger.engines.runmeta import write_meta

        write_meta(ws.run_dir(run_id), name=args.name)
    if args.workspace is None:  # every rank must find the same workspace
        argv = [*argv, "--workspace", str(ws.root)]
    print(f"run {run_id}\nfolder {ws.run_dir(run_id)}\nnproc {args.nproc}", flush=True)
    return launch(argv, args.nproc, run_id, ws.run_dir(run_id))


def _run(args: argparse.Namespace, parent: int) -> int:
    from trainledger.engines.training.distributed import Dist, is_worker
    from trainledger.engines.workspace import (
        InvalidId,
        NotAWorkspace,
        resolve_workspace,
        validate_id,
    )

    try:
        ws, _ = resolve_workspace(args.workspace)
    except (NotAWorkspace, NotADirectoryError, ValueError) as exc:
        raise CliError(str(exc)) from None

    previous: dict[str, Any] = {}
    if args.resume:
        previous = read_run(ws, args.resume)
        check_resume(args.resume, previous, args.backend)
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
        check_mlx(args.model)
    elif args.backend != "torch":
        raise CliError(f"--backend {args.backend} is not yet supported for {args.model}; use --backend torch")

    settings = parse_settings(args.set)
    old_opts = previous.get("task_options") or {}
    if args.resume:  # the task as it was built, with this invocation's settings on top
        settings = {**(old_opts.get("set") or {}), **settings}
        args.data = args.data or old_opts.get("data")
        args.seed = args.seed if args.seed is not None else old_opts.get("seed")
        args.base = args.base or old_opts.get("base")
    check_settings(args.model, settings)
    if args.data:  # on --resume it may come from run.json
        check_data_path(Path(args.data).expanduser())
    base_dir = check_base(ws, args.model, args.base)
    if base_dir is not None and base_dir == ws.run_dir(base_dir.name):
        args.base = base_dir.name  # --base NAME is recorded as the run id it named
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
    if args.resume and args.name and not is_worker():  # --resume RUN --name NEW renames it (meta.json)
        from trainledger.engines.runmeta import write_meta

        write_meta(ws.run_dir(run_id), name=args.name)
    threads = args.threads or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))

    import dataclasses

    from trainledger.engines.training.checkpoints import CheckpointError
    from trainledger.engines.training.loop import (
        LoopConfig,
        StopFlag,
        Trainer,
        install_signal_handlers,
    )
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
    quiet = dist is not None and not dist.is_main
    loop_fields = {f.name for f in dataclasses.fields(LoopConfig)}
    loop_set = {k: v for k, v in settings.items() if k in loop_fields}
    task_set = {k: v for k, v in settings.items() if k not in loop_fields}
    data = Path(args.data).expanduser() if args.data else None
    if base_dir is not None and base_dir != ws.run_dir(base_dir.name):  # a folder path: keep it absolute
        args.base = str(base_dir)
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
        def progress(kind, info):
            return None
    elif dist is None:  # the run id and folder once they exist (under torchrun the launcher said them)
        progress = _Announce(progress)

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
        return EXIT_INTERRUPTED
    except CheckpointError as exc:  # --resume: the run's checkpoints cannot be trusted; nothing was written
        _close(progress)
        raise CliError(str(exc)) from None
    finally:
        _close(progress)
        if dist is not None:
            dist.close()
    if quiet:
        return EXIT_OK
    if result is None:
        print(f"stopped before the run started ({stop.reason})", flush=True)
        return EXIT_OK if dist is not None else EXIT_STOPPED
    extra_text = " (early stop)" if result.early_stopped else ""
    print(f"{result.status}{extra_text} at step {result.step}, epoch {result.epochs_done}", flush=True)
    if result.best:
        b = result.best
        print(f"best {b['metric']} {b['value']:.4g} at epoch {b['epoch']} (checkpoints/best.safetensors)", flush=True)
    # under torchrun a rank's non-zero status is a crash to torchrun: the launcher reports the stop
    return EXIT_STOPPED if result.status == "stopped" and dist is None else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
