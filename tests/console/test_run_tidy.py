"""Tidying runs from the Curves pane: `T` tags and note, `A` archive, `v` shows archived,
`d` deletes to the workspace's trash after the run's id is typed; a running run is never
deleted, and nothing of it works under --readonly. Real run folders, real files."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from textual.widgets import Button, Input, TextArea

from tests.console.conftest import settle
from tests.console.test_runlist_many import app_for
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.screens.confirm import ConfirmScreen
from trainledger.console.screens.run_tags import RunTagsScreen
from trainledger.console.widgets.runlist import RunList
from trainledger.engines import trash
from trainledger.engines.runmeta import read_meta
from trainledger.engines.workspace import METRICS_FILE, RUN_FILE, Workspace, init_workspace


def tidy_ws(root: Path) -> Workspace:
    """Three finished runs (old, mid, new) and one running (this process's pid, so it is live)."""
    ws = init_workspace(root / "ws")
    runs = {"old": "finished", "mid": "finished", "new": "finished", "live": "running"}
    for k, (run_id, status) in enumerate(runs.items()):
        d = ws.runs_dir / run_id
        d.mkdir()
        (d / RUN_FILE).write_text(json.dumps({"status": status, "started": 1000.0 + k, "model": "lvm-amn",
                                              "pid": os.getpid(), "host": socket.gethostname()}))  # fmt: skip
        (d / METRICS_FILE).write_text("".join(json.dumps({"step": i, "loss": 1 / (i + 1)}) + "\n" for i in range(5)))
    return ws


def notes_of(app) -> list[str]:  # noqa: ANN001
    return [n.message for n in app._notifications]


async def to_run(pilot, run_id: str) -> CurvesPane:  # noqa: ANN001
    pane = pilot.app.query_one(CurvesPane)
    assert pane.show_run(run_id)
    await settle(pilot)
    return pane


async def test_T_writes_tags_and_a_note_and_the_list_shows_the_tags(tmp_path: Path) -> None:
    ws = tidy_ws(tmp_path)
    async with app_for(ws).run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        pane = await to_run(pilot, "mid")
        await pilot.press("T")
        await pilot.pause()
        assert isinstance(pilot.app.screen, RunTagsScreen)
        await pilot.press(*"bad tag,x")  # a space splits: two good tags
        pilot.app.screen.query_one(TextArea).text = "lr too high\nsee run old"
        await pilot.press("enter")
        await settle(pilot)
        meta = read_meta(ws.runs_dir / "mid")
        assert meta.tags == ("bad", "tag", "x") and meta.note == "lr too high\nsee run old"
        assert json.loads((ws.runs_dir / "mid" / "meta.json").read_text())["schema"] == "trainledger-meta/1"
        row = pane.query_one(RunList).get_row("mid")[0].plain
        assert row.startswith("  mid #bad #tag")
        # A bad tag is refused on the screen and nothing is written.
        await pilot.press("T")
        await pilot.pause()
        box = pilot.app.screen.query_one("#tags-input", Input)
        box.value = "ok \x1b[31m"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(pilot.app.screen, RunTagsScreen)
        assert "control" in str(pilot.app.screen.query_one("#tags-error").render())
        await pilot.press("escape")
        await settle(pilot)
        assert read_meta(ws.runs_dir / "mid").tags == ("bad", "tag", "x")


async def test_A_archives_and_hides_the_run_and_v_shows_it(tmp_path: Path) -> None:
    ws = tidy_ws(tmp_path)
    async with app_for(ws).run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        pane = await to_run(pilot, "mid")
        runlist = pane.query_one(RunList)
        await pilot.press("A")
        await settle(pilot)
        assert read_meta(ws.runs_dir / "mid").archived is True
        assert "mid" not in runlist.order and set(runlist.order) == {"old", "new", "live"}
        assert "1 archived hidden" in str(pane.query_one("#list-info").render())
        await pilot.press("v")
        await settle(pilot)
        assert "mid" in runlist.order
        assert "⊟" in runlist.get_row("mid")[0].plain
        await to_run(pilot, "mid")
        await pilot.press("A")  # again: no longer archived
        await settle(pilot)
        assert read_meta(ws.runs_dir / "mid").archived is False
        await pilot.press("v")
        await settle(pilot)
        assert "mid" in runlist.order and "⊟" not in runlist.get_row("mid")[0].plain


async def test_d_moves_the_run_to_the_trash_after_its_id_is_typed(tmp_path: Path) -> None:
    ws = tidy_ws(tmp_path)
    async with app_for(ws).run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        pane = await to_run(pilot, "old")
        await pilot.press("d")
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, ConfirmScreen)
        assert screen.query_one("#confirm-cancel", Button).has_focus  # Enter by habit cancels
        assert screen.query_one("#confirm-ok", Button).disabled
        await pilot.press("enter")
        await settle(pilot)
        assert (ws.runs_dir / "old").is_dir()  # cancelled
        await pilot.press("delete")
        await pilot.pause()
        screen = pilot.app.screen
        box = screen.query_one("#confirm-typed", Input)
        assert screen.query_one("#confirm-cancel", Button).has_focus
        # typed with the focus on Cancel, as the hint says: it goes to the box; `n` (the n of
        # a run-0296) neither cancels nor is lost, and `y` before the name is whole is typed too
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmScreen) and box.value == "n" and box.has_focus
        await pilot.press("backspace", *"ol", "tab", "y")  # the wrong name: refused
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmScreen) and (ws.runs_dir / "old").is_dir()
        assert box.value == "oly"
        await pilot.press("backspace", "d", "tab", "y")
        await settle(pilot)
        assert not (ws.runs_dir / "old").exists()
        moved = trash.list_trash(ws)
        assert [e.run_id for e in moved] == ["old"] and (moved[0].path / RUN_FILE).is_file()
        assert "old" not in pane.query_one(RunList).order
        assert any("moved to" in n for n in notes_of(pilot.app))


async def test_a_running_run_is_never_deleted(tmp_path: Path) -> None:
    ws = tidy_ws(tmp_path)
    async with app_for(ws).run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await to_run(pilot, "live")
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, ConfirmScreen)
        assert any("never deleted" in n and "stop it first" in n for n in notes_of(pilot.app))
        assert (ws.runs_dir / "live").is_dir()


async def test_readonly_refuses_tags_archive_and_delete(tmp_path: Path) -> None:
    ws = tidy_ws(tmp_path)
    async with app_for(ws, readonly=True).run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        pane = await to_run(pilot, "old")
        for key in ("T", "A", "d", "delete"):
            await pilot.press(key)
            await settle(pilot)
            assert not isinstance(pilot.app.screen, (RunTagsScreen, ConfirmScreen)), key
        assert not (ws.runs_dir / "old" / "meta.json").exists() and (ws.runs_dir / "old").is_dir()
        refused = [n for n in notes_of(pilot.app) if "read-only" in n]
        assert len(refused) == 4
        for action in ("edit_tags", "toggle_archive", "delete_run", "new_run"):
            assert pane.check_action(action, ()) is False  # hidden from the footer and the palette
        assert pane.check_action("toggle_archived", ()) is True  # only a view: allowed
