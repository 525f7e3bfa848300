"""The demo's process control: real trainer processes, started fast and stopped completely."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from trainledger.engines.demo import DEMO_CONFIG, DemoProcesses, prepare_demo_workspace
from trainledger.engines.workspace import Workspace, is_workspace, read_run_info

pytestmark = pytest.mark.slow

FAST = {"epochs": 50, "batch_size": 512, "pace": 50, "log_every": 5}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return prepare_demo_workspace(tmp_path / "demo")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_importing_the_demo_pulls_in_neither_torch_nor_the_console() -> None:
    code = (
        "import sys, trainledger.engines.demo, trainledger.engines.training.__main__\n"
        "bad = [m for m in ('torch', 'textual', 'rich', 'trainledger.console') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_prepare_demo_workspace_creates_a_workspace(tmp_path: Path) -> None:
    ws = prepare_demo_workspace(tmp_path / "d")
    assert is_workspace(ws.root) and prepare_demo_workspace(tmp_path / "d") == ws


def test_demo_config_is_a_few_minutes_of_rows() -> None:
    assert DEMO_CONFIG["phase_epoch"] < DEMO_CONFIG["patience"] < DEMO_CONFIG["epochs"]
    steps_per_epoch = -(-17715 // DEMO_CONFIG["batch_size"])
    rows_per_s = DEMO_CONFIG["pace"] / DEMO_CONFIG["log_every"]
    assert 5 <= rows_per_s <= 20
    assert 2.5 * 60 < (DEMO_CONFIG["patience"] + 5) * steps_per_epoch / DEMO_CONFIG["pace"] < 5.5 * 60


def test_start_trainer_returns_at_once_and_stop_all_leaves_nothing_behind(ws: Workspace) -> None:
    demo = DemoProcesses(ws)
    try:
        started = time.monotonic()
        first = demo.start_trainer(**FAST)
        second = demo.start_trainer(**FAST, name="second")
        assert time.monotonic() - started < 1.0
        ids = [demo.run_id(first), demo.run_id(second)]
        assert ids[0] != ids[1] and demo.running() == [first, second]
        assert demo.log_path(first) == ws.state_dir / "logs" / f"{ids[0]}.log"
        assert demo.log_path(first).exists()

        def both_training() -> bool:
            return all((ws.run_dir(i) / "metrics.jsonl").exists() and
                       (ws.run_dir(i) / "metrics.jsonl").stat().st_size > 0 for i in ids)  # fmt: skip

        wait_for(both_training, 60, "both trainers to write rows")
        assert read_run_info(ws.run_dir(ids[1])).name == "second"
        pids = [first.pid, second.pid]
        # A clean stop ends the step, writes `last` and run.json; on a loaded 2-core CI box two
        # trainers once needed more than 10 s and were SIGKILLed (status `lost`): allow 30.
        demo.stop_all(timeout=30)
        assert demo.running() == []
        assert all(gone(pid) for pid in pids)
        assert [read_run_info(ws.run_dir(i)).status for i in ids] == ["stopped", "stopped"]
        assert all((ws.run_dir(i) / "checkpoints" / "last.safetensors").exists() for i in ids)
        assert f"run {ids[0]}" in demo.log_path(first).read_text()
        demo.stop_all()  # idempotent
    finally:
        demo.stop_all(timeout=1)


def test_stop_all_kills_a_trainer_that_ignores_the_deadline_and_tolerates_dead_ones(ws: Workspace) -> None:
    demo = DemoProcesses(ws)
    try:
        quick = demo.start_trainer(**FAST)
        slow = demo.start_trainer(**FAST)
        quick.kill()  # already dead before stop_all
        quick.wait()
        demo.stop_all(timeout=0)  # no grace at all: SIGTERM then SIGKILL at once
        assert demo.running() == [] and gone(slow.pid)
    finally:
        demo.stop_all(timeout=1)


def test_start_trainer_rejects_unknown_options(ws: Workspace) -> None:
    with pytest.raises(TypeError):
        DemoProcesses(ws).start_trainer(learning_rate=1.0)
