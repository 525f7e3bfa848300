"""Snapshot tests of the run screen at 80x24 and 200x50: a failed run with a long error and a log.

The workspace is the frozen fixture copied to a fixed path (the log tab names the log's path),
plus a multi-line error in lvm-amn-infonce's run.json, a log and a system.jsonl written here
with fixed contents. The clock is fixed. Update with
`pytest tests/console/test_run_screen_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.console.conftest import settle
from tests.console.snapshot_apps import CLOCK, FROZEN
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.screens.run_report import RunReportScreen
from trainledger.engines.workspace import Workspace

RUN = "lvm-amn-infonce"
WHERE = Path("/tmp/trainledger-run-screen-snap/frozen_ws")  # fixed: the log path is on screen
ERROR = ("RuntimeError: split_size can only be 0 if dimension size is 0, but got dimension size of 7\n"
         "  in lvm_amn.forward, batch 412 of epoch 20: the InfoNCE gradient was 32x the MSE's\n"
         "  and the split of the latent into heads found 7 columns where 8 were expected")  # fmt: skip


def run_app() -> TrainledgerApp:
    if WHERE.parent.exists():
        shutil.rmtree(WHERE.parent)
    shutil.copytree(FROZEN, WHERE)
    ws = Workspace(WHERE)
    run_json = ws.run_dir(RUN) / "run.json"
    raw = json.loads(run_json.read_text())
    raw["error"] = ERROR
    raw["argv"] = ["/usr/bin/trainledger", "train", "lvm-amn", "--lr", "0.0005", "--set", "loss=infonce"]
    raw.update(backend="torch", device="cuda")
    run_json.write_text(json.dumps(raw, indent=2))
    log = ws.state_dir / "logs" / f"{RUN}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"epoch {e}/40 step {e * 100} val/cosine {0.09 + e * 0.01:.4f}" for e in range(1, 21)]
    lines += ["Traceback (most recent call last):", '  File "lvm_amn.py", line 88, in forward',
              *ERROR.splitlines()]  # fmt: skip
    log.write_text("\n".join(lines) + "\n")
    rows = [{"time": 1795430050 + i * 10, "cpu_percent": 80 + (i * 7) % 20, "rss_bytes": (900 + i * 3) << 20,
             "gpu_util_percent": 60 + (i * 13) % 40, "gpu_mem_used_bytes": (20 + i % 5) << 30,
             "gpu_mem_total_bytes": 80 << 30} for i in range(60)]  # fmt: skip
    (ws.run_dir(RUN) / "system.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = TrainledgerApp(ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK, location="~/frozen_ws")
    app.animation_level = "none"
    return app


def _opened(*keys: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        assert pilot.app.query_one(CurvesPane).show_run(RUN)
        await pilot.pause()
        await pilot.press("enter")
        deadline = time.monotonic() + 15
        while not (isinstance(pilot.app.screen, RunReportScreen) and pilot.app.screen.details is not None
                   and pilot.app.screen.log_polls > 0 and pilot.app.screen.verified > 0):  # fmt: skip
            assert time.monotonic() < deadline, "the run screen did not read the run"
            await pilot.pause(0.05)
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
        await settle(pilot)
        await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_run_screen_overview_of_a_failed_run(snap_compare, size) -> None:
    assert snap_compare(run_app(), terminal_size=size, run_before=_opened())


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_run_screen_log_searched(snap_compare, size) -> None:
    assert snap_compare(run_app(), terminal_size=size, run_before=_opened("slash", *"split", "enter"))


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_run_screen_system_figures(snap_compare, size) -> None:
    assert snap_compare(run_app(), terminal_size=size, run_before=_opened("4"))
