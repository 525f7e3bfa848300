"""What `trainledger train` prints while it trains: a plain line per validation row (for logs
and pipes) or a rich progress bar on a terminal, and the run's id and folder once it exists.

Split from cli.py so that module keeps the flow of a run.
"""

from __future__ import annotations

import time
from typing import Any


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
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

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
                line = f"epoch {info['epoch']} step {info['step']} {_fmt(info['metrics'], self.primary)}"
                self.progress.console.print(line)
            shown = {k: v for k, v in info["metrics"].items() if k in ("train/loss", "samples_per_s")}
            train = _fmt(shown, "train/loss")
            self.progress.update(self.bar, completed=info["epoch"], epoch_text=f"{info['epoch']:.2f}/{self.epochs}",
                                 metrics="  ".join(x for x in (train if kind == "train" else "", self.val)
                                                   if x))  # fmt: skip
        elif kind == "end":
            self.close()

    def close(self) -> None:
        self.progress.stop()


class _Announce:
    """Prints `run ID` and `folder DIR` when the run folder exists, then passes updates on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "start":
            print(f"run {info['run_id']}\nfolder {info['run_dir']}", flush=True)
        self.inner(kind, info)


def _close(progress: Any) -> None:
    progress = getattr(progress, "inner", progress)
    if isinstance(progress, RichProgress):
        progress.close()
