"""`trainledger.init`: a script's run with a name, a config and tags, ended by its `with` block
(real scripts in subprocesses, read back through the engines the console uses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from trainledger.engines.runmeta import META_FILE
from trainledger.engines.workspace import Workspace, init_workspace, list_runs


def _script(code: str, ws: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINLEDGER_WORKSPACE": str(ws)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_a_block_that_raises_ends_failed_with_the_exception(ws: Workspace) -> None:
    code = """
import pathlib, trainledger
with trainledger.init(name="x", config={"lr": 3e-4, "batch": 32, "data": pathlib.Path("/d"), "layers": [64, 64]},
                      tags=["sweep", "lr-3e-4"]) as run:
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1)}, step=step, epoch=step / 3)
    trainledger.log({"loss": 0.1}, step=3)  # the one-line API writes into the same run
    raise RuntimeError("split_size can only be 0 if dimension size is 0, but got dimension size of 12")
"""
    out = _script(code, ws.root)
    assert out.returncode == 1 and "RuntimeError" in out.stderr
    (info,) = list_runs(ws)
    assert info.status == "failed" and info.name == "x"
    assert info.error == "RuntimeError: split_size can only be 0 if dimension size is 0, but got dimension size of 12"
    assert info.config == {"lr": 3e-4, "batch": 32, "data": "/d", "layers": [64, 64]}
    assert info.tags == ("sweep", "lr-3e-4")
    meta = json.loads((info.path / META_FILE).read_text())
    assert meta["tags"] == ["sweep", "lr-3e-4"] and meta["name"] is None  # the name is run.json's
    rows = [json.loads(line) for line in (info.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and rows[1]["epoch"] == 1 / 3


def test_finish_then_log_starts_a_new_run(tmp_path: Path) -> None:
    root = tmp_path / "new-ws"  # a folder that is not there yet becomes a workspace, as for train
    code = f"""
import trainledger
run = trainledger.init(name="first", config={{"seed": 1}}, workspace={str(root)!r})
run.log({{"acc": 0.5}})
run.log({{"acc": 0.75}})
run.finish()
trainledger.log({{"acc": 0.9}}, step=0)  # after finish: trainledger.log's own run, as today
"""
    out = _script(code, tmp_path / "unused")  # $TRAINLEDGER_WORKSPACE
    assert out.returncode == 0, out.stderr
    ws = init_workspace(root)
    runs = {r.name: r for r in list_runs(ws)}
    assert runs["first"].status == "finished" and runs["first"].config == {"seed": 1}
    assert runs["first"].tags == () and not (runs["first"].path / META_FILE).exists()
    assert len(runs) == 1
    (other,) = list_runs(init_workspace(tmp_path / "unused"))  # where trainledger.log finds a workspace
    assert other.status == "finished" and other.name is None


def test_a_clean_block_and_ctrl_c(ws: Workspace) -> None:
    ok = _script("import trainledger\nwith trainledger.init(name='ok') as r:\n    r.log({'a': 1})\n", ws.root)
    assert ok.returncode == 0, ok.stderr
    stop = _script("import trainledger\nwith trainledger.init(name='stop') as r:\n    raise KeyboardInterrupt\n",
                   ws.root)  # fmt: skip
    assert stop.returncode != 0
    assert {r.name: r.status for r in list_runs(ws)} == {"ok": "finished", "stop": "stopped"}


def test_bad_tags_create_no_run(ws: Workspace) -> None:
    out = _script("import trainledger\ntrainledger.init(name='t', tags=['has space'])\n", ws.root)
    assert out.returncode == 1 and "InvalidMeta" in out.stderr
    assert list_runs(ws) == []
