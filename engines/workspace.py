"""The workspace: a folder with a marker file that every process reads and writes.

Trainers, the capture server and the port servers write here; the console only reads
and is told of changes. This module owns the layout, the id rules that keep names from
becoming paths outside the workspace, and the classification of file changes.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import msgspec

from trainledger.engines.pids import pid_alive
from trainledger.engines.safeio import FileTooLarge, NotRegularFile, read_regular

MARKER = ".trainledger-workspace"
MARKER_SCHEMA = "trainledger-workspace/1"
ENV_WORKSPACE = "TRAINLEDGER_WORKSPACE"

RUNS = "runs"
CAPTURES = "san-training"
REGISTRY = "registry"
PORTS_FILE = "ports.toml"  # which model each port serves (engines/serving/portsfile.py)
LEGACY_PORTS_FILE = "ports.json"  # what init wrote before ports.toml; never read, still watched
PORTS_TEMPLATE = """\
# trainledger ports: which model each port serves (trainledger ports up).
# One [[port]] table per port; none is served until you add one, for example:
#
# [[port]]
# port = 9001
# model = "lvm-amn"        # a registry model name: the server serves its active version and canary
#
# [[port]]
# port = 9005
# passthrough = true       # the baseline port: no model, the last context vector back
# dim = 64                 # passthrough only: the vector size it checks
#
# Optional in any entry:
# host = "127.0.0.1"       # beyond loopback a token is needed ($TRAINLEDGER_SERVE_TOKEN)
# fault = ["v3:error=0.3,latency_ms=200"]   # testing aid: injected failures for one version
"""
REGISTRY_NOTICE = "changed"  # registry/changed: rewritten after every registry commit
STATE_DIR = ".trainledger"

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"
RUN_FILE_LIMIT = 4 << 20  # a run.json is a few KB; past this it is refused, not read

_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


class InvalidId(ValueError):
    """An id that would not be a safe single path component."""


class NotAWorkspace(FileNotFoundError):
    """The folder has no workspace marker."""


def validate_id(value: str, kind: str = "id") -> str:
    """Return `value` if it is safe as one path component, else raise InvalidId.

    Allowed: 1-128 characters of letters, digits, `.`, `_` and `-`, not `.` or `..`
    and not starting with `.` (no hidden files, no traversal, no separators).
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidId(f"invalid {kind} {value!r}: use 1-128 of A-Z a-z 0-9 . _ -")
    if value.startswith("."):
        raise InvalidId(f"invalid {kind} {value!r}: must not start with '.'")
    return value


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes files 0600; an atomically written file should get the mode a plain
# open() would give it (other users of a shared training box may read run folders).
_FILE_MODE = 0o666 & ~_read_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS

    @property
    def captures_dir(self) -> Path:
        return self.root / CAPTURES

    @property
    def registry_dir(self) -> Path:
        return self.root / REGISTRY

    @property
    def ports_file(self) -> Path:
        return self.root / PORTS_FILE

    @property
    def state_dir(self) -> Path:
        """Private state of trainledger itself (caches, pid files); safe to delete."""
        return self.root / STATE_DIR

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / validate_id(run_id, "run id")

    def run_ids(self) -> list[str]:
        """Ids of the run folders, sorted; folders with invalid names are ignored."""
        try:
            entries = list(os.scandir(self.runs_dir))
        except FileNotFoundError:
            return []
        ids = []
        for entry in entries:
            if entry.is_dir() and _ID_RE.fullmatch(entry.name) and not entry.name.startswith("."):
                ids.append(entry.name)
        return sorted(ids)


def is_workspace(path: Path) -> bool:
    return (Path(path) / MARKER).is_file()


def init_workspace(path: Path | str) -> Workspace:
    """Create (or adopt) a workspace at `path`; idempotent."""
    root = Path(path).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    for sub in (RUNS, CAPTURES, REGISTRY):
        (root / sub).mkdir(exist_ok=True)
    marker = root / MARKER
    if not marker.exists():
        atomic_write_json(
            marker,
            {"schema": MARKER_SCHEMA, "created": time.time(), "host": socket.gethostname()},
        )
    ports = root / PORTS_FILE
    if not ports.exists():  # an older workspace's ports.json is left as it is
        atomic_write_bytes(ports, PORTS_TEMPLATE.encode())
    return Workspace(root)


