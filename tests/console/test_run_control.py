"""Starting and stopping real training runs from the Curves pane, and the failed-run footer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from textual.widgets import Input, Static

from tests.console.conftest import CLOCK, settle
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.screens.confirm import ConfirmScreen
from trainledger.console.screens.run_control import NewRunScreen, check_form
from trainledger.console.widgets.runlist import RunList
from trainledger.engines import runs as run_control
from trainledger.engines.workspace import Workspace, init_workspace, read_run_info


def _recorder(app: TrainledgerApp) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    original = app.notify

    def notify(message: str, *args: object, **kwargs: object) -> None:
        seen.append((str(message), str(kwargs.get("severity", "information"))))
        original(message, *args, **kwargs)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    return seen


async def _until(pilot, predicate, timeout: float = 25.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.2)


def _status(ws: Workspace, run_id: str) -> str:
    return read_run_info(ws.run_dir(run_id)).status


def test_check_form() -> None:
    assert check_form("ternary-vae", "", "torch", "0", "") == "epochs: at least 1"
    assert "not a whole number" in check_form("ternary-vae", "", "torch", "x", "")  # type: ignore[operator]
    assert "does not exist" in check_form("ternary-vae", "/no/such/file", "torch", "1", "")  # type: ignore[operator]
    ok = check_form("ternary-vae", "", "mlx", "3", "a=1 b=2")
    assert not isinstance(ok, str) and ok.epochs == 3 and ok.settings == ["a=1", "b=2"]


def test_read_system_last_line(tmp_path: Path) -> None:
    (tmp_path / "system.jsonl").write_text('{"cpu_percent": 1}\n{"cpu_percent": 2, "rss_bytes": 5}\n{"cpu')
    assert run_control.read_system(tmp_path) == {"cpu_percent": 2, "rss_bytes": 5}
    assert run_control.read_system(tmp_path / "missing") is None


async def test_start_run_through_the_form(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    app = TrainledgerApp(ws, watch=True)
    notes = _recorder(app)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen)
        app.screen.query_one("#new-epochs", Input).value = "1"
        box = app.screen.query_one("#new-settings", Input)
        box.value = "prior_samples=512 log_every=5"
        box.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, NewRunScreen)
        await _until(pilot, lambda: any(m.startswith("run ") for m, _ in notes), 5)
        run_id = next(m for m, _ in notes if m.startswith("run ")).split()[1]
        await _until(pilot, lambda: (ws.run_dir(run_id) / "run.json").exists())
        await _until(pilot, lambda: _status(ws, run_id) not in ("running", "unknown"), 30)
        assert _status(ws, run_id) == "finished", (ws.state_dir / "logs" / f"{run_id}.log").read_text()
        pane = app.query_one(CurvesPane)
        await _until(pilot, lambda: run_id in pane.infos, 5)
        # mlx for a model it does not support: the CLI refuses, and its message comes back
        # as an error notification
        await pilot.press("n")
        await pilot.pause()
        from textual.widgets import Select

        app.screen.query_one("#new-model", Select).value = "vocab"  # not on MLX (yet)
        app.screen.query_one("#new-backend", Select).value = "mlx"
        app.screen.query_one("#new-epochs", Input).focus()
        await pilot.press("enter")
        await _until(pilot, lambda: any(s == "error" for _, s in notes), 10)
        assert any("mlx" in m and s == "error" for m, s in notes), notes


async def test_stop_a_running_trainer(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    started = run_control.start_run(ws, "ternary-vae", epochs=400,
                                    settings=["prior_samples=512", "pace=50"])  # fmt: skip
    try:
        deadline = time.monotonic() + 25
        while not ((ws.run_dir(started.run_id) / "run.json").exists()
                   and _status(ws, started.run_id) == "running"):  # fmt: skip
            assert time.monotonic() < deadline and started.proc.poll() is None, started.log_path.read_text()
            await asyncio.sleep(0.2)
        app = TrainledgerApp(ws, watch=True)
        notes = _recorder(app)
        async with app.run_test(size=(160, 40)) as pilot:
            pane = app.query_one(CurvesPane)
            await _until(pilot, lambda: pane.infos.get(started.run_id) is not None
                         and pane.infos[started.run_id].status == "running", 10)  # fmt: skip
            assert app.query_one(RunList).cursor_run == started.run_id
            await pilot.press("S")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            plan = str(app.screen.query_one("#confirm-details", Static).content)
            assert f"SIGTERM to pid {started.pid}" in plan
            await pilot.press("y")
            await _until(pilot, lambda: started.proc.poll() is not None, 20)
            assert _status(ws, started.run_id) == "stopped"
            assert any("sent SIGTERM" in m for m, _ in notes), notes
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
            started.proc.wait(5)


async def test_stop_refused_for_finished_run(frozen_ws: Workspace) -> None:
    app = TrainledgerApp(frozen_ws, watch=False, clock=lambda: CLOCK)
    notes = _recorder(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("end")  # ternary-v5-5: finished
        await settle(pilot)
        await pilot.press("S")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("finished, not running" in m and s == "error" for m, s in notes), notes


async def test_failed_run_shows_its_error(frozen_ws: Workspace) -> None:
    app = TrainledgerApp(frozen_ws, watch=False, clock=lambda: CLOCK)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        runlist = app.query_one(RunList)
        runlist.move_cursor(row=runlist.order.index("lvm-amn-infonce"))
        await settle(pilot)
        footer = str(app.query_one("#curves-footer", Static).content)
        assert footer.startswith("failed: stopped by hand: InfoNCE")
        assert len(footer) <= 80
