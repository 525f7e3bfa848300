"""`trainledger reproduce RUN`: train again from a run's run.json alone, then compare.

The command is the registry's reproduction line (engines/registry/repro.py), run as a child
`python -m trainledger train ...` into a new run of the same workspace. Before anything is
started, the data the run was trained on is hashed again: a file or folder whose sha256 no
longer matches run.json's `data.sha256` is refused (the run cannot be reproduced from it).
Data generated in memory from the seed is compared after the fact: the new run's
`data.sha256` must equal the old one's.

Then the two runs' metrics.jsonl are compared step by step: every metric at every step both
runs logged. Figures of time (`time`, `samples_per_s`, `steps_per_s`) are not compared; they
are never the same twice. On CPU, with the same seed and thread count, the values are
identical; elsewhere the largest difference is reported (metric, step, both values).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainledger.engines.provenance.subject import Subject
from trainledger.engines.safeio import read_regular
from trainledger.engines.workspace import Workspace

METRICS_LIMIT = 1 << 30
NOT_COMPARED = frozenset({"step", "epoch", "time", "samples_per_s", "steps_per_s"})


class ReproduceError(ValueError):
    """The run cannot be reproduced (no command, data changed): one line, exit 1."""


@dataclass
class Comparison:
    steps: int = 0  # steps both runs logged
    values: int = 0  # (step, metric) pairs compared
    only_original: int = 0  # pairs only the original has (a shorter re-run, or a metric gone)
    only_new: int = 0
    largest: dict[str, Any] | None = None  # {"metric", "step", "original", "new", "difference"}
    differing: int = 0

    @property
    def identical(self) -> bool:
        return self.values > 0 and self.differing == 0

    def to_json(self) -> dict[str, Any]:
        return {"identical": self.identical, "steps": self.steps, "values": self.values,
                "differing": self.differing, "only_original": self.only_original,
                "only_new": self.only_new, "largest": self.largest}  # fmt: skip


@dataclass
class Plan:
    argv: list[str]  # the child's command line
    command: str  # the reproduction line as the registry records it
    new_run_id: str
    epochs: int | None = None
    notes: list[str] = field(default_factory=list)


def _data_now(data: dict[str, Any]) -> str | None:
    from trainledger.engines.training.provenance import sha256_file, sha256_tree

    path = Path(str(data.get("path") or ""))
    if data.get("kind") == "folder" and path.is_dir():
        return sha256_tree(path)
    if data.get("kind") == "file" and path.is_file():
        return sha256_file(path)
    return None


def check_data(run: dict[str, Any]) -> str:
    """A line saying the data matches, or ReproduceError when it does not (or is gone)."""
    data = run.get("data")
    if not isinstance(data, dict) or not data.get("sha256"):
        return "run.json records no data sha256: nothing to check before training"
    if data.get("generated"):
        return f"data generated from the seed ({data['generated']}): compared after training"
    if data.get("kind") not in ("file", "folder"):
        raise ReproduceError(f"run.json's data is {data.get('kind')!r}: nothing to train on")
    now = _data_now(data)
    if now is None:
        raise ReproduceError(f"the data is gone: {data.get('path')}")
    if now != data["sha256"]:
        raise ReproduceError(
            f"the data changed since the run: {data.get('path')} hashes to {now[:12]}…, "
            f"run.json says {str(data['sha256'])[:12]}…"
        )
    return f"data unchanged: {data.get('path')} (sha256 {now[:12]}…)"


def plan(ws: Workspace, subject: Subject, new_run_id: str, epochs: int | None = None) -> Plan:
    from trainledger.engines.registry.repro import reproduction_command

    if subject.is_version or subject.run_dir is None:
        raise ReproduceError("reproduce takes a run (a version's run: reproduce its run id)")
    command = reproduction_command(subject.run)
    if command is None:
        raise ReproduceError(f"{subject.label}: run.json does not say how it was trained (no model or config)")
    words = shlex.split(command)
    if words[:2] != ["trainledger", "train"]:
        raise ReproduceError(f"unexpected reproduction command: {command}")
    args = words[2:]
    if epochs is not None:
        if "--epochs" in args:
            i = args.index("--epochs")
            del args[i : i + 2]
        args += ["--epochs", str(epochs)]
    argv = [sys.executable, "-m", "trainledger", "train", *args, "--workspace", str(ws.root),
            "--run-id", new_run_id, "--name", f"reproduces {subject.label}"]  # fmt: skip
    return Plan(argv, command, new_run_id, epochs)


def read_metrics(path: Path) -> dict[tuple[float, str], float | None]:
    """(step, metric) -> value of a metrics.jsonl (the last one when a step repeats). Lines
    that are not JSON objects are skipped, as the chart skips them."""
    out: dict[tuple[float, str], float | None] = {}
    prev: float = -1.0
    for raw in read_regular(path, METRICS_LIMIT).split(b"\n"):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if not isinstance(row, dict):
            continue
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            step = prev + 1
        prev = float(step)
        for key, value in row.items():
            if key in NOT_COMPARED or isinstance(value, bool):
                continue
            if value is None or isinstance(value, (int, float)):
                out[(float(step), key)] = None if value is None else float(value)
    return out


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def compare(original: Path, new: Path) -> Comparison:
    a, b = read_metrics(original), read_metrics(new)
    out = Comparison(only_original=len(a.keys() - b.keys()), only_new=len(b.keys() - a.keys()))
    common = a.keys() & b.keys()
    out.values, out.steps = len(common), len({step for step, _ in common})
    worst = -1.0
    for step, key in sorted(common):
        x, y = a[(step, key)], b[(step, key)]
        if _same(x, y):
            continue
        out.differing += 1
        diff = math.inf if x is None or y is None else abs(x - y)
        if diff > worst:
            worst = diff
            out.largest = {"metric": key, "step": int(step) if step.is_integer() else step,
                           "original": x, "new": y, "difference": diff}  # fmt: skip
    return out
