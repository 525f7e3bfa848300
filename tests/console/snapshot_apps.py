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


_REGISTRY_WS: list[Path] = []  # the frozen workspace with the fixture registry, built once


def _registry_ws() -> Path:
    if not _REGISTRY_WS:
        from tests.console.registry_fixture import build_registry

        built = Path(tempfile.mkdtemp(prefix="tl-snap-reg-")) / "frozen_ws"
        shutil.copytree(FROZEN, built)
        build_registry(Workspace(built))
        _REGISTRY_WS.append(built)
    return _REGISTRY_WS[0]


def versions_app(theme: str = "trainledger-mono", readonly: bool = False, checkpoints: bool = False) -> TrainledgerApp:
    """The frozen workspace plus the fixture registry (tests/console/registry_fixture.py); with
    `checkpoints`, run ternary-v5-5 has a best (epoch 6) and a last (epoch 106) checkpoint."""
    dest = Path(tempfile.mkdtemp(prefix="tl-snap-")) / "frozen_ws"
    shutil.copytree(_registry_ws(), dest)
    if checkpoints:
        from tests.console.registry_fixture import add_checkpoints

        add_checkpoints(Workspace(dest), "ternary-v5-5", 6, 106)
    app = TrainledgerApp(Workspace(dest), theme=theme, watch=False, clock=lambda: CLOCK, location="~/frozen_ws",
                         readonly=readonly)  # fmt: skip
    app.animation_level = "none"  # the tab underline's slide only costs time; the last frame is the same
    return app
