"""Bounded, regular-file-only reading for the file checks: JSON, JSON Lines, sidecars, run logs.

Nothing here blocks on a FIFO or reads past a limit (engines/safeio.py), nothing imports
torch. A file that cannot be read is a `FileProblem` whose text is the one line a check
puts in its reason; a JSON line that does not parse names its line number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainledger.engines.provenance.subject import Subject
from trainledger.engines.safeio import open_regular_file, read_regular
from trainledger.engines.workspace import EVENTS_FILE, METRICS_FILE, Workspace

JSON_LIMIT = 256 << 20  # one JSON artifact (a saved model of seed 001's kind)
JSONL_LIMIT = 1 << 30  # one JSON Lines file, all lines together
LINE_LIMIT = 16 << 20  # one line of it
SIDECAR_LIMIT = 1 << 20


class FileProblem(ValueError):
    """A file a check needs that is missing, not regular, too large or not what it should be."""


def evidence(ws: Workspace, path: Path) -> str:
    """Workspace-relative POSIX when inside the workspace, else the absolute path."""
    p = Path(path).absolute()
    try:
        return p.relative_to(Path(ws.root).absolute()).as_posix()
    except ValueError:
        return str(p)


def user_path(ws: Workspace, text: str | Path) -> Path:
    """A path from an option: as given when it exists (relative to the current folder), else
    relative to the workspace root when that exists, else as given (the read then says so)."""
    p = Path(text).expanduser()
    if p.is_absolute() or p.exists():
        return p
    inside = Path(ws.root) / p
    return inside if inside.exists() else p


def _why(path: Path, exc: OSError) -> FileProblem:
    if isinstance(exc, FileNotFoundError):
        return FileProblem(f"{path.name}: no such file")
    return FileProblem(f"{path.name}: {exc.strerror or exc}")


def read_json(path: Path, limit: int = JSON_LIMIT) -> Any:
    """One JSON document; FileProblem naming the line of a syntax error."""
    try:
        data = read_regular(path, limit)
    except OSError as exc:
        raise _why(path, exc) from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileProblem(f"{path.name}: line {line}: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise FileProblem(f"{path.name}: line {exc.lineno}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise FileProblem(f"{path.name}: nested too deeply to read") from None


def iter_lines(path: Path, limit: int = JSONL_LIMIT) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a regular file, at most `limit` bytes in all; a line over
    LINE_LIMIT is a FileProblem naming it. A last line without its newline is still a line."""
    try:
        fh = open_regular_file(path)
    except OSError as exc:
        raise _why(path, exc) from None
    total = 0
    with fh:
        for lineno, line in enumerate(iter(lambda: fh.readline(LINE_LIMIT + 1), b""), start=1):
            if len(line) > LINE_LIMIT:
                raise FileProblem(f"{path.name}: line {lineno} is longer than {LINE_LIMIT} bytes")
            total += len(line)
            if total > limit:
                raise FileProblem(f"{path.name}: larger than the {limit}-byte limit")
            yield lineno, line


def parse_line(line: bytes) -> Any:
    """A JSON value from one line; ValueError (with a short why) when it is not one."""
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def jsonl_objects(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a log file (metrics.jsonl, events.jsonl) and how many lines were not
    objects (skipped, as the console's reader skips them). Missing file: ([], 0)."""
    rows: list[dict[str, Any]] = []
    bad = 0
    if not path.exists():
        return rows, 0
    for _, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = parse_line(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            rows.append(obj)
        else:
            bad += 1
    return rows, bad


def number(value: Any) -> float | None:
    """A finite float from a JSON number (bools are not numbers), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """A checkpoint sidecar (checkpoints/<tag>.json) as an object, None when missing or unreadable."""
    try:
        obj = read_json(path, SIDECAR_LIMIT)
    except FileProblem:
        return None
    return obj if isinstance(obj, dict) else None


class RunLogs:
    """A run's metrics.jsonl and events.jsonl, each read once on first use."""

    def __init__(self, ws: Workspace, subject: Subject) -> None:
        self.ws = ws
        self.run_dir = subject.run_dir
        self._metrics: list[dict[str, Any]] | None = None
        self._events: list[dict[str, Any]] | None = None
        self.skipped = 0

    @property
    def metrics_path(self) -> Path | None:
        return self.run_dir / METRICS_FILE if self.run_dir else None

    @property
    def events_path(self) -> Path | None:
        return self.run_dir / EVENTS_FILE if self.run_dir else None

    def metrics(self) -> list[dict[str, Any]]:
        if self._metrics is None:
            self._metrics, bad = jsonl_objects(self.metrics_path) if self.metrics_path else ([], 0)
            self.skipped += bad
        return self._metrics

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if self._events is None:
            self._events, bad = jsonl_objects(self.events_path) if self.events_path else ([], 0)
            self.skipped += bad
        return [e for e in self._events if kind is None or e.get("kind") == kind]

    def evidence(self, *names: str) -> tuple[str, ...]:
        """The evidence strings of the named run files that exist."""
        if not self.run_dir:
            return ()
        return tuple(evidence(self.ws, self.run_dir / n) for n in names if (self.run_dir / n).is_file())
