"""Starting and stopping real training runs from the Curves pane, and the failed-run footer."""

from __future__ import annotations

import asyncio
import json
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
from trainledger.engines.workspace import RunInfo, Workspace, init_workspace, read_run_info


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


def _info(ws_root: Path, run_id: str, model: str, name: str | None = None, status: str = "finished") -> RunInfo:
    return RunInfo(run_id, ws_root / "runs" / run_id, status=status, name=name, model=model)


def test_check_form_name_lr_batch_size_and_base(tmp_path: Path) -> None:
    lm = _info(tmp_path, "20261203-lm-base-aaaa", "lm-base", name="tiny lm")
    vae = _info(tmp_path, "vae-1", "ternary-vae", name="dup")
    vae2 = _info(tmp_path, "vae-2", "ternary-vae", name="dup")
    runs = [lm, vae, vae2]

    def form(model: str = "ternary-vae", **kw: str) -> object:
        return check_form(model, "", "torch", "1", "", runs=runs, **kw)

    assert form(lr="0") == "lr: must be greater than 0 (e.g. 0.001)"
    assert form(lr="-1e-3") == "lr: must be greater than 0 (e.g. 0.001)"
    assert form(lr="fast") == "lr: fast is not a number (e.g. 0.001)"
    assert form(lr="nan") == "lr: nan is not a number (e.g. 0.001)"
    assert form(batch_size="0") == "batch size: at least 1"
    assert form(batch_size="1.5") == "batch size: 1.5 is not a whole number"
    assert form(name="a\x1b[31mb") == "name: a run name has no control characters (escape, newline, tab ...)"
    assert form(name="x" * 201) == "name: a run name is at most 200 characters"
    # lora-lm: a base is asked for, and must be a trained lm-base run
    need = form("lora-lm")
    assert isinstance(need, str) and need.startswith("base: lora-lm needs a base")
    assert "20261203-lm-base-aaaa" in need  # the candidates are named
    assert form("lora-lm", base="nosuch") == "base: no run nosuch in this workspace (give a run id or name)"
    assert form("lora-lm", base="vae-1") == "base: vae-1 is a ternary-vae run; lora-lm builds on an lm-base run"
    ambiguous = form("lora-lm", base="dup")
    assert isinstance(ambiguous, str) and "vae-1" in ambiguous and "vae-2" in ambiguous
    assert form(base="tiny lm") == "base: ternary-vae takes no base run (only lora-lm does)"
    running = _info(tmp_path, "lm-running", "lm-base", status="running")
    assert check_form("lora-lm", "", "torch", "1", "", base="lm-running", runs=[running]) == (
        "base: lm-running is running, not finished; a base must have finished training")
    ok = form("lora-lm", name=" my lora ", lr="3e-4", batch_size="8", base="tiny lm")
    assert not isinstance(ok, str)
    assert (ok.name, ok.lr, ok.batch_size, ok.base) == ("my lora", 3e-4, 8, "20261203-lm-base-aaaa")
    plain_ok = form()
    assert not isinstance(plain_ok, str) and (plain_ok.name, plain_ok.lr, plain_ok.batch_size, plain_ok.base) == (
        None, None, None, None)