def open_workspace(path: Path | str) -> Workspace:
    root = Path(path).expanduser().resolve()
    if not is_workspace(root):
        raise NotAWorkspace(
            f"{root} is not a trainledger workspace (no {MARKER}); "
            f"create one with: trainledger init {root}"
        )
    return Workspace(root)


def default_workspace_dir() -> Path:
    """The per-user default workspace, in the platform's user data folder."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("trainledger", appauthor=False)) / "workspace"


def default_demo_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("trainledger", appauthor=False)) / "demo"


Origin = Literal["argument", "environment", "current folder", "default"]


def resolve_workspace(
    arg: str | os.PathLike[str] | None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    *,
    create_explicit: bool = True,
    create_default: bool = True,
) -> tuple[Workspace, Origin]:
    """Find the workspace to open, in the order the README gives.

    The argument, else $TRAINLEDGER_WORKSPACE, else the current folder if it holds a
    marker, else the default workspace. Commands that write (train, capture serve,
    import) make a missing or empty folder a workspace; commands that only read pass
    `create_explicit=False` (a typo must not leave a workspace behind: NotAWorkspace,
    naming the folder and `trainledger init`) and `create_default=False` where even the
    default should not appear unasked.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    if arg:
        return _explicit(Path(arg), create_explicit), "argument"
    if env.get(ENV_WORKSPACE):
        return _explicit(Path(env[ENV_WORKSPACE]), create_explicit, ENV_WORKSPACE), "environment"
    if is_workspace(cwd):
        return Workspace(cwd.resolve()), "current folder"
    default = default_workspace_dir()
    if create_default:
        return init_workspace(default), "default"
    if is_workspace(default):
        return Workspace(default.resolve()), "default"
    raise NotAWorkspace(
        f"no workspace yet: none given, none in the current folder, and the default "
        f"({default}) does not exist; create one with: trainledger init DIR"
    )


def _explicit(path: Path, create: bool, via: str | None = None) -> Workspace:
    path = path.expanduser()
    if is_workspace(path):
        return Workspace(path.resolve())
    named = f"{path} (from ${via})" if via else str(path)
    empty = path.is_dir() and not any(path.iterdir())
    if create and (not path.exists() or empty):
        return init_workspace(path)
    if not path.exists():
        raise NotAWorkspace(
            f"{named} does not exist; to make a workspace there: trainledger init {path}"
        )
    if not path.is_dir():
        raise NotAWorkspace(f"{named} is a file, not a workspace folder")
    what = "an empty folder" if empty else "a folder with files"
    raise NotAWorkspace(
        f"{named} is {what} but no workspace (no {MARKER}); "
        f"to make it one: trainledger init {path}"
    )


# --------------------------------------------------------------------------- runs

RunStatus = Literal["running", "finished", "stopped", "failed", "lost", "unknown"]


@dataclass(frozen=True)
class RunInfo:
    """What run.json says about a run, plus what we could check (a dead pid is `lost`)."""

    id: str
    path: Path
    status: str = "unknown"
    name: str | None = None
    model: str | None = None
    started: float | None = None
    ended: float | None = None
    host: str | None = None
    pid: int | None = None
    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    directions: dict[str, str] = field(default_factory=dict)
    primary_metric: str | None = None
    problem: str | None = None  # why run.json could not be read, if it could not
    tags: tuple[str, ...] = ()  # tags, note, archived and a rename: meta.json (engines/runmeta.py)
    note: str = ""
    archived: bool = False

    @property
    def label(self) -> str:
        return self.name or self.id


def read_run_info(run_dir: Path, check_pid: bool = True) -> RunInfo:
    """run.json read leniently (a run folder with a missing or bad file still shows), with
    meta.json's name, tags, note and archived on top."""
    from trainledger.engines.runmeta import read_meta

    info = _read_run_json(run_dir, check_pid)
    meta = read_meta(run_dir)
    return replace(info, name=meta.name or info.name, tags=meta.tags, note=meta.note, archived=meta.archived)


