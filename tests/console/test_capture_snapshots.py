"""Snapshot tests of the Capture pane and its session drill-down on a frozen capture workspace.

Fixed sizes, a fixed clock, fixed file times, no watcher and no server (the poll finds none), so the
pictures depend on nothing but the code. Update with
`pytest tests/console/test_capture_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.console.conftest import settle
from trainledger.console.app import TrainledgerApp
from trainledger.engines.workspace import Workspace

FIXTURE = Path(__file__).parent.parent / "fixtures" / "frozen_capture" / "ws"
CLOCK = 1_795_430_000.0 + 3600.0


class FrozenCaptureApp(TrainledgerApp):
    """The console on a private copy of the fixture; every file 10 minutes old by CLOCK."""

    def __init__(self, where: Path) -> None:
        dest = where / "frozen_capture"
        shutil.copytree(FIXTURE, dest)
        for path in (dest / "san-training").iterdir():
            os.utime(path, (CLOCK - 600, CLOCK - 600))
        super().__init__(
            Workspace(dest),
            watch=False,
            clock=lambda: CLOCK,
            location="~/frozen_capture",
        )


async def _capture(pilot) -> None:
    await settle(pilot)
    await pilot.press("2")
    await settle(pilot)


async def _drill_down(pilot) -> None:
    await _capture(pilot)
    await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_capture_pane(snap_compare, size, tmp_path) -> None:
    assert snap_compare(
        FrozenCaptureApp(tmp_path), terminal_size=size, run_before=_capture
    )


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_capture_session_drill_down(snap_compare, size, tmp_path) -> None:
    assert snap_compare(
        FrozenCaptureApp(tmp_path), terminal_size=size, run_before=_drill_down
    )