def test_train_command_carries_the_form_fields(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    args = run_control.train_command(ws, "lora-lm", "r1", epochs=2, name="my run", lr=0.0003,
                                     batch_size=8, base="lm-1")  # fmt: skip
    assert args[args.index("--name") + 1] == "my run"
    assert float(args[args.index("--lr") + 1]) == 0.0003
    assert args[args.index("--batch-size") + 1] == "8"
    assert args[args.index("--base") + 1] == "lm-1"
    bare = run_control.train_command(ws, "ternary-vae", "r2")
    assert not {"--name", "--lr", "--batch-size", "--base"} & set(bare)


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
        # the trainer names its log in run.json: the run screen finds it wherever it is
        raw = json.loads((ws.run_dir(run_id) / "run.json").read_text())
        assert raw["log"] == str((ws.state_dir / "logs" / f"{run_id}.log").resolve())
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


# ---------------------------------------------------------------- the form's fields (issue 14)


async def _open_form(pilot, app: TrainledgerApp) -> NewRunScreen:
    await settle(pilot)
    await pilot.press("n")
    await _until(pilot, lambda: isinstance(app.screen, NewRunScreen), 5)
    assert isinstance(app.screen, NewRunScreen)
    return app.screen


def _started_id(notes: list[tuple[str, str]]) -> str:
    return next(m for m, _ in notes if m.startswith("run ")).split()[1]


async def test_form_name_lr_and_batch_size_reach_run_json_and_enter_starts_from_a_select(tmp_path: Path) -> None:
    from textual.widgets import Select

    ws = init_workspace(tmp_path / "ws")
    app = TrainledgerApp(ws, watch=True)
    notes = _recorder(app)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(pilot, app)
        form.query_one("#new-name", Input).value = "my run"
        form.query_one("#new-lr", Input).value = "0.003"
        form.query_one("#new-batch-size", Input).value = "16"
        form.query_one("#new-epochs", Input).value = "1"
        form.query_one("#new-settings", Input).value = "prior_samples=512"
        form.query_one("#new-backend", Select).focus()  # Enter on a Select starts too
        await pilot.press("enter")
        await _until(pilot, lambda: not isinstance(app.screen, NewRunScreen), 5)
        await _until(pilot, lambda: any(m.startswith("run ") for m, _ in notes), 10)
        run_id = _started_id(notes)
        await _until(pilot, lambda: _status(ws, run_id) not in ("running", "unknown"), 40)
        log = (ws.state_dir / "logs" / f"{run_id}.log").read_text()
        info = read_run_info(ws.run_dir(run_id))
        assert info.status == "finished", log
        assert info.name == "my run"
        assert info.config["lr"] == 0.003 and info.config["batch_size"] == 16, info.config


async def test_form_refuses_bad_values_with_a_message(tmp_path: Path) -> None:
    from textual.widgets import Select

    ws = init_workspace(tmp_path / "ws")
    app = TrainledgerApp(ws, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(pilot, app)
        error = form.query_one("#new-run-error", Static)
        form.query_one("#new-lr", Input).value = "0"
        form.query_one("#new-lr", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen)
        assert str(error.content) == "lr: must be greater than 0 (e.g. 0.001)"
        form.query_one("#new-lr", Input).value = ""
        form.query_one("#new-batch-size", Input).value = "0"
        await pilot.press("enter")
        await pilot.pause()
        assert str(error.content) == "batch size: at least 1"
        form.query_one("#new-batch-size", Input).value = ""
        # lora-lm with no base: said at once, in the form, not a silent failed process
        form.query_one("#new-model", Select).value = "lora-lm"
        form.query_one("#new-model", Select).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen)
        assert str(error.content).startswith("base: lora-lm needs a base"), error.content
        assert form.query_one("#new-base", Input).has_focus  # the field to mend
        assert "no lm-base run in this workspace yet" in str(error.content)


async def test_form_fields_have_borders_in_mono_under_no_color(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    ws = init_workspace(tmp_path / "ws")
    app = TrainledgerApp(ws, watch=False)
    assert app.theme == "trainledger-mono"
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(pilot, app)
        fields = list(form.query(".field"))
        assert len(fields) == 9
        for box in fields:  # line-drawn borders: they need no colour to show
            assert box.styles.border_top[0] in ("round", "solid", "heavy", "double"), box
            assert box.region.height == 3 and box.region.width > 0, box  # all on screen at 80x24
        svg = app.export_screenshot()
        assert svg.count("╭") + svg.count("┏") >= 1 + 9  # the dialog and every field (the focused one heavy)


async def test_a_trainer_that_dies_later_is_reported_with_its_log(tmp_path: Path) -> None:
    import os
    import signal

    ws = init_workspace(tmp_path / "ws")
    app = TrainledgerApp(ws, watch=True)
    notes = _recorder(app)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await _open_form(pilot, app)
        form.query_one("#new-epochs", Input).value = "400"
        form.query_one("#new-settings", Input).value = "prior_samples=512 pace=50"
        form.query_one("#new-epochs", Input).focus()
        await pilot.press("enter")
        await _until(pilot, lambda: any(m.startswith("run ") for m, _ in notes), 10)
        run_id = _started_id(notes)
        await _until(pilot, lambda: _status(ws, run_id) == "running", 30)
        await asyncio.sleep(2.5)  # past the first two seconds the old check waited
        pid = read_run_info(ws.run_dir(run_id)).pid
        assert pid
        os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
        await _until(pilot, lambda: any(s == "error" and run_id in m for m, s in notes), 15)
        said = next(m for m, s in notes if s == "error" and run_id in m)
        assert "killed by signal 9" in said, said


# ---------------------------------------------------------------- quitting (issue 14)


def test_quitting_names_the_trainer_it_leaves_running_and_how_to_stop_it(tmp_path: Path, capfd) -> None:
    ws = init_workspace(tmp_path / "ws")
    app = TrainledgerApp(ws, watch=True)
    notes = _recorder(app)
    seen: dict[str, str] = {}

    async def drive(pilot) -> None:
        form = await _open_form(pilot, app)
        form.query_one("#new-epochs", Input).value = "400"
        form.query_one("#new-settings", Input).value = "prior_samples=512 pace=50"
        await pilot.press("enter")
        await _until(pilot, lambda: any(m.startswith("run ") for m, _ in notes), 10)
        seen["run_id"] = _started_id(notes)
        await pilot.press("q")

    try:
        app.run(headless=True, size=(120, 40), auto_pilot=drive)
        assert "run_id" in seen and len(app.trainers) == 1
        started = app.trainers[0]
        assert started.run_id == seen["run_id"] and started.proc.poll() is None  # it outlives the console
        err = capfd.readouterr().err
        assert "left running after the console quit" in err, err
        assert f"trainer of run {started.run_id} (pid {started.pid})" in err
        assert f"stop it: kill {started.pid}" in err
        # and once it has ended there is nothing to say
        started.proc.terminate()
        started.proc.wait(20)
        assert app.left_running() == ""
    finally:
        for t in app.trainers:
            if t.proc.poll() is None:
                t.proc.kill()
                t.proc.wait(5)


async def test_readonly_refuses_to_start_or_stop_a_run(frozen_ws: Workspace) -> None:
    app = TrainledgerApp(frozen_ws, watch=False, clock=lambda: CLOCK, readonly=True)
    notes = _recorder(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, NewRunScreen)
        await pilot.press("S")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        refused = [m for m, _ in notes if "read-only" in m]
        assert len(refused) == 2 and refused[0].startswith("new run: refused"), notes


async def test_lora_lm_from_the_form_on_a_base_given_by_name(tmp_path: Path) -> None:
    from textual.widgets import Select

    ws = init_workspace(tmp_path / "ws")
    base = run_control.start_run(ws, "lm-base", epochs=1, name="tiny lm")
    assert await asyncio.to_thread(base.proc.wait, 120) == 0, base.log_path.read_text()
    app = TrainledgerApp(ws, watch=True)
    notes = _recorder(app)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(CurvesPane)
        await _until(pilot, lambda: base.run_id in pane.infos, 10)
        form = await _open_form(pilot, app)
        form.query_one("#new-model", Select).value = "lora-lm"
        form.query_one("#new-base", Input).value = "tiny lm"
        form.query_one("#new-epochs", Input).value = "1"
        form.query_one("#new-base", Input).focus()
        await pilot.press("enter")
        await _until(pilot, lambda: any(m.startswith("run ") for m, _ in notes), 10)
        run_id = _started_id(notes)
        await _until(pilot, lambda: _status(ws, run_id) not in ("running", "unknown"), 90)
        log = (ws.state_dir / "logs" / f"{run_id}.log").read_text()
        assert _status(ws, run_id) == "finished", log
        import json

        run = json.loads((ws.run_dir(run_id) / "run.json").read_text())
        assert run["task_options"]["base"] == base.run_id  # the form found the run by its name


async def test_enter_in_an_open_select_list_picks_the_item_not_start(tmp_path: Path) -> None:
    from textual.widgets import Select

    ws = init_workspace(tmp_path / "ws")
    app = TrainledgerApp(ws, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(pilot, app)
        model = form.query_one("#new-model", Select)
        first = model.value
        assert model.has_focus
        await pilot.press("space")  # opens the list
        await pilot.pause()
        assert model.expanded
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen) and not model.expanded
        assert model.value != first
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, NewRunScreen)
