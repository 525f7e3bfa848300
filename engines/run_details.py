"""Everything the run screen shows about one run, gathered from its folder without a UI.

The console's run screen (console/screens/run_report.py) calls these from thread workers:
`gather` reads run.json, meta.json, the metrics (through a `RunSeries` the caller keeps, so
each call reads only what was appended), events, checkpoints, system.jsonl and the
malformed-line count; `hash_data` and `hash_checkpoint` hash files (cached by path, size and
mtime, so a second look costs a stat); `LogTail` follows the trainer's log from a bounded
tail. Nothing here imports textual or rich: the same data could feed a CLI.
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from trainledger.engines.metrics.analysis import MetricSummary, summarize_all
from trainledger.engines.metrics.series import Event, RunSeries, SeriesSnapshot
from trainledger.engines.runs import logs_dir
from trainledger.engines.safeio import open_regular_file, read_regular
from trainledger.engines.workspace import RUN_FILE, RUN_FILE_LIMIT, RunInfo, Workspace, read_run_info

LOG_TAIL_BYTES = 2 << 20  # the log is read from at most this far before its end
LOG_MAX_LINES = 50_000  # lines kept for the screen (older ones dropped first)
SYSTEM_TAIL_BYTES = 2 << 20  # system.jsonl: one row a second; the last ~6 hours at most
SYSTEM_POINTS = 240  # rows kept for the small charts (evenly thinned)
SYSTEM_FILE = "system.jsonl"
CHECKPOINT_DIR = "checkpoints"
_CHUNK = 1 << 20
_HASHES: dict[tuple[str, int, int], str] = {}  # (absolute path, size, mtime_ns) -> sha256
_HASHES_MAX = 1024
_decoder = msgspec.json.Decoder()


def log_path(ws: Workspace, run_id: str, raw: dict[str, Any] | None = None) -> Path:
    """The run's log: run.json's `log` when it names one, else `<ws>/.trainledger/logs/<id>.log`."""
    named = (raw or {}).get("log")
    if isinstance(named, str) and named:
        p = Path(named)
        return p if p.is_absolute() else ws.root / p
    return logs_dir(ws) / f"{run_id}.log"


# --------------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class DataFile:
    """The run's data as run.json records it; `sha256` is today's hash, once computed."""

    path: str | None
    kind: str | None  # file, folder, missing, or None (generated / not said)
    recorded_sha256: str | None
    described: str | None = None  # a generated dataset's own words
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    problem: str | None = None

    @property
    def state(self) -> str:
        """'matches', 'changed', 'unhashed', 'no file' or 'not recorded'."""
        if self.problem:
            return "no file"
        if self.sha256 is None:
            return "unhashed" if self.path else "not recorded"
        if self.recorded_sha256 is None:
            return "not recorded"
        return "matches" if self.sha256 == self.recorded_sha256 else "changed"


@dataclass(frozen=True)
class Checkpoint:
    name: str  # best.safetensors
    path: Path
    size: int
    mtime_ns: int
    recorded_sha256: str | None  # the sidecar's
    epoch: float | None = None
    step: float | None = None
    sha256: str | None = None  # today's, once hashed

    @property
    def state(self) -> str:
        if self.sha256 is None:
            return "unhashed"
        if self.recorded_sha256 is None:
            return "no sidecar"
        return "matches" if self.sha256 == self.recorded_sha256 else "changed"


@dataclass(frozen=True)
class SystemSeries:
    """system.jsonl's columns (None where a row lacks the field), thinned to SYSTEM_POINTS."""

    time: tuple[float, ...] = ()
    cpu_percent: tuple[float | None, ...] = ()
    rss_bytes: tuple[float | None, ...] = ()
    gpu_util_percent: tuple[float | None, ...] = ()
    gpu_mem_used_bytes: tuple[float | None, ...] = ()
    gpu_mem_total_bytes: float | None = None
    rows: int = 0  # rows read (before thinning)
    from_tail: bool = False  # the file was longer than SYSTEM_TAIL_BYTES: only its end was read

    def column(self, name: str) -> list[float]:
        return [v for v in getattr(self, name) if v is not None]


