"""Snapshot tests of the chart's grid of small charts, its cursor and its zoom (issue 14).

On the frozen workspace's ternary run (four metrics, events), at 80x24 and 200x50.
Update with `pytest tests/console/test_chart_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import pytest

from tests.console.conftest import settle
from tests.console.snapshot_apps import frozen_app

SIZES = [(80, 24), (200, 50)]


async def _ternary(pilot) -> None:
    await settle(pilot)
    await pilot.press("end")  # the oldest run: the ternary VAE with its events
    await settle(pilot)


async def _grid(pilot) -> None:
    await _ternary(pilot)
    await pilot.press("g")
    await settle(pilot)


async def _cursor(pilot) -> None:
    await _ternary(pilot)
    await pilot.press("tab", *["left"] * 12)  # the chart takes the focus; the cursor moves left
    await settle(pilot)


async def _zoomed(pilot) -> None:
    await _ternary(pilot)
    await pilot.press("tab", *["left"] * 4, "z", *["left"] * 10, "z")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_metric_grid(snap_compare, size) -> None:
    assert snap_compare(frozen_app(), terminal_size=size, run_before=_grid)


@pytest.mark.parametrize("size", SIZES)
def test_chart_cursor_readout(snap_compare, size) -> None:
    assert snap_compare(frozen_app(), terminal_size=size, run_before=_cursor)


@pytest.mark.parametrize("size", SIZES)
def test_chart_zoomed(snap_compare, size) -> None:
    assert snap_compare(frozen_app(), terminal_size=size, run_before=_zoomed)