def _read_run_json(run_dir: Path, check_pid: bool) -> RunInfo:
    run_id = run_dir.name
    try:  # never blocks (a FIFO), never reads without bound (/dev/zero, a huge file)
        raw = msgspec.json.decode(read_regular(run_dir / RUN_FILE, RUN_FILE_LIMIT))
    except FileNotFoundError:
        return RunInfo(id=run_id, path=run_dir, problem="no run.json")
    except (NotRegularFile, FileTooLarge) as exc:
        return RunInfo(id=run_id, path=run_dir, problem=str(exc))
    except RecursionError:
        return RunInfo(id=run_id, path=run_dir, problem="run.json unreadable: nested too deeply")
    except (OSError, msgspec.DecodeError) as exc:
        return RunInfo(id=run_id, path=run_dir, problem=f"run.json unreadable: {exc}")
    if not isinstance(raw, dict):
        return RunInfo(id=run_id, path=run_dir, problem="run.json is not an object")

    def num(key: str) -> float | None:
        v = raw.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def text(key: str) -> str | None:
        v = raw.get(key)
        return v if isinstance(v, str) else None

    metrics = raw.get("metrics") if isinstance(raw.get("metrics"), dict) else {}
    directions = {}
    for name, spec in metrics.items():
        if isinstance(spec, dict) and spec.get("direction") in ("min", "max"):
            directions[str(name)] = spec["direction"]
    pid = raw.get("pid") if isinstance(raw.get("pid"), int) else None
    status = text("status") or "unknown"
    host = text("host")
    if check_pid and status == "running" and pid and host == socket.gethostname():
        if not pid_alive(pid):
            status = "lost"
    return RunInfo(
        id=run_id,
        path=run_dir,
        status=status,
        name=text("name"),
        model=text("model"),
        started=num("started"),
        ended=num("ended"),
        host=host,
        pid=pid,
        error=text("error"),
        config=raw.get("config") if isinstance(raw.get("config"), dict) else {},
        directions=directions,
        primary_metric=text("primary_metric"),
    )


def list_runs(ws: Workspace, check_pid: bool = True) -> list[RunInfo]:
    return [read_run_info(ws.runs_dir / rid, check_pid) for rid in ws.run_ids()]


def resolve_run(ws: Workspace, id_or_name: str) -> RunInfo:
    """The run `id_or_name` means: a run id first, else the one run with that name.

    ValueError (unknown, or a name several runs share, listing their ids) otherwise.
    """
    from trainledger.engines.runmeta import resolve_by_name

    return resolve_by_name(ws, id_or_name)


# --------------------------------------------------------------------------- changes

ChangeKind = Literal["metrics", "events", "run", "runs", "capture", "registry", "ports"]


@dataclass(frozen=True)
class WorkspaceChange:
    kind: ChangeKind
    run_id: str | None = None
    path: Path | None = None
    name: str | None = None  # what a registry change concerns: the model's folder


def classify_change(root: Path, path: str | Path) -> WorkspaceChange | None:
    """Map a changed path to what it means for the console, or None to ignore it."""
    p = Path(path)
    try:
        rel = p.relative_to(root)
    except ValueError:
        return None
    parts = rel.parts
    if not parts:
        return None
    name = parts[-1]
    if name.endswith(".tmp") or parts[0] == STATE_DIR:
        return None
    top = parts[0]
    if top == RUNS:
        if len(parts) == 1:
            return WorkspaceChange("runs")
        run_id = parts[1]
        if not _ID_RE.fullmatch(run_id) or run_id.startswith("."):
            return None
        if len(parts) == 2:
            return WorkspaceChange("runs", run_id, p)
        if len(parts) == 3:
            if name == METRICS_FILE:
                return WorkspaceChange("metrics", run_id, p)
            if name == EVENTS_FILE:
                return WorkspaceChange("events", run_id, p)
            if name in (RUN_FILE, "meta.json"):  # meta.json: a rename, tags, archived
                return WorkspaceChange("run", run_id, p)
        return None
    if top == CAPTURES:
        return WorkspaceChange("capture", None, p)
    if top == REGISTRY:
        # Only the notice the store rewrites after each commit (engines/registry/store.py):
        # registry.db and its -wal/-shm also change when a reader merely opens them, and
        # artifacts are written before the commit that makes them mean anything.
        if parts[1:] == (REGISTRY_NOTICE,):
            return WorkspaceChange("registry", None, p)
        return None
    if top in (PORTS_FILE, LEGACY_PORTS_FILE) and len(parts) == 1:
        return WorkspaceChange("ports", None, p)
    return None
