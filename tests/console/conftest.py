from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainledger.engines.workspace import Workspace

FROZEN = Path(__file__).parent.parent / "fixtures" / "frozen_ws"
CLOCK = 1_795_430_000.0 + 3600.0  # tests/fixtures/make_frozen.py's fixed "now"


@pytest.fixture(autouse=True)
def _a_256_colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Console tests see one terminal, whatever the shell running them has.

    The theme follows NO_COLOR and TERM (a 16-colour TERM=xterm starts in mono), so a
    snapshot would otherwise depend on who ran it. Tests of those rules set them.
    """
    for name in ("NO_COLOR", "COLORTERM", "TEXTUAL_COLOR_SYSTEM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


@pytest.fixture
def frozen_ws(tmp_path: Path) -> Workspace:
    """A private copy of the frozen fixture workspace (the console may write caches)."""
    dest = tmp_path / "frozen_ws"
    shutil.copytree(FROZEN, dest)
    return Workspace(dest)


# Workers that run as long as the app: the watcher and the capture server's poller.
RUN_FOR_EVER = ("watcher", "capture-server")


async def settle(pilot, rounds: int = 6) -> None:
    """Let workers finish and their messages be handled, a few times over."""
    for _ in range(rounds):
        # The watcher and the poller run until the app closes; wait for everything else.
        # (An empty list would mean "all workers" to wait_for_complete.)
        others = [w for w in pilot.app.workers if w.group not in RUN_FOR_EVER]
        if others:
            await pilot.app.workers.wait_for_complete(others)
        await pilot.pause()
