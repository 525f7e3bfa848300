"""A running port server records itself in the workspace, so `ports status` and the Ports pane
find servers started by hand (`trainledger serve`) as well as by `ports up`.

`.trainledger/ports/<port>.json`, written atomically at start and removed at exit by the pid
that wrote it. Whether a recorded server is alive is checked against its recorded command
line (engines/procs.py), so a stale or forged record never names an unrelated process.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from trainledger.engines.safeio import read_regular
from trainledger.engines.workspace import Workspace, atomic_write_json

SCHEMA = "trainledger-port/1"
RECORD_LIMIT = 64 << 10
MAX_PORT = 65535


@dataclass(frozen=True)
class PortRecord:
    port: int
    host: str
    url: str
    model: str | None  # None: the passthrough port
    kind: str | None
    pid: int
    started_at: float
    argv: tuple[str, ...] = ()
    token_required: bool = False
    log: str | None = None
    alive: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("alive")
        out["argv"] = list(self.argv)
        return {"schema": SCHEMA, **out}


def ports_dir(ws: Workspace) -> Path:
    return ws.state_dir / "ports"


def record_path(ws: Workspace, port: int) -> Path:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= MAX_PORT:
        raise ValueError(f"a port is a whole number from 1 to {MAX_PORT}, not {port!r}")
    return ports_dir(ws) / f"{port}.json"


def log_path(ws: Workspace, port: int) -> Path:
    return ws.state_dir / "logs" / f"port-{int(port)}.log"


def write_record(ws: Workspace, rec: PortRecord) -> None:
    path = record_path(ws, rec.port)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, rec.to_json())


def remove_record(ws: Workspace, port: int) -> None:
    """Remove the record of `port` if this process wrote it (a newer server's stays)."""
    path = record_path(ws, port)
    try:
        data = msgspec.json.decode(read_regular(path, RECORD_LIMIT))
        if isinstance(data, dict) and data.get("pid") == os.getpid():
            os.unlink(path)
    except (OSError, ValueError, msgspec.DecodeError):
        pass


def _decode(raw: Any) -> PortRecord:
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise ValueError("not a trainledger port record")
    argv = raw.get("argv") or []
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv is not a list of strings")
    model, kind, log = raw.get("model"), raw.get("kind"), raw.get("log")
    for name, value in (("model", model), ("kind", kind), ("log", log)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} is not a string")
    port, pid = raw.get("port"), raw.get("pid")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (port, pid)):
        raise ValueError("port or pid is not a whole number")
    return PortRecord(port=port, host=str(raw.get("host", "")), url=str(raw.get("url", "")), model=model,
                      kind=kind, pid=pid, started_at=float(raw.get("started_at", 0.0)), argv=tuple(argv),
                      token_required=bool(raw.get("token_required")), log=log)  # fmt: skip


def is_alive(rec: PortRecord) -> bool:
    """The recorded pid runs, started no later than recorded, with the recorded command line."""
    from trainledger.engines.procs import Launched, is_same_process

    if rec.pid <= 0 or not rec.argv:
        return False
    try:
        return is_same_process(Launched(rec.pid, rec.started_at, rec.argv))
    except Exception:  # noqa: BLE001 - cannot tell: not claimed alive
        return False


def read_records(ws: Workspace) -> list[PortRecord]:
    """Every readable record, sorted by port, with `alive` checked; unreadable ones are skipped."""
    out: list[PortRecord] = []
    try:
        entries = sorted(os.scandir(ports_dir(ws)), key=lambda e: e.name)
    except FileNotFoundError:
        return out
    for entry in entries:
        if not entry.name.endswith(".json"):
            continue
        try:
            rec = _decode(msgspec.json.decode(read_regular(Path(entry.path), RECORD_LIMIT)))
        except (OSError, ValueError, TypeError, msgspec.DecodeError):
            continue
        if entry.name != f"{rec.port}.json":
            continue  # a record under another port's name is not trusted
        out.append(PortRecord(**{**asdict(rec), "argv": rec.argv, "alive": is_alive(rec)}))
    return sorted(out, key=lambda r: r.port)
