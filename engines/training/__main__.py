"""`python -m trainledger.engines.training MODEL --workspace DIR ...`: one training run, this process.

The console and the demo start trainers this way, in a process of their own, so that either
side can crash or be killed without taking the other along; --exit-with-parent ties the
trainer's life to its parent's.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

from trainledger.engines.pids import parent_alive  # noqa: F401  (re-exported)

MODELS = ("ternary-vae",)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trainledger.engines.training",
        description="Train one model and record it as a run of a trainledger workspace.",
    )
    p.add_argument("model", choices=MODELS)
    p.add_argument("--workspace", help="workspace folder (default: as the console finds one)")
    p.add_argument("--run-id", help="id of the new run folder (default: time-model-random)")
    p.add_argument("--name", help="a label for the run")
    p.add_argument("--epochs", type=int, help="most epochs to train (default 400)")
    p.add_argument("--batch-size", type=int, help="examples per step (default 128)")
    p.add_argument("--lr", type=float, help="learning rate (default 0.001)")
    p.add_argument("--seed", type=int, help="seed of the split, the init and the shuffling (default 0)")
    p.add_argument("--patience", type=int,
                   help="epochs without a better val/loss before stopping; 0 = never (default 100)")  # fmt: skip
    p.add_argument("--log-every", type=int, help="steps per train row (default 10)")
    p.add_argument("--phase-epoch", type=int, help="epoch at which β jumps and the LR halves; -1 = never (default 50)")
    p.add_argument("--pace", type=float, help="at most this many steps per second; 0 = unlimited (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: leave a core to the console)")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="stop the run cleanly when the parent process goes away")  # fmt: skip
    return p.parse_args(argv)


def watch_parent(stop: Any, parent: int, interval: float = 0.5) -> threading.Thread:
    """A daemon thread that sets `stop` (a loop.StopFlag) as SIGTERM would when `parent` is gone."""

    def watch() -> None:
        while True:
            if not parent_alive(parent):
                stop.set("parent exited")
                return
            if stop.wait(interval):
                return

    thread = threading.Thread(target=watch, name="watch-parent", daemon=True)
    thread.start()
    return thread


def build_task(model: str, args: argparse.Namespace, ws: Any = None) -> Any:
    """The Task through the model registry's builder (models.MODELS)."""
    from trainledger.engines.training.models import TaskOptions, load_builder

    settings: dict[str, Any] = {}
    if args.phase_epoch is not None:
        settings["phase_epoch"] = args.phase_epoch if args.phase_epoch >= 0 else None
    return load_builder(model)(TaskOptions(ws, seed=args.seed or 0, extra={"set": settings}))


def main(argv: list[str] | None = None) -> int:
    parent = os.getppid()  # before anything slow: a parent that dies meanwhile is still seen
    args = parse_args(argv)
    from trainledger.engines.training.cli_checks import EXIT_OK, EXIT_STOPPED, EXIT_USAGE, CliError, check_flags

    try:
        check_flags(args)
    except CliError as exc:
        print(f"python -m trainledger.engines.training: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from trainledger.engines.metrics.writer import new_run_id
    from trainledger.engines.workspace import resolve_workspace, validate_id

    ws, _ = resolve_workspace(args.workspace)
    run_id = validate_id(args.run_id, "run id") if args.run_id else new_run_id(args.model)

    from trainledger.engines.training.loop import LoopConfig, StopFlag, Trainer, install_signal_handlers

    overrides = {
        k: getattr(args, k)
        for k in ("epochs", "batch_size", "lr", "seed", "patience", "log_every", "pace", "threads")
        if getattr(args, k) is not None
    }
    cfg = LoopConfig(**overrides)
    stop = StopFlag()
    install_signal_handlers(stop)
    if args.exit_with_parent:
        watch_parent(stop, parent)
    from trainledger.engines.training.cli_progress import _Announce

    try:
        result = Trainer(build_task(args.model, args, ws), cfg, ws, run_id=run_id, name=args.name, stop=stop,
                         progress=_Announce(lambda kind, info: None)).run()  # fmt: skip
    except KeyboardInterrupt:  # a second Ctrl-C: the run is marked stopped, without a last checkpoint
        return 130
    if result is None:
        print(f"stopped before the run started ({stop.reason})", flush=True)
        return EXIT_STOPPED
    extra = " (early stop)" if result.early_stopped else ""
    print(f"{result.status}{extra} at step {result.step}, epoch {result.epochs_done}", flush=True)
    return EXIT_STOPPED if result.status == "stopped" else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
