"""Import TensorBoard logdirs as read-only trainledger run folders.

Every folder under the logdir that holds `events.out.tfevents.*` files is one run, as
TensorBoard itself discovers runs. Its scalars (TF1 `simple_value` summaries and TF2
scalar tensors) are read with TensorBoard's own `EventAccumulator` and written as
`runs/<prefix><run name>/` with one metrics row per step. TensorBoard is an optional
extra (`pip install 'trainledger[tensorboard]'`) and is imported only when used.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from trainledger.engines.workspace import (
    EVENTS_FILE,
    METRICS_FILE,
    RUN_FILE,
    InvalidId,
    Workspace,
    atomic_write_json,
    validate_id,
)

MODEL = "tensorboard-import"
RUN_SCHEMA = "trainledger-run/1"
INSTALL_HINT = "pip install 'trainledger[tensorboard]'"
RESERVED = ("step", "epoch", "time")

Status = Literal["imported", "replaced", "unchanged", "conflict"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_HASH_CHUNK = 1 << 20
_encoder = msgspec.json.Encoder()


class TensorBoardImportError(Exception):
    """The logdir cannot be imported (missing, no event files, unreadable)."""


class TensorBoardMissing(TensorBoardImportError, ImportError):
    """The optional `tensorboard` package is not installed."""


@dataclass(frozen=True)
class ImportedRun:
    run_id: str
    tb_run: str  # the run's folder relative to the logdir ("." for the logdir itself)
    path: Path
    status: Status  # imported (new), replaced (source changed), unchanged, conflict (not ours)
    steps: int = 0  # metrics rows written (0 when unchanged or conflict)
    metrics: tuple[str, ...] = ()
    sha256: str = ""
    message: str = ""
    skipped_tags: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------- discovery


def _is_event_file(name: str) -> bool:
    return "tfevents" in name


def find_runs(logdir: Path) -> dict[str, list[Path]]:
    """Map run name (relative folder, "." for the logdir) to its event files, sorted."""
    logdir = Path(logdir)
    runs: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(logdir):
        dirnames.sort()
        files = sorted(f for f in filenames if _is_event_file(f))
        files = [f for f in files if (Path(dirpath) / f).is_file()]
        if files:
            rel = os.path.relpath(dirpath, logdir)
            name = "." if rel == "." else Path(rel).as_posix()
            runs[name] = [Path(dirpath) / f for f in files]
    return runs


def sanitise_run_name(tb_run: str, logdir: Path, prefix: str = "tb-") -> str:
    """A valid run id for `tb_run`: path parts joined with `_`, unsafe characters as `_`."""
    if tb_run == ".":
        parts = [Path(logdir).resolve().name or "root"]
    else:
        parts = [p for p in tb_run.split("/") if p not in ("", ".")]
    body = "_".join(_UNSAFE.sub("_", p) for p in parts).strip("_") or "run"
    run_id = (prefix + body)[:128].lstrip(".")
    if not run_id:
        run_id = "run"
    return validate_id(run_id, "run id")


def _unique_ids(names: list[str], logdir: Path, prefix: str) -> dict[str, str]:
    """Sanitised ids; names that collide after sanitising get a short hash suffix."""
    base = {n: sanitise_run_name(n, logdir, prefix) for n in names}
    counts: dict[str, int] = {}
    for v in base.values():
        counts[v] = counts.get(v, 0) + 1
    out = {}
    for n, v in base.items():
        if counts[v] > 1:
            tag = hashlib.sha256(n.encode()).hexdigest()[:8]
            v = validate_id(f"{v[: 128 - 9]}-{tag}", "run id")
        out[n] = v
    return out


def _digest(files: list[Path], run_dir: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(run_dir).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------------- reading


def _load_tensorboard() -> tuple[Any, Any]:
    try:
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.util import tensor_util
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TensorBoardMissing(
            f"importing TensorBoard logs needs the tensorboard package: {INSTALL_HINT}"
        ) from exc
    return event_accumulator, tensor_util


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def read_scalars(
    run_dir: Path,
) -> tuple[dict[str, list[tuple[float, int, float | None]]], list[str]]:
    """All scalar series in one run folder: {tag: [(wall_time, step, value)]}, skipped tags."""
    event_accumulator, tensor_util = _load_tensorboard()
    acc = event_accumulator.EventAccumulator(
        str(run_dir),
        size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
    )
    try:
        acc.Reload()
    except Exception as exc:  # corrupt or unreadable event file
        raise TensorBoardImportError(f"cannot read events in {run_dir}: {exc}") from exc
    tags = acc.Tags()
    series: dict[str, list[tuple[float, int, float | None]]] = {}
    for tag in tags.get(event_accumulator.SCALARS, []):
        series[tag] = [
            (e.wall_time, int(e.step), _finite(e.value)) for e in acc.Scalars(tag)
        ]
    skipped: list[str] = []
    for tag in tags.get(event_accumulator.TENSORS, []):
        if tag in series:
            continue
        try:
            plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        except (KeyError, AttributeError):
            plugin = ""
        if plugin != "scalars":
            continue  # histograms, text, images, ... are not metrics
        points = []
        for e in acc.Tensors(tag):
            try:
                arr = tensor_util.make_ndarray(e.tensor_proto)
                if arr.size != 1:
                    raise ValueError("not a scalar")
                points.append(
                    (e.wall_time, int(e.step), _finite(arr.reshape(()).item()))
                )
            except (ValueError, TypeError):
                points = None
                break
        if points is None:
            skipped.append(tag)
        else:
            series[tag] = points
    return series, skipped


def _metric_name(tag: str) -> str:
    return f"tb/{tag}" if tag in RESERVED else tag


def build_rows(
    series: dict[str, list[tuple[float, int, float | None]]],
) -> list[dict[str, Any]]:
    """One row per distinct step, every tag's value at that step; `time` = latest wall_time."""
    by_step: dict[int, dict[str, Any]] = {}
    for tag, points in series.items():
        name = _metric_name(tag)
        for (
            wall_time,
            step,
            value,
        ) in points:  # in file order: a later write of a step wins
            row = by_step.setdefault(step, {"step": step, "time": wall_time})
            row["time"] = max(row["time"], wall_time)
            row[name] = value
    return [by_step[s] for s in sorted(by_step)]