@dataclass(frozen=True)
class Timings:
    started: float | None
    ended: float | None
    duration: float | None  # ended (or now, while running) - started
    last_step: float | None
    last_epoch: float | None
    steps_per_s: float | None
    total_epochs: float | None
    total_steps: float | None
    eta_s: float | None  # while running and a total is known


@dataclass(frozen=True)
class RunDetails:
    run_id: str
    info: RunInfo
    name: str | None
    backend: str | None
    device: str | None
    argv: tuple[str, ...] | None
    config: tuple[tuple[str, str], ...]
    data: DataFile | None
    timings: Timings
    metrics: tuple[MetricSummary, ...]
    events: tuple[Event, ...]
    checkpoints: tuple[Checkpoint, ...]
    system: SystemSeries
    malformed: tuple[int, tuple[int, ...]] | None  # (count, first line numbers); None: not counted
    malformed_problem: str | None
    log_path: Path
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # versions, resumes, summary

    @property
    def command(self) -> str | None:
        return command_line(self.argv) if self.argv else None


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """run.json as a dict ({} when missing, unreadable or not an object)."""
    try:
        raw = _decoder.decode(read_regular(run_dir / RUN_FILE, RUN_FILE_LIMIT))
    except (OSError, msgspec.DecodeError, RecursionError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def value_text(value: Any) -> str:
    """A setting's value as one line of text (JSON for lists and objects)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return msgspec.json.encode(value).decode() if not isinstance(value, float) else _float(value)
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError, OverflowError, RecursionError):
        return str(value)


def _float(v: float) -> str:
    return repr(v) if math.isfinite(v) else str(v)


def flatten_config(config: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Every setting as (dotted key, value text), nested objects opened, in file order."""
    if not isinstance(config, dict):
        return [(prefix or "config", value_text(config))] if config not in (None, {}) else []
    out: list[tuple[str, str]] = []
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and depth < 8:
            out.extend(flatten_config(value, name, depth + 1))
        else:
            out.append((name, value_text(value)))
    return out


def command_line(argv: tuple[str, ...] | list[str]) -> str:
    """The argv as a shell would take it (each word quoted where it needs to be). Python puts
    a module's `__main__.py` path first for `python -m`: shown as the command one would type."""
    words = list(argv)
    head = None
    if words and words[0].endswith("__main__.py"):
        parts = Path(words[0]).parts
        if parts[-3:-1] == ("engines", "training"):
            head = "python -m trainledger.engines.training"
        elif len(parts) >= 2 and parts[-2] == "trainledger":
            head = "trainledger"
    if head is None:
        return shlex.join(words)
    return head + ("" if len(words) == 1 else " " + shlex.join(words[1:]))


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def data_of(raw: dict[str, Any]) -> DataFile | None:
    """run.json's `data` (and task_options.data), before any hashing."""
    data = raw.get("data")
    options = raw.get("task_options") if isinstance(raw.get("task_options"), dict) else {}
    path = data.get("path") if isinstance(data, dict) else None
    if not isinstance(path, str):
        path = options.get("data") if isinstance(options.get("data"), str) else None
    if not isinstance(data, dict) and path is None:
        return None
    data = data if isinstance(data, dict) else {}
    sha = data.get("sha256") if isinstance(data.get("sha256"), str) else None
    described = data.get("generated") if isinstance(data.get("generated"), str) else None
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    if path is None and described is None and data:
        described = value_text({k: v for k, v in data.items() if k != "sha256"})
    return DataFile(path, kind, sha, described=described)


def checkpoints_of(run_dir: Path) -> tuple[Checkpoint, ...]:
    """The run's checkpoint files with sizes and their sidecars' sha256, epoch and step."""
    folder = run_dir / CHECKPOINT_DIR
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return ()
    out: list[Checkpoint] = []
    for entry in entries:
        if entry.name.endswith(".json") or entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        st = entry.stat(follow_symlinks=False)
        sidecar: dict[str, Any] = {}
        stem = entry.name.split(".", 1)[0]
        if entry.name == f"{stem}.safetensors":
            try:
                got = _decoder.decode(read_regular(folder / f"{stem}.json", 1 << 20))
                sidecar = got if isinstance(got, dict) else {}
            except (OSError, msgspec.DecodeError, RecursionError, ValueError):
                sidecar = {}
        sha = sidecar.get("sha256") if isinstance(sidecar.get("sha256"), str) else None
        out.append(Checkpoint(entry.name, Path(entry.path), st.st_size, st.st_mtime_ns, sha,
                              _num(sidecar.get("epoch")), _num(sidecar.get("step"))))  # fmt: skip
    return tuple(out)


def _thin(values: list[Any], n: int) -> list[Any]:
    if len(values) <= n:
        return values
    return [values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)]


