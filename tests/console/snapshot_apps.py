"""Apps for the snapshot tests: a frozen workspace, a fixed clock, no watcher."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from trainledger.console.app import TrainledgerApp
from trainledger.engines.workspace import Workspace

FROZEN = Path(__file__).parent.parent / "fixtures" / "frozen_ws"
CLOCK = 1_795_430_000.0 + 3600.0


def frozen_app(theme: str = "trainledger-dark") -> TrainledgerApp:
    dest = Path(tempfile.mkdtemp(prefix="tl-snap-")) / "frozen_ws"
    shutil.copytree(FROZEN, dest)
    return TrainledgerApp(
        Workspace(dest), theme=theme, watch=False, clock=lambda: CLOCK, location="~/frozen_ws"
    )
