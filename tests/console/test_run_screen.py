"""The run screen (enter on a run in Curves) on real run folders and real logs.

A script run that fails with a long multi-line error: the whole error is on screen, and its
log (what the process printed, traceback included). A log that grows while the screen is
open is followed; `/` finds a line and n / N move between matches; a run without a log says
where it would be. Hostile names and log lines reach the terminal without an ESC. `R`
renames through meta.json, refuses control characters, and is refused under --readonly.
Checkpoints are hashed against their sidecars; system.jsonl shows as sparklines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Input, Sparkline, Static, TabbedContent

from tests.console.conftest import CLOCK, settle
from tests.console.registry_fixture import add_checkpoints
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.screens.run_report import RunReportScreen
from trainledger.console.widgets.run_log import RunLogView
from trainledger.engines.runs import logs_dir
from trainledger.engines.workspace import Workspace

LONG_ERROR = "split_size can only be 0 if dimension size is 0, but got dimension size of 7\n" + "\n".join(
    f"  while splitting batch {i}: " + "abcdefghij" * 9 + f" END{i}" for i in range(10)
)
ESC_NAME = "evil\x1b]2;pwned\x07\x1b[31mname"


def script_run(ws: Workspace, run_id: str, error: str | None = LONG_ERROR, prints: int = 30) -> Path:
    """A real run: a script writes rows through MetricsWriter, prints, then raises `error`;
    its stdout and stderr go to the log where the console would put them."""
    log = logs_dir(ws) / f"{run_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    raise_line = f"    raise RuntimeError({error!r})\n" if error else ""
    code = (
        "import sys\nfrom trainledger.engines.metrics.writer import MetricsWriter\n"
        f"with MetricsWriter(sys.argv[1], run_id={run_id!r}, model='script', config={{'epochs': 5}}) as r:\n"
        f"    for i in range({prints}):\n"
        "        r.log({'train/loss': 1.0 / (i + 1)}, step=i, epoch=i / 6)\n"
        "        print(f'step {i} loss {1.0 / (i + 1):.4f}', flush=True)\n" + raise_line
    )
    with log.open("wb") as fh:
        subprocess.run([sys.executable, "-c", code, str(ws.root)], stdout=fh, stderr=subprocess.STDOUT, timeout=60)
    return log


def app_on(ws: Workspace, **kwargs: object) -> TrainledgerApp:
    app = TrainledgerApp(ws, watch=False, clock=lambda: CLOCK, **kwargs)  # type: ignore[arg-type]
    app.animation_level = "none"
    return app


async def until(pilot, check: Callable[[], bool], timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await pilot.pause(0.05)


def text_of(screen: RunReportScreen, ids: tuple[str, ...], width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    for wid in ids:
        console.print(screen.query_one(f"#{wid}", Static).content)
    return console.export_text()


def terminal_text(app: TrainledgerApp) -> str:
    """What the terminal gets for the screen now, segment text as written."""
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


async def open_run(pilot, run_id: str) -> RunReportScreen:  # type: ignore[no-untyped-def]
    await settle(pilot)
    assert pilot.app.query_one(CurvesPane).show_run(run_id)
    await pilot.pause()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, RunReportScreen))
    screen = pilot.app.screen
    await until(pilot, lambda: screen.details is not None and screen.log_polls > 0)
    await pilot.pause()
    return screen


@pytest.fixture
def ws(frozen_ws: Workspace) -> Workspace:
    return frozen_ws


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_a_failed_run_shows_its_whole_error_and_its_log(ws: Workspace, size: tuple[int, int]) -> None:
    script_run(ws, "broken")
    async with app_on(ws).run_test(size=size) as pilot:
        screen = await open_run(pilot, "broken")
        assert screen.details is not None and screen.details.info.status == "failed"
        text = text_of(screen, ("run-identity",), width=size[0] - 4)
        squeezed = "".join(text.split())  # wrapped at the screen's width, nothing cut
        for line in LONG_ERROR.splitlines():
            assert "".join(line.split()) in squeezed  # every line of it, whole
        assert "RuntimeError:split_sizecanonlybe0" in squeezed
        assert "failed" in text and "script" in text
        overview = text_of(screen, ("run-command", "run-timings", "run-metrics"))
        assert "-c" in overview and "train/loss" in overview and "started" in overview
        await pilot.press("5")
        view = screen.query_one(RunLogView)
        await until(pilot, lambda: any("Traceback" in line for line in view.lines))
        assert view.lines[0] == "step 0 loss 1.0000"
        assert any("RuntimeError: split_size" in line for line in view.lines)
        assert screen.query_one("#run-tabs", TabbedContent).active == "tab-log"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, RunReportScreen)


async def test_a_growing_log_is_followed(ws: Workspace) -> None:
    log = script_run(ws, "growing", error=None, prints=5)
    async with app_on(ws).run_test(size=(100, 30)) as pilot:
        screen = await open_run(pilot, "growing")
        await pilot.press("5")
        view = screen.query_one(RunLogView)
        await until(pilot, lambda: len(view.lines) == 5)
        with log.open("a") as fh:
            for i in range(200):
                fh.write(f"later line {i}\n")
        await until(pilot, lambda: view.lines and view.lines[-1] == "later line 199")
        await pilot.pause()
        assert view.follow and view.is_vertical_scroll_end
        assert "later line 199" in view.visible_text()
        assert "later line 199" in terminal_text(pilot.app)
        status = text_of(screen, ("log-status",))
        assert "205 lines" in status and "following" in status


async def test_slash_finds_a_line_and_n_moves(ws: Workspace) -> None:
    log = script_run(ws, "searchable", error=None, prints=3)
    with log.open("a") as fh:
        for i in range(300):
            fh.write(f"filler {i}\n" if i not in (40, 250) else f"the NEEDLE at {i}\n")
    async with app_on(ws).run_test(size=(100, 30)) as pilot:
        screen = await open_run(pilot, "searchable")
        view = screen.query_one(RunLogView)
        await until(pilot, lambda: len(view.lines) == 303)
        await pilot.press("slash")
        box = screen.query_one("#log-search", Input)
        assert box.display and box.has_focus
        await pilot.press(*"needle", "enter")
        await pilot.pause()
        assert not box.display and len(view.matches) == 2
        first = view.current_line
        assert first is not None and view.lines[first] == "the NEEDLE at 40"
        assert "the NEEDLE at 40" in view.visible_text() and "the NEEDLE at 40" in terminal_text(pilot.app)
        await pilot.press("n")
        await pilot.pause()
        assert view.lines[view.current_line] == "the NEEDLE at 250" and "NEEDLE at 250" in view.visible_text()
        await pilot.press("N")
        await pilot.pause()
        assert view.lines[view.current_line] == "the NEEDLE at 40"
        assert "2 matches for 'needle' (1 of 2)" in text_of(screen, ("log-status",))
        await pilot.press("f")  # follow again: back at the end
        await pilot.pause()
        assert view.follow and view.is_vertical_scroll_end


async def test_a_run_without_a_log_says_where_it_would_be(ws: Workspace) -> None:
    async with app_on(ws).run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, "lvm-amn-mse")
        await pilot.press("5")
        await pilot.pause()
        assert screen.log_exists is False
        status = text_of(screen, ("log-status",), width=300)
        assert "No log for this run" in status
        assert str(logs_dir(ws) / "lvm-amn-mse.log") in status.replace("\n", "")


async def test_hostile_names_and_log_lines_reach_no_terminal_as_escapes(ws: Workspace) -> None:
    log = script_run(ws, "hostile", error="bad \x1b[2J\x1b]52;c;aGk=\x07 error", prints=2)
    with log.open("a") as fh:
        fh.write("\x1b]2;title\x07 \x1b[31mred\x1b[0m log line\n")
    raw = json.loads((ws.run_dir("hostile") / "run.json").read_text())
    raw["name"] = ESC_NAME
    raw["config"] = {ESC_NAME: ESC_NAME}
    (ws.run_dir("hostile") / "run.json").write_text(json.dumps(raw))
    async with app_on(ws).run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, "hostile")
        seen = [terminal_text(pilot.app)]
        for tab in "25":
            await pilot.press(tab)
            await until(pilot, lambda: screen.log_polls > 1)
            await pilot.pause()
            seen.append(terminal_text(pilot.app))
        everything = "\n".join(seen)
        assert "\x1b" not in everything and "\x07" not in everything
        assert "evil␛]2;pwned␇␛[31mname" in everything  # the name, as marks
        assert "␛[31mred␛[0m log line" in everything
        assert "bad ␛[2J␛]52;c;aGk=␇ error" in text_of(screen, ("run-identity",))


async def test_rename_writes_meta_and_refuses_control_characters(ws: Workspace) -> None:
    async with app_on(ws).run_test(size=(100, 30)) as pilot:
        screen = await open_run(pilot, "lvm-amn-mse")
        await pilot.press("R")
        box = screen.query_one("#rename", Input)
        assert box.display and box.has_focus and box.value == "lvm-amn-mse"
        box.value = "bad\x1b[31m"
        await pilot.press("enter")
        await pilot.pause()
        assert box.display  # refused, still open
        assert not (ws.run_dir("lvm-amn-mse") / "meta.json").exists()
        box.value = ""
        await pilot.press(*"mse baseline", "enter")
        await until(pilot, lambda: screen.details is not None and screen.details.name == "mse baseline")
        meta = json.loads((ws.run_dir("lvm-amn-mse") / "meta.json").read_text())
        assert meta["name"] == "mse baseline"
        assert "mse baseline" in text_of(screen, ("report-heading", "run-identity"))
        await pilot.press("R")
        await pilot.press("escape")  # leaves the input, not the screen
        await pilot.pause()
        assert not box.display and isinstance(pilot.app.screen, RunReportScreen)


async def test_rename_is_refused_read_only(ws: Workspace) -> None:
    async with app_on(ws, readonly=True).run_test(size=(100, 30)) as pilot:
        screen = await open_run(pilot, "lvm-amn-mse")
        await pilot.press("R")
        await pilot.pause()
        assert not screen.query_one("#rename", Input).display
        assert not (ws.run_dir("lvm-amn-mse") / "meta.json").exists()


async def test_checkpoints_hashed_and_system_figures_drawn(ws: Workspace) -> None:
    add_checkpoints(ws, "ternary-v5-5", best_epoch=6, last_epoch=106)
    rows = [{"time": 1795430000 + i, "cpu_percent": 50 + i % 40, "rss_bytes": (300 + i) << 20,
             "gpu_util_percent": 90.0, "gpu_mem_used_bytes": 2 << 30, "gpu_mem_total_bytes": 80 << 30}
            for i in range(120)]  # fmt: skip
    (ws.run_dir("ternary-v5-5") / "system.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    async with app_on(ws).run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot, "ternary-v5-5")
        await until(pilot, lambda: screen.hashed > 0)
        await pilot.press("3")
        await pilot.pause()
        text = text_of(screen, ("run-checkpoints",))
        assert "best.safetensors" in text and "last.safetensors" in text and text.count("matches") == 2
        await pilot.press("4")
        await pilot.pause()
        sparks = [s for s in screen.query(Sparkline) if s.display]
        assert len(sparks) == 4 and all(len(s.data or []) == 120 for s in sparks)
        captions = text_of(screen, ("run-system-span", "run-sys-cpu_percent-caption",
                                    "run-sys-gpu_mem_used_bytes-caption"))  # fmt: skip
        assert "120 samples over 1m 59s" in captions and "CPU" in captions and "of 80.0 GiB" in captions
        await pilot.press("2")
        await pilot.pause()
        config = text_of(screen, ("run-config",))
        assert "epochs" in config and "400" in config


async def test_a_running_run_shows_steps_per_second_and_an_eta(ws: Workspace) -> None:
    run_json = ws.run_dir("demo-live") / "run.json"
    raw = json.loads(run_json.read_text())
    raw["config"] = {"epochs": 10}
    run_json.write_text(json.dumps(raw))
    async with app_on(ws).run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot, "demo-live")
        text = text_of(screen, ("run-timings",))
        assert "steps/s   2" in text  # 383 steps in 191.5 s
        assert "ETA" in text and "1m 22s" in text  # 3 epochs of ~54.7 steps at 2 steps/s
        assert "of 10 epochs" in text and "so far" in text


async def test_a_big_log_is_read_from_its_tail_and_data_is_hashed(ws: Workspace, tmp_path: Path) -> None:
    log = logs_dir(ws) / "ternary-v5-5.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        for i in range(60_000):  # about 3.4 MB
            fh.write(f"line {i:06d} " + "." * 44 + "\n")
    data = tmp_path / "train.bin"
    data.write_bytes(b"\x01\x02" * 5000)
    import hashlib

    run_json = ws.run_dir("ternary-v5-5") / "run.json"
    raw = json.loads(run_json.read_text())
    raw["data"] = {"path": str(data), "kind": "file", "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}
    run_json.write_text(json.dumps(raw))
    async with app_on(ws).run_test(size=(100, 30)) as pilot:
        screen = await open_run(pilot, "ternary-v5-5")
        view = screen.query_one(RunLogView)
        await until(pilot, lambda: bool(view.lines) and screen.hashed > 0)
        assert view.lines[-1].startswith("line 059999")
        assert 30_000 < len(view.lines) + view.dropped < 60_000  # the last 2 MB, not the whole file
        assert all(line.startswith("line ") for line in view.lines[:3])  # the cut first line is dropped
        await pilot.press("5")
        await pilot.pause()
        assert "(the tail only)" in text_of(screen, ("log-status",))
        await pilot.press("2")
        await pilot.pause()
        shown = text_of(screen, ("run-data",))
        assert str(data) in shown.replace("\n", "") and "(matches)" in shown and "9.8 KiB" in shown