def read_system(run_dir: Path, tail_bytes: int = SYSTEM_TAIL_BYTES, points: int = SYSTEM_POINTS) -> SystemSeries:
    """system.jsonl's last `tail_bytes` as columns (bad lines skipped), thinned to `points`."""
    try:
        with open_regular_file(run_dir / SYSTEM_FILE) as fh:
            size = os.fstat(fh.fileno()).st_size
            start = max(0, size - tail_bytes)
            fh.seek(start)
            data = fh.read(tail_bytes)
    except OSError:
        return SystemSeries()
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first is cut
    if data and not data.endswith(b"\n"):
        lines = lines[:-1]  # being written
    rows: list[dict[str, Any]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = _decoder.decode(line)
        except (msgspec.DecodeError, RecursionError):
            continue
        if isinstance(row, dict) and _num(row.get("time")) is not None:
            rows.append(row)
    total = next((t for r in reversed(rows) if (t := _num(r.get("gpu_mem_total_bytes"))) is not None), None)
    kept = _thin(rows, points)
    col = lambda key: tuple(_num(r.get(key)) for r in kept)  # noqa: E731
    return SystemSeries(tuple(float(r["time"]) for r in kept), col("cpu_percent"), col("rss_bytes"),
                        col("gpu_util_percent"), col("gpu_mem_used_bytes"), total, len(rows), start > 0)  # fmt: skip


def _total(config: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        v = _num(config.get(key))
        if v is not None and v > 0:
            return v
    return None


def timings_of(info: RunInfo, snap: SeriesSnapshot | None, now: float) -> Timings:
    """Start, end, duration, steps/s over the rows' own times, and the ETA of a running run."""
    running = info.status == "running"
    end = info.ended if info.ended is not None else (now if running else None)
    duration = end - info.started if end is not None and info.started is not None else None
    last_step = last_epoch = rate = eta = None
    total_epochs = _total(info.config, "epochs", "max_epochs", "num_epochs")
    total_steps = _total(info.config, "steps", "max_steps", "total_steps")
    if snap is not None and snap.n:
        import numpy as np

        steps, times, epochs = snap.step, snap.time, snap.epoch
        ok = np.flatnonzero(np.isfinite(steps) & np.isfinite(times))
        if ok.size:
            last_step = float(steps[ok[-1]])
            good_e = np.flatnonzero(np.isfinite(epochs))
            last_epoch = float(epochs[good_e[-1]]) if good_e.size else None
            if ok.size >= 2:
                dt = float(times[ok[-1]] - times[ok[0]])
                ds = float(steps[ok[-1]] - steps[ok[0]])
                if dt > 0 and ds > 0:
                    rate = ds / dt
            if running and rate:
                if total_steps is not None and last_step is not None and total_steps > last_step:
                    eta = (total_steps - last_step) / rate
                elif total_epochs is not None and last_epoch is not None and good_e.size >= 2 and last_epoch > 0:
                    per_epoch = last_step / last_epoch if last_step else None  # steps per epoch so far
                    if per_epoch and total_epochs > last_epoch:
                        eta = (total_epochs - last_epoch) * per_epoch / rate
    return Timings(info.started, info.ended, duration, last_step, last_epoch, rate, total_epochs, total_steps, eta)


MALFORMED_SMALL = 8 << 20  # a metrics.jsonl up to this size is recounted whenever it changes
MALFORMED_EVERY_S = 30.0  # a bigger one at most this often (a full parse each time)
_MALFORMED: dict[str, tuple[int, int, float, tuple[int, tuple[int, ...]]]] = {}


def _malformed(run_dir: Path) -> tuple[tuple[int, tuple[int, ...]] | None, str | None]:
    """(count, line numbers) from engines/metrics/malformed, remembered by the file's size and
    mtime; a big file that keeps growing is recounted at most every MALFORMED_EVERY_S."""
    import time as _time

    try:
        from trainledger.engines.metrics.malformed import malformed_lines
    except ImportError:
        return None, "malformed-line counting is not available in this version"
    path = run_dir / "metrics.jsonl"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (0, ()), None
    except OSError as exc:
        return None, f"metrics.jsonl cannot be read: {exc.strerror or exc}"
    key, now = str(path.absolute()), _time.monotonic()
    seen = _MALFORMED.get(key)
    if seen is not None:
        size, mtime, when, result = seen
        if (size, mtime) == (st.st_size, st.st_mtime_ns):
            return result, None
        if st.st_size > MALFORMED_SMALL and st.st_size >= size and now - when < MALFORMED_EVERY_S:
            return result, None  # grown since: counted again soon
    try:
        count, lines = malformed_lines(path)
    except FileNotFoundError:
        return (0, ()), None
    except OSError as exc:
        return None, f"metrics.jsonl cannot be read: {exc.strerror or exc}"
    result = (int(count), tuple(int(n) for n in lines))
    if len(_MALFORMED) > 256:
        _MALFORMED.clear()
    _MALFORMED[key] = (st.st_size, st.st_mtime_ns, now, result)
    return result, None


def _extra(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for key in ("versions", "summary", "resumes", "task_options"):
        if key in raw and raw[key] not in (None, {}, []):
            out.extend(flatten_config(raw[key], key))
    return tuple(out)


def gather(ws: Workspace, run_id: str, series: RunSeries | None = None, now: float | None = None) -> RunDetails:
    """Everything about `run_id` but the hashes (see hash_data, hash_checkpoint) and the log text."""
    import time as _time

    run_dir = ws.run_dir(run_id)
    info = read_run_info(run_dir)
    raw = read_run_json(run_dir)
    name = info.name
    try:
        from trainledger.engines.runmeta import read_meta

        meta_name = read_meta(run_dir).name
        name = meta_name or name
    except ImportError:
        pass
    snap = None
    if series is not None:
        series.refresh()
        snap = series.snapshot()
    argv = raw.get("argv")
    argv_t = tuple(str(a) for a in argv) if isinstance(argv, list) and argv else None
    malformed, malformed_problem = _malformed(run_dir)
    text = lambda key: raw[key] if isinstance(raw.get(key), str) else None  # noqa: E731
    device = text("device") or (info.config.get("device") if isinstance(info.config.get("device"), str) else None)
    return RunDetails(
        run_id=run_id,
        info=info,
        name=name,
        backend=text("backend"),
        device=device,
        argv=argv_t,
        config=tuple(flatten_config(info.config)),
        data=data_of(raw),
        timings=timings_of(info, snap, _time.time() if now is None else now),
        metrics=tuple(summarize_all(snap, info.directions).values()) if snap is not None else (),
        events=snap.events if snap is not None else (),
        checkpoints=checkpoints_of(run_dir),
        system=read_system(run_dir),
        malformed=malformed,
        malformed_problem=malformed_problem,
        log_path=log_path(ws, run_id, raw),
        extra=_extra(raw),
    )


# --------------------------------------------------------------------------- hashing


def sha256_cached(path: Path) -> tuple[str, int, int]:
    """(sha256, size, mtime_ns) of a regular file; cached by (path, size, mtime_ns)."""
    with open_regular_file(path) as fh:
        st = os.fstat(fh.fileno())
        key = (str(Path(path).absolute()), st.st_size, st.st_mtime_ns)
        if key in _HASHES:
            return _HASHES[key], st.st_size, st.st_mtime_ns
        h = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    if len(_HASHES) >= _HASHES_MAX:
        _HASHES.clear()
    _HASHES[key] = h.hexdigest()
    return _HASHES[key], st.st_size, st.st_mtime_ns


def hash_data(data: DataFile, root: Path | None = None) -> DataFile:
    """`data` with today's sha256 of its path (a folder: the tree hash the trainer records)."""
    if not data.path:
        return data
    p = Path(data.path)
    if not p.is_absolute() and root is not None:
        p = root / p
    try:
        if p.is_dir():
            from trainledger.engines.training.provenance import sha256_tree  # torch-free

            digest = sha256_tree(p)
            st = p.stat()
            return _replace(data, sha256=digest, size=None, mtime_ns=st.st_mtime_ns, problem=None)
        digest, size, mtime = sha256_cached(p)
    except OSError as exc:
        return _replace(data, problem=f"{exc.strerror or exc}")
    return _replace(data, sha256=digest, size=size, mtime_ns=mtime, problem=None)


def hash_checkpoint(ckpt: Checkpoint) -> Checkpoint:
    try:
        digest, size, mtime = sha256_cached(ckpt.path)
    except OSError:
        return ckpt
    return _replace(ckpt, sha256=digest, size=size, mtime_ns=mtime)


def _replace(obj: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(obj, **changes)


# --------------------------------------------------------------------------- the log


@dataclass(frozen=True)
class LogChunk:
    lines: tuple[str, ...]  # complete new lines (a trailing partial line waits for its end)
    reset: bool  # the file was replaced or truncated: drop what was shown before
    exists: bool
    skipped_bytes: int = 0  # bytes before the tail that were not read (first read of a big log)
    size: int = 0


def log_line(raw: str) -> str:
    """A log line as a terminal would leave it: the text after the last carriage return
    (progress bars), tabs expanded. Control characters stay for the caller's `clean`."""
    if "\r" in raw:
        parts = [p for p in raw.split("\r") if p]
        raw = parts[-1] if parts else ""
    return raw.expandtabs(8)


class LogTail:
    """Follows one log file: the first poll reads its last `tail_bytes`, each later poll what
    was appended since. A replaced (new inode) or truncated file starts again (`reset`).
    Not thread-safe: one worker at a time polls it."""

    def __init__(self, path: Path, tail_bytes: int = LOG_TAIL_BYTES) -> None:
        self.path = Path(path)
        self.tail_bytes = tail_bytes
        self._ino: int | None = None
        self._offset = 0
        self._partial = b""
        self._started = False

    def poll(self, max_bytes: int | None = None) -> LogChunk:
        limit = max_bytes or self.tail_bytes
        try:
            fh = open_regular_file(self.path)
        except OSError:
            was = self._started
            self._ino, self._offset, self._partial, self._started = None, 0, b"", False
            return LogChunk((), reset=was, exists=False)
        with fh:
            st = os.fstat(fh.fileno())
            reset = False
            skipped = 0
            if self._ino != st.st_ino or st.st_size < self._offset:
                reset = self._started
                self._ino, self._partial = st.st_ino, b""
                self._offset = max(0, st.st_size - self.tail_bytes)
                skipped = self._offset
                cut_first = self._offset > 0
            else:
                cut_first = False
            self._started = True
            if st.st_size > self._offset + limit:  # fell far behind: jump to the tail
                self._offset = st.st_size - limit
                self._partial, cut_first, reset = b"", True, True
            fh.seek(self._offset)
            data = fh.read(min(limit, max(0, st.st_size - self._offset)))
        self._offset += len(data)
        data = self._partial + data
        if cut_first:
            nl = data.find(b"\n")
            data = data[nl + 1 :] if nl >= 0 else b""
        parts = data.split(b"\n")
        self._partial = parts.pop()  # after the last newline: incomplete (or b"")
        if len(self._partial) > limit:
            parts.append(self._partial)
            self._partial = b""
        lines = tuple(log_line(p.decode("utf-8", "replace")) for p in parts)
        return LogChunk(lines, reset=reset, exists=True, skipped_bytes=skipped, size=st.st_size)
