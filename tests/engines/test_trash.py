"""Deleting a run moves it to the workspace's trash; purge empties it; a live run stays."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.trash import RunIsLive, delete_run, list_trash, purge, trash_dir
from trainledger.engines.workspace import InvalidId, Workspace, list_runs


def _run(ws: Workspace, run_id: str) -> Path:
    with MetricsWriter(ws, run_id, model="mlp") as w:
        w.log({"loss": 1.0}, step=0)
    return w.dir


def test_delete_moves_the_folder_to_the_trash(ws: Workspace) -> None:
    _run(ws, "keep")
    d = _run(ws, "gone")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "best.safetensors").write_bytes(b"w" * 100)
    dest = delete_run(ws, "gone")
    assert not d.exists() and dest.parent == trash_dir(ws)
    assert dest.name.startswith("gone-") and dest.name.endswith("Z")
    assert (dest / "checkpoints" / "best.safetensors").read_bytes() == b"w" * 100
    assert [r.id for r in list_runs(ws)] == ["keep"]
    (entry,) = list_trash(ws)
    assert entry.run_id == "gone" and entry.path == dest
    assert entry.deleted_at is not None and abs(entry.deleted_at - time.time()) < 120


def test_same_id_deleted_twice_in_a_second_keeps_both(ws: Workspace) -> None:
    _run(ws, "r")
    first = delete_run(ws, "r")
    _run(ws, "r")
    second = delete_run(ws, "r")
    assert first != second and first.is_dir() and second.is_dir()
    assert [e.run_id for e in list_trash(ws)] == ["r", "r"]


def test_purge_removes_the_trash_only(ws: Workspace) -> None:
    _run(ws, "keep")
    for rid in ("a", "b"):
        _run(ws, rid)
        delete_run(ws, rid)
    outside = ws.root.parent / "outside"
    outside.mkdir()
    (outside / "precious").write_text("mine")
    os.symlink(outside, trash_dir(ws) / "link-20260101T000000Z")  # a link: removed, not followed
    (trash_dir(ws) / "notes.txt").write_text("not a trash entry")
    assert purge(ws) == 3
    assert (outside / "precious").read_text() == "mine"
    assert list_trash(ws) == [] and (trash_dir(ws) / "notes.txt").exists()
    assert [r.id for r in list_runs(ws)] == ["keep"]
    assert purge(ws) == 0


@pytest.mark.parametrize("bad", ["..", "../ws", "a/b", ".trainledger", ""])
def test_ids_that_would_escape_are_refused(bad: str, ws: Workspace) -> None:
    _run(ws, "r")
    with pytest.raises(InvalidId):
        delete_run(ws, bad)
    assert (ws.runs_dir / "r").is_dir() and ws.root.is_dir()


def test_unknown_run(ws: Workspace) -> None:
    with pytest.raises(FileNotFoundError):
        delete_run(ws, "nope")


_LIVE = """
import sys, time
from trainledger.engines.metrics.writer import MetricsWriter
w = MetricsWriter(sys.argv[1], "live", model="mlp")
w.log({"loss": 1.0}, step=0)
print("ready", flush=True)
time.sleep(120)
"""


def test_a_running_run_is_never_deleted(ws: Workspace) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _LIVE, str(ws.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(RunIsLive, match="running"):
            delete_run(ws, "live")
        assert (ws.runs_dir / "live" / "run.json").is_file() and list_trash(ws) == []
    finally:
        proc.kill()
        proc.wait()
    # its process is gone: the run reads as lost and can be deleted
    assert delete_run(ws, "live").is_dir()
