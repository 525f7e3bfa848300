"""The `trainledger` command as a script would use it: real processes, real folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.console.conftest import FROZEN
from trainledger.engines.workspace import MARKER, init_workspace, list_runs


def tl(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainledger", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def test_version_and_help() -> None:
    out = tl("--version")
    assert out.returncode == 0 and out.stdout.startswith("trainledger ")
    help_ = tl("--help")
    assert help_.returncode == 0 and "trainledger demo" in help_.stdout


def test_init_is_idempotent(tmp_path: Path) -> None:
    first = tl("init", str(tmp_path / "ws"))
    assert first.returncode == 0 and "created workspace" in first.stdout
    assert (tmp_path / "ws" / MARKER).is_file()
    again = tl("init", str(tmp_path / "ws"))
    assert again.returncode == 0 and "already" in again.stdout


def test_runs_json_reports_best_not_last(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(FROZEN, tmp_path / "ws")
    out = tl("runs", str(tmp_path / "ws"), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    ternary = rows["ternary-v5-5"]
    assert ternary["metric"] == "val/loss"
    assert ternary["best"] == pytest.approx(0.2843) and ternary["best_epoch"] == 6
    assert ternary["best_is_last"] is False and ternary["last"] == pytest.approx(4.8)
    assert rows["lvm-amn-infonce"]["status"] == "failed" and "InfoNCE" in rows["lvm-amn-infonce"]["error"]
    assert rows["lvm-amn-mse"]["best"] == pytest.approx(0.5605)  # cosine: higher is better


def test_refuses_a_folder_that_is_not_a_workspace(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("mine")
    out = tl(str(tmp_path))
    assert out.returncode == 2
    assert "no .trainledger-workspace" in out.stderr and "trainledger init" in out.stderr
    assert not (tmp_path / MARKER).exists()


def test_bad_theme_is_a_clear_error(tmp_path: Path) -> None:
    out = tl("open", str(tmp_path / "ws"), "--theme", "nope")
    assert out.returncode == 2 and "trainledger-dark" in out.stderr


def test_one_line_logging_api(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    script = "import trainledger\nfor s in range(3):\n    trainledger.log({'loss': 1.0 / (s + 1)}, step=s, epoch=0)\n"
    subprocess.run([sys.executable, "-c", script], check=True,
                   env={**os.environ, "TRAINLEDGER_WORKSPACE": str(ws.root)})
    (run,) = list_runs(ws)
    assert run.status == "finished"
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]


@pytest.mark.slow
def test_demo_headless_runs_and_leaves_no_process(tmp_path: Path) -> None:
    # 12 s, not 6: on a loaded box the trainer (a torch import) may not have written by 6 s
    out = tl("demo", "--workspace", str(tmp_path / "demo"), "--headless-seconds", "12", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "runs: 1" in out.stdout and "chart: " in out.stdout
    rows = int(out.stdout.split(" rows")[0].rsplit(" ", 1)[1])
    assert rows > 0  # the console saw the trainer's rows live
    pid = int(out.stdout.split("trainer pid: ")[1].split()[0])
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    (run,) = list_runs(init_workspace(tmp_path / "demo"))
    assert run.status == "stopped"
    # the demo's capture stream reached the Capture pane, and its server and sender are gone
    capture = out.stdout.split("capture: ")[1]
    assert capture.startswith("1 session(s), server http://127.0.0.1:")
    frames = int(capture.split("frames")[0].rsplit(" ", 2)[-2])
    assert frames > 0
    assert not (tmp_path / "demo" / ".trainledger" / "capture-server.json").exists()


def test_import_tensorboard_command(tmp_path: Path) -> None:
    from tests.engines.test_tensorboard_import import _write

    _write(tmp_path / "logs" / "exp", [("train/loss", s, 1.0 / (s + 1)) for s in range(4)])
    ws = tmp_path / "ws"
    first = tl("import", "tensorboard", str(tmp_path / "logs"), "--workspace", str(ws))
    assert first.returncode == 0, first.stderr
    assert "imported  tb-exp" in first.stdout
    again = tl("import", "tensorboard", str(tmp_path / "logs"), "--workspace", str(ws))
    assert again.returncode == 0 and "unchanged" in again.stdout
    rows = {r["id"]: r for r in json.loads(tl("runs", str(ws), "--json").stdout)}
    assert rows["tb-exp"]["rows"] == 4 and rows["tb-exp"]["best"] == pytest.approx(0.25)
    (tmp_path / "empty").mkdir()
    bad = tl("import", "tensorboard", str(tmp_path / "empty"), "--workspace", str(ws))
    assert bad.returncode == 2 and "no TensorBoard event files" in bad.stderr