# ---------------------------------------------------------------------- writing


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _write_run(
    ws: Workspace, run_id: str, info: dict[str, Any], rows: list[dict[str, Any]]
) -> bool:
    """Write the run folder under a hidden temp name, then rename it into place.

    Returns True if an older folder was replaced. Readers see the old folder or the
    complete new one; while replacing, the id is absent for the instant between two renames.
    """
    runs = ws.runs_dir
    runs.mkdir(parents=True, exist_ok=True)
    target = ws.run_dir(run_id)
    tmp = runs / f".import-{run_id}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    old: Path | None = None
    try:
        atomic_write_json(tmp / RUN_FILE, info)
        with open(tmp / METRICS_FILE, "wb") as fh:
            fh.writelines(_encoder.encode(row) + b"\n" for row in rows)
            fh.flush()
            os.fsync(fh.fileno())
        (tmp / EVENTS_FILE).touch()
        if target.exists():
            old = runs / f".replaced-{run_id}.{secrets.token_hex(4)}.tmp"
            os.rename(target, old)
        os.rename(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.rename(old, target)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
        return True
    return False


def import_logdir(
    logdir: Path, ws: Workspace, prefix: str = "tb-"
) -> list[ImportedRun]:
    """Import every run of a TensorBoard logdir into `ws` as a read-only run folder.

    A run already imported from the same logdir and run is replaced only when its event
    files changed (sha256); otherwise it is left alone and reported `unchanged`. A run
    folder with the same id that is not that import is never touched (`conflict`).
    """
    logdir = Path(logdir).expanduser()
    if not logdir.is_dir():
        raise TensorBoardImportError(f"{logdir} is not a folder")
    if prefix:
        try:
            validate_id(prefix, "prefix")
        except InvalidId as exc:
            raise TensorBoardImportError(str(exc)) from exc
    _load_tensorboard()  # fail early, before touching the workspace
    logdir = logdir.resolve()
    runs = find_runs(logdir)
    if not runs:
        raise TensorBoardImportError(
            f"no TensorBoard event files (events.out.tfevents.*) found under {logdir}"
        )
    ids = _unique_ids(list(runs), logdir, prefix)
    results: list[ImportedRun] = []
    for tb_run, files in runs.items():
        run_id = ids[tb_run]
        run_dir = files[0].parent
        target = ws.run_dir(run_id)
        sha = _digest(files, run_dir)
        source = {
            "logdir": str(logdir),
            "run": tb_run,
            "files": [f.relative_to(logdir).as_posix() for f in files],
            "sha256": sha,
        }
        existing = _read_json(target / RUN_FILE) if target.exists() else None
        if target.exists():
            prev = (existing or {}).get("source")
            ours = (
                existing is not None
                and existing.get("model") == MODEL
                and isinstance(prev, dict)
                and prev.get("logdir") == source["logdir"]
                and prev.get("run") == tb_run
            )
            if not ours:
                results.append(
                    ImportedRun(
                        run_id,
                        tb_run,
                        target,
                        "conflict",
                        sha256=sha,
                        message=f"runs/{run_id} exists and is not an import of {logdir}/{tb_run}; left alone",
                    )
                )
                continue
            if prev.get("sha256") == sha:
                results.append(
                    ImportedRun(run_id, tb_run, target, "unchanged", sha256=sha)
                )
                continue
        series, skipped = read_scalars(run_dir)
        rows = build_rows(series)
        times = [t for points in series.values() for t, _, _ in points]
        info = {
            "schema": RUN_SCHEMA,
            "id": run_id,
            "name": f"{logdir.name}/{tb_run}" if tb_run != "." else logdir.name,
            "model": MODEL,
            "status": "finished",
            "started": min(times) if times else None,
            "ended": max(times) if times else None,
            "host": None,
            "pid": None,
            "argv": [],
            "config": {},
            "metrics": {},
            "primary_metric": None,
            "error": None,
            "read_only": True,
            "imported": time.time(),
            "source": source,
        }
        replaced = _write_run(ws, run_id, info, rows)
        results.append(
            ImportedRun(
                run_id,
                tb_run,
                target,
                "replaced" if replaced else "imported",
                steps=len(rows),
                metrics=tuple(sorted(_metric_name(t) for t in series)),
                sha256=sha,
                skipped_tags=tuple(skipped),
                message=f"{len(rows)} steps, {len(series)} scalar tags",
            )
        )
    return results
