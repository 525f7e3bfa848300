"""What a run list row shows of a run (last step and epoch, rate), read from the file's ends.

A workspace may hold thousands of runs; the console lists them from run.json and fills
in each visible row's progress without parsing its whole metrics.jsonl: a `RunBrief`
comes from the first and last 64 KB of the file (or, for a run already parsed, from
its snapshot, with the same numbers).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainledger.engines.metrics.columns import parse_lines
from trainledger.engines.metrics.series import SeriesSnapshot
from trainledger.engines.metrics.store import fill_steps
from trainledger.engines.safeio import open_regular_file
from trainledger.engines.workspace import METRICS_FILE

END_BYTES = 64 * 1024  # read this much of each end of metrics.jsonl


@dataclass(frozen=True)
class RunBrief:
    """The first and last values a run list row needs; NaN where unknown."""

    rows: int  # rows seen: exact for a small file or a snapshot, else 2 meaning "several"
    step: float = math.nan  # of the last row (steps filled as the series fills them)
    epoch: float = math.nan  # of the last row (NaN if that row has none)
    first_step: float = math.nan
    first_epoch: float = math.nan  # first and last finite epoch
    last_epoch: float = math.nan
    first_time: float = math.nan
    last_time: float = math.nan
    steps_per_s: float = math.nan  # the trainer's own rate, its last finite value
    problem: str | None = None


def _first(a: np.ndarray) -> float:
    for i in range(len(a)):  # the first row almost always has it: no full scan
        v = float(a[i])
        if math.isfinite(v):
            return v
    return math.nan


def _last(a: np.ndarray) -> float:
    for i in range(len(a) - 1, -1, -1):
        v = float(a[i])
        if math.isfinite(v):
            return v
    return math.nan


def brief_of(snap: SeriesSnapshot) -> RunBrief:
    """The brief of a parsed run (what `read_brief` gives for the same file)."""
    n = snap.n
    if n == 0:
        return RunBrief(0, problem=snap.problem)
    rate = snap.metrics.get("steps_per_s") if "steps_per_s" in snap.metrics else None
    return RunBrief(
        rows=n,
        step=float(snap.step[n - 1]),
        epoch=float(snap.epoch[n - 1]),
        first_step=_first(snap.step),
        first_epoch=_first(snap.epoch),
        last_epoch=_last(snap.epoch),
        first_time=_first(snap.time),
        last_time=_last(snap.time),
        steps_per_s=_last(rate) if rate is not None else math.nan,
        problem=snap.problem,
    )


def read_brief(run_dir: Path, end_bytes: int = END_BYTES) -> RunBrief:
    """The brief of `run_dir/metrics.jsonl` from its first and last `end_bytes`; never raises."""
    try:
        with open_regular_file(Path(run_dir) / METRICS_FILE) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size <= 2 * end_bytes:
                head = tail = fh.read(size)
                whole = True
            else:
                head = fh.read(end_bytes)
                fh.seek(size - end_bytes)
                tail = fh.read(end_bytes)
                tail = tail[tail.find(b"\n") + 1 :]  # from the first whole line
                whole = False
    except FileNotFoundError:
        return RunBrief(0)
    except OSError as exc:
        return RunBrief(0, problem=str(exc))
    head = head[: head.rfind(b"\n") + 1]
    tail = tail[: tail.rfind(b"\n") + 1]
    first = parse_lines(head)
    last = first if whole else parse_lines(tail)
    if last.n == 0:
        return RunBrief(first.n)
    step = fill_steps(last.step, math.nan if not whole else -1.0)
    rate = last.metrics.get("steps_per_s")
    if rate is None and "steps_per_s" in last.sparse:
        rate = last.sparse["steps_per_s"][1]
    return RunBrief(
        rows=last.n if whole else max(2, first.n),
        step=float(step[-1]),
        epoch=float(last.epoch[-1]),
        first_step=float(fill_steps(first.step, -1.0)[0]) if first.n else math.nan,
        first_epoch=_first(first.epoch),
        last_epoch=_last(last.epoch),
        first_time=_first(first.time),
        last_time=_last(last.time),
        steps_per_s=_last(rate) if rate is not None else math.nan,
    )
