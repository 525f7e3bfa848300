"""Snapshot tests of the run list for many runs: chosen config columns sorted, the run
filter with its runs compared, an archived run shown, the tags screen, a delete's typed
confirmation, and an empty workspace, at 80x24 and 200x50.

Update with `pytest tests/console/test_runlist_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tests.console.conftest import CLOCK, settle
from tests.console.test_runlist_many import many_ws
from trainledger.console.app import TrainledgerApp
from trainledger.console.run_filter import Column
from trainledger.console.screens.columns import ColumnsScreen
from trainledger.engines.workspace import Workspace, init_workspace

SIZES = [(80, 24), (200, 50)]


def _app(ws: Workspace) -> TrainledgerApp:
    app = TrainledgerApp(ws, theme="trainledger-dark", watch=False, clock=lambda: CLOCK, location="~/many")
    app.animation_level = "none"
    return app


def many_app(runs: int = 40) -> TrainledgerApp:
    ws = many_ws(Path(tempfile.mkdtemp(prefix="tl-snap-many-")), runs=runs)
    (ws.runs_dir / "run-0038" / "meta.json").write_text(json.dumps({
        "schema": "trainledger-meta/1", "name": "lr-sweep [best] \x1b[31m", "tags": ["keep", "a-long-tag-name"],
        "note": "", "archived": False}))  # fmt: skip
    (ws.runs_dir / "run-0037" / "meta.json").write_text(json.dumps({
        "schema": "trainledger-meta/1", "name": None, "tags": [], "note": "", "archived": True}))  # fmt: skip
    return _app(ws)


def _no_blink(pilot) -> None:  # noqa: ANN001
    """A text cursor that blinks would make the snapshot depend on the moment it is taken."""
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False  # type: ignore[attr-defined]


async def _columns_sorted(pilot) -> None:  # noqa: ANN001
    await settle(pilot)
    await pilot.press("h")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ColumnsScreen)
    screen.toggle(Column("config", "lr"))
    screen.toggle(Column("config", "opt.beta"))
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press(*"oooooo")  # started, run, status, progress, model, tags -> lr
    await settle(pilot)


async def _filtered_compared(pilot) -> None:  # noqa: ANN001
    await settle(pilot)
    await pilot.press("slash", *"tag:keep", "enter")
    await settle(pilot)
    await pilot.press("a", "v")
    await settle(pilot)


async def _tags_screen(pilot) -> None:  # noqa: ANN001
    await settle(pilot)
    await pilot.press("down", "down")  # run-0037 (archived, hidden) is skipped: run-0036
    await settle(pilot)
    await pilot.press("T")
    await settle(pilot)
    _no_blink(pilot)


async def _delete_confirm(pilot) -> None:  # noqa: ANN001
    await settle(pilot)
    await pilot.press("down")
    await settle(pilot)
    await pilot.press("d")
    await settle(pilot)
    _no_blink(pilot)


async def _loaded(pilot) -> None:  # noqa: ANN001
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_config_columns_sorted(snap_compare, size) -> None:
    assert snap_compare(many_app(), terminal_size=size, run_before=_columns_sorted)


@pytest.mark.parametrize("size", SIZES)
def test_filter_compare_and_archived_shown(snap_compare, size) -> None:
    assert snap_compare(many_app(), terminal_size=size, run_before=_filtered_compared)


@pytest.mark.parametrize("size", SIZES)
def test_tags_screen(snap_compare, size) -> None:
    assert snap_compare(many_app(), terminal_size=size, run_before=_tags_screen)


@pytest.mark.parametrize("size", SIZES)
def test_delete_asks_for_the_id(snap_compare, size) -> None:
    assert snap_compare(many_app(), terminal_size=size, run_before=_delete_confirm)


@pytest.mark.parametrize("size", SIZES)
def test_empty_workspace_says_how_to_start(snap_compare, size) -> None:
    ws = init_workspace(Path(tempfile.mkdtemp(prefix="tl-snap-empty-")) / "ws")
    assert snap_compare(_app(ws), terminal_size=size, run_before=_loaded)
