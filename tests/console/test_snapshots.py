"""Snapshot tests of the overview and the help screen on a frozen workspace.

Update with `pytest tests/console/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import pytest

from tests.console.conftest import settle
from tests.console.snapshot_apps import frozen_app


async def _loaded(pilot) -> None:
    await settle(pilot)


async def _ternary(pilot) -> None:
    await settle(pilot)
    await pilot.press("end")  # the oldest run: the ternary VAE with its events
    await settle(pilot)


async def _help(pilot) -> None:
    await settle(pilot)
    await pilot.press("question_mark")
    await settle(pilot)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_overview(snap_compare, size) -> None:
    assert snap_compare(frozen_app(), terminal_size=size, run_before=_loaded)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_overview_ternary_run_with_events(snap_compare, size) -> None:
    assert snap_compare(frozen_app(), terminal_size=size, run_before=_ternary)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_help_screen(snap_compare, size) -> None:
    assert snap_compare(frozen_app(), terminal_size=size, run_before=_help)


def test_mono_theme(snap_compare) -> None:
    assert snap_compare(frozen_app("trainledger-mono"), terminal_size=(80, 24), run_before=_ternary)
