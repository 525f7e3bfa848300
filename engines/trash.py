"""Deleting runs: a deleted run's folder moves to the workspace's trash, and purge empties it.

`delete_run` never removes anything: it renames `runs/<id>/` to
`<ws>/.trainledger/trash/<id>-<UTC yyyymmddTHHMMSSZ>/` (one rename on the same disk, so a
reader sees the run or no run, never half of one). A run that is still running is refused
(RunIsLive): its trainer would go on writing into a folder in the trash. `purge` is the
only place files are removed. The console and `trainledger runs delete|purge` both ask the
user first; these functions do not.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from trainledger.engines.workspace import Workspace, read_run_info, validate_id

TRASH = "trash"
_STAMP = "%Y%m%dT%H%M%SZ"


class RunIsLive(Exception):
    """The run is running (its pid is alive, or it runs on another host): not deleted."""


@dataclass(frozen=True)
class TrashEntry:
    run_id: str
    path: Path
    deleted_at: float | None  # from the folder name's UTC stamp


def trash_dir(ws: Workspace) -> Path:
    return ws.state_dir / TRASH


def live_reason(ws: Workspace, run_id: str) -> str | None:
    """Why run `run_id` counts as live (not to be deleted), or None when it may go."""
    info = read_run_info(ws.run_dir(run_id))  # a dead pid on this host reads as `lost`
    if info.status == "running":
        if info.host and info.host != socket.gethostname():
            return f"run {run_id} is running on {info.host} (pid {info.pid}); stop it there first"
        return f"run {run_id} is running (pid {info.pid}); stop it first"
    return None


def delete_run(ws: Workspace, run_id: str) -> Path:
    """Move run `run_id` to the trash; returns its new folder. Raises RunIsLive for a run that
    is running, FileNotFoundError for no such run, InvalidId for a bad id."""
    src = ws.run_dir(validate_id(run_id, "run id"))
    if not src.is_dir():
        raise FileNotFoundError(f"no run {run_id} in {ws.root}")
    why = live_reason(ws, run_id)
    if why:
        raise RunIsLive(why)
    dest_root = trash_dir(ws)
    dest_root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime(_STAMP, time.gmtime())
    dest = dest_root / f"{run_id}-{stamp}"
    n = 1
    while dest.exists() or dest.is_symlink():  # rename onto an empty folder would succeed
        n += 1
        dest = dest_root / f"{run_id}-{stamp}-{n}"
    os.rename(src, dest)
    return dest


def _split(name: str) -> tuple[str, float | None] | None:
    import calendar
    import re

    m = re.fullmatch(r"(.+)-(\d{8}T\d{6}Z)(?:-\d+)?", name)
    if not m:
        return None
    try:
        when = calendar.timegm(time.strptime(m.group(2), _STAMP))
    except ValueError:
        when = None
    return m.group(1), float(when) if when is not None else None


def list_trash(ws: Workspace) -> list[TrashEntry]:
    """The runs in the trash, oldest deletion first (entries of any other name are ignored)."""
    try:
        entries = list(os.scandir(trash_dir(ws)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for e in entries:
        parsed = _split(e.name)
        if parsed is not None:
            out.append(TrashEntry(parsed[0], Path(e.path), parsed[1]))
    return sorted(out, key=lambda t: (t.deleted_at or 0.0, t.path.name))


def purge(ws: Workspace) -> int:
    """Remove every run in the trash for good; returns how many were removed."""
    count = 0
    for entry in list_trash(ws):
        p = entry.path
        if p.is_symlink() or not p.is_dir():
            p.unlink()  # a link is removed, never what it points to
        else:
            shutil.rmtree(p)
        count += 1
    return count
