"""`trainledger demo --headless-seconds N` run twice in one workspace: each report names its
own run (not the previous demo's) and that run's final status, read after the demo stopped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainledger.engines.workspace import Workspace, read_run_info

pytestmark = pytest.mark.slow


def _demo(ws: Path, seconds: int = 4) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "trainledger.console.cli", "demo", "--workspace", str(ws),
         "--headless-seconds", str(seconds)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def _own_run(stdout: str) -> tuple[str, str]:
    m = re.search(r"^demo run: (\S+) +status (\S+)", stdout, re.M)
    assert m, stdout
    return m.group(1), m.group(2)


def test_second_demo_reports_its_own_run_and_final_status(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    first_id, first_status = _own_run(_demo(ws))
    second = _demo(ws)
    second_id, second_status = _own_run(second)
    assert second_id != first_id
    runs = Workspace(ws).runs_dir
    newest = max((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_ctime_ns)
    assert second_id == newest.name  # the run this demo started, not the one before it
    for run_id, status in ((first_id, first_status), (second_id, second_status)):
        info = read_run_info(runs / run_id)
        assert status == info.status and status not in ("running", "unknown")  # final, as recorded
    assert f"{second_id}.log" in second  # where its trainer's log is
