"""`trainledger train --resume NAME` and `--base NAME`: a unique run name works as an id;
an ambiguous or unknown one is one line and exit 2, listing the candidate ids."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trainledger.engines.runmeta import write_meta
from trainledger.engines.training import cli as train_cli
from trainledger.engines.training.cli_checks import CliError, check_base
from trainledger.engines.workspace import Workspace, init_workspace, read_run_info


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def _fake_run(ws: Workspace, run_id: str, name: str, status: str = "finished", model: str = "lm-base") -> Path:
    d = ws.run_dir(run_id)
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"status": status, "pid": os.getpid(), "host": socket.gethostname(),
                                            "model": model, "name": name}))  # fmt: skip
    return d


def test_resume_by_a_unique_name_finds_the_run(ws: Workspace, capsys) -> None:
    _fake_run(ws, "20261203-live", "my-vae", status="running", model="ternary-vae")
    # resolved to the id: refused as the run it names is still running (nothing is trained)
    assert train_cli.main(["--resume", "my-vae", "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err
    assert "run 20261203-live is still running" in err


def test_resume_by_an_ambiguous_or_unknown_name_is_refused(ws: Workspace, capsys) -> None:
    _fake_run(ws, "a1", "twin", model="ternary-vae")
    _fake_run(ws, "a2", "twin", model="ternary-vae")
    assert train_cli.main(["--resume", "twin", "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "trainledger train: --resume twin: 2 runs are named so (a1, a2); give the run id"
    assert train_cli.main(["--resume", "no such name", "--workspace", str(ws.root)]) == 2
    assert "--resume no such name: no run with that id or name" in capsys.readouterr().err
    assert sorted(p.name for p in ws.runs_dir.iterdir()) == ["a1", "a2"]


def test_base_by_name(ws: Workspace) -> None:
    base = _fake_run(ws, "b1", "tiny-lm")
    assert check_base(ws, "lora-lm", "b1") == base
    assert check_base(ws, "lora-lm", "tiny-lm") == base
    write_meta(base, name="renamed-lm")  # a rename from `trainledger runs rename` counts
    assert check_base(ws, "lora-lm", "renamed-lm") == base
    _fake_run(ws, "b2", "dup")
    _fake_run(ws, "b3", "dup")
    with pytest.raises(CliError, match=r"--base dup: 2 runs are named so \(b2, b3\)"):
        check_base(ws, "lora-lm", "dup")
    with pytest.raises(CliError, match="--base nobody: expected a run id"):
        check_base(ws, "lora-lm", "nobody")


def test_a_name_with_control_characters_is_refused(tmp_path: Path) -> None:
    args = ["ternary-vae", "--name", "x\x1b]2;t\x07", "--workspace", str(tmp_path / "nope")]
    out = subprocess.run([sys.executable, "-m", "trainledger", "train", *args], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 2 and "--name" in out.stderr and not (tmp_path / "nope").exists()


@pytest.mark.slow
def test_train_with_a_name_then_resume_by_it_and_rename(ws: Workspace) -> None:
    fast = ["--batch-size", "2048", "--log-every", "2", "--set", "prior_samples=4096"]
    cmd = [sys.executable, "-m", "trainledger", "train"]
    out = subprocess.run([*cmd, "ternary-vae", "--epochs", "1", "--name", "first try", "--workspace", str(ws.root),
                          "--run-id", "r1", *fast], capture_output=True, text=True, timeout=180)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert read_run_info(ws.run_dir("r1")).name == "first try"
    out = subprocess.run([*cmd, "--resume", "first try", "--epochs", "2", "--name", "second try",
                          "--workspace", str(ws.root)], capture_output=True, text=True, timeout=180)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "finished at step" in out.stdout and [p.name for p in ws.runs_dir.iterdir()] == ["r1"]
    info = read_run_info(ws.run_dir("r1"))
    assert info.name == "second try" and info.status == "finished" and info.config["epochs"] == 2
