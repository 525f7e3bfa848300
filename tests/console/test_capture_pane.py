"""The Capture pane on real workspaces: real session files, the real watcher, a real capture
server started and stopped from the pane on an ephemeral port."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, Static

from tests.console.conftest import settle
from trainledger.console.app import TrainledgerApp
from trainledger.console.messages import CaptureChanged
from trainledger.console.panes.capture import CapturePane
from trainledger.console.screens.capture_session import (
    CaptureSessionScreen,
)
from trainledger.console.screens.confirm import ConfirmScreen
from trainledger.console.widgets.capture_render import (
    bars,
    column_chart,
    input_strip,
    sparkline,
)
from trainledger.console.widgets.capture_server_line import start_error
from trainledger.console.widgets.capture_table import CaptureTable
from trainledger.engines.capture import process
from trainledger.engines.workspace import Workspace, init_workspace

FIXTURE = Path(__file__).parent.parent / "fixtures" / "frozen_capture" / "ws"


def frame(i: int, **changes: object) -> dict[str, object]:
    obj: dict[str, object] = {
        "schema_version": 2, "dims": 128, "ts": i / 30, "frame": i, "bar": 0, "track_name": None,
        "track_time": None, "input": [((i + k) % 9) / 4 - 1 for k in range(128)],
        "audio_kick": [0.1] * 5, "audio_hihat": [0.2] * 5, "audio_bass": [0.3] * 5, "audio_pad": [0.4] * 5,
        "camera_scores": [0.5] * 7, "cut_timing": 0.5, "pattern_intensity": 0.2, "pattern_variation": 0.7,
        "phrase": [1.0, 0.0, 0.0, 0.0], "gesture_probs": [0.125] * 8, "phase": 0.1, "regime": 1,
        "calibration_confidence": 0.9, "latency_us": 900.0,
    }  # fmt: skip
    obj.update(changes)
    return obj


def jsonl(frames: list[dict[str, object]]) -> bytes:
    return b"".join(
        json.dumps(f, separators=(",", ":")).encode() + b"\n" for f in frames
    )


@pytest.fixture
def cap_ws(tmp_path: Path) -> Workspace:
    dest = tmp_path / "ws"
    shutil.copytree(FIXTURE, dest)
    return Workspace(dest)


def text_of(pane: CapturePane, selector: str) -> str:
    return str(pane.query_one(selector, Static).content)


async def until(pilot, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await pilot.pause(0.05)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def post(req: urllib.request.Request, ok: tuple[int, ...] = (200,)) -> int:
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status in ok, status
    return status


async def mounted_pane(pilot) -> CapturePane:  # type: ignore[no-untyped-def]
    """The Capture pane, once mounted: the app mounts it lazily, after the first paint."""
    await until(pilot, lambda: bool(pilot.app.query(CapturePane)))
    return pilot.app.query_one(CapturePane)


def plain(renderable: object, width: int = 200) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def table_rows_order(pane: CapturePane) -> list[str]:
    return [str(k.value) for k in pane.query_one("#cap-sessions", DataTable).rows]


def table_rows(pane: CapturePane) -> dict[str, list[str]]:
    table = pane.query_one("#cap-sessions", DataTable)
    return {str(k.value): [str(c) for c in table.get_row(k)] for k in table.rows}


async def test_sessions_detail_and_newest_frame(cap_ws: Workspace) -> None:
    app = TrainledgerApp(cap_ws, watch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        pane = await mounted_pane(pilot)
        rows = table_rows(pane)
        assert set(rows) == {"phone-0412", "studio-a", "take#2"}
        assert rows["phone-0412"][2:4] == ["175", "5"]
        assert rows["take#2"][1] == "bad id"
        assert rows["studio-a"][4] == "60"  # frames/s by the frames' ts
        frame_text = text_of(pane, "#cap-frame")
        strip = [
            ln for ln in frame_text.splitlines() if set(ln) <= set("▁▂▃▄▅▆▇█") and ln
        ]
        assert [len(ln) for ln in strip] == [64, 64]
        assert "newest frame: frame 179" in frame_text
        assert text_of(pane, "#cap-gestures").count("\n") == 8  # a title and 8 bars
        assert text_of(pane, "#cap-cameras").count("\n") == 7
        rejects = text_of(pane, "#cap-rejects")
        assert "input: expected 128 numbers" in rejects and "ts: missing" in rejects
        assert "p95" in text_of(pane, "#cap-latency")
        assert "trainledger capture serve --workspace" in text_of(pane, "#cap-server")


async def test_dropped_file_appears_with_its_rejects(cap_ws: Workspace) -> None:
    app = TrainledgerApp(cap_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        pane = await mounted_pane(pilot)
        await until(pilot, lambda: "studio-a" in table_rows(pane))
        tmp = cap_ws.captures_dir / "phone-0099.tmp"
        tmp.write_bytes(
            jsonl(
                [
                    frame(0),
                    frame(1),
                    frame(2, input=[0.0] * 3),
                    frame(3, latency_us="x"),
                ]
            )
        )
        os.replace(tmp, cap_ws.captures_dir / "phone-0099.jsonl")
        await until(
            pilot,
            lambda: table_rows(pane).get("phone-0099", [""] * 4)[2:4] == ["2", "2"],
        )
        assert (
            table_rows(pane)["phone-0099"][1] == "live"
        )  # just written, by the app clock
        append(
            cap_ws.captures_dir / "phone-0099.jsonl",
            jsonl([frame(i) for i in range(4, 10)]),
        )
        table = pane.query_one(CaptureTable)
        rows_before, updates_before = table.row_count, table.cell_updates
        await until(pilot, lambda: table_rows(pane)["phone-0099"][2] == "8")
        assert (
            table.row_count == rows_before and table.cell_updates > updates_before
        )  # cells, no rebuild
        (cap_ws.captures_dir / "studio-a.jsonl").unlink()
        await until(pilot, lambda: "studio-a" not in table_rows(pane))


async def test_change_bursts_are_coalesced(cap_ws: Workspace) -> None:
    app = TrainledgerApp(cap_ws, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await mounted_pane(pilot)
        await settle(pilot)
        before = pane.scans
        t0 = time.monotonic()
        for _ in range(200):
            pane.post_message(CaptureChanged())
        await pilot.pause(0.6)
        await settle(pilot)
        elapsed = time.monotonic() - t0
        assert 1 <= pane.scans - before <= 4 * elapsed + 2


async def test_drill_down_shows_the_file_facts(cap_ws: Workspace) -> None:
    app = TrainledgerApp(cap_ws, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("enter")  # the cursor is on phone-0412
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CaptureSessionScreen)
        s = screen.summary
        assert s.id == "phone-0412" and s.frames == 175 and s.rejected == 5
        facts = plain(screen.query_one("#session-facts", Static).content)
        assert str(cap_ws.captures_dir / "phone-0412.jsonl") in facts.replace(
            "\n", ""
        ).replace(" ", "")
        assert "275.7 KB (282,268 bytes)" in facts and "175 accepted" in facts
        assert "0.000 … 5.967" in facts and "p95" in facts
        rejects = plain(screen.query_one("#session-rejects", Static).content)
        assert "input: expected 128 numbers" in rejects and "41, 42" in rejects
        assert "ts: missing" in rejects and "121" in rejects
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, CaptureSessionScreen)


async def test_stale_record_after_a_crash(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    proc = _dead_pid()
    process.state_file(ws).parent.mkdir(parents=True, exist_ok=True)
    process.state_file(ws).write_text(json.dumps({
        "pid": proc, "host": "127.0.0.1", "port": 9, "url": "http://127.0.0.1:9", "fsync": "batch",
        "token_required": False, "started_at": 1.0,
    }))  # fmt: skip
    app = TrainledgerApp(ws, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        pane = await mounted_pane(pilot)
        await until(pilot, lambda: "stale record" in text_of(pane, "#cap-server"))
        assert f"pid {proc}" in text_of(pane, "#cap-server")
        assert "No capture sessions" in text_of(pane, "#cap-fps")


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


async def test_start_and_stop_the_server_from_the_pane(cap_ws: Workspace) -> None:
    app = TrainledgerApp(cap_ws)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("2")
            pane = await mounted_pane(pilot)
            pane.server_port = 0  # an ephemeral port, never 9471
            await until(pilot, lambda: "stopped" in text_of(pane, "#cap-server"))
            await pilot.press("S")
            await until(
                pilot, lambda: "● capture server" in text_of(pane, "#cap-server"), 20
            )
            state = process.server_state(cap_ws)
            assert state is not None and state.alive
            req = urllib.request.Request(
                f"{state.url}/san-frame", data=jsonl([frame(0), frame(1)]),
                headers={"Content-Type": "application/x-ndjson", "X-MotionMix-SAN-Session": "live-1",
                         "X-MotionMix-SAN-Schema": "2", "X-MotionMix-SAN-Dims": "128"},
            )  # fmt: skip
            assert post(req) == 200
            await until(
                pilot,
                lambda: table_rows(pane).get("live-1", ["", ""])[1:3] == ["live", "2"],
            )
            await until(pilot, lambda: "2 accepted" in text_of(pane, "#cap-server"))
            pane.query_one("#cap-sessions", DataTable).move_cursor(
                row=table_rows_order(pane).index("live-1")
            )
            await until(
                pilot,
                lambda: (
                    "server, this session: 2 accepted · 0 rejected"
                    in text_of(pane, "#cap-rejects")
                ),
            )
            await until(
                pilot,
                lambda: "frames/s, server (all sessions)" in text_of(pane, "#cap-fps"),
            )
            bad = urllib.request.Request(
                f"{state.url}/san-frame", data=jsonl([frame(0, input=[1.0]), frame(1, ts=None)]),
                headers={"Content-Type": "application/x-ndjson", "X-MotionMix-SAN-Session": "all-bad",
                         "X-MotionMix-SAN-Schema": "2", "X-MotionMix-SAN-Dims": "128"},
            )  # fmt: skip
            post(bad, ok=(422,))
            await until(
                pilot,
                lambda: (
                    table_rows(pane).get("all-bad", [""] * 7)[1:4]
                    == ["server", "0", "2"]
                ),
            )
            pane.query_one("#cap-sessions", DataTable).move_cursor(
                row=table_rows_order(pane).index("all-bad")
            )
            await until(
                pilot,
                lambda: "input: expected 128 numbers" in text_of(pane, "#cap-rejects"),
            )
            assert "server" in text_of(pane, "#cap-rejects")
            await pilot.press("enter")  # the drill-down names what the server counted
            await until(pilot, lambda: isinstance(app.screen, CaptureSessionScreen))
            facts = plain(app.screen.query_one("#session-facts", Static).content)
            assert "0 accepted · 2 rejected" in facts
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, CaptureSessionScreen))
            await pilot.press("S")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: "stopped" in text_of(pane, "#cap-server"), 20)
            assert process.server_state(cap_ws) is None
            assert not process.pid_alive(state.pid)
    finally:
        process.stop_server(cap_ws)


async def test_start_on_a_busy_port_says_which_and_how_to_pick_another(
    cap_ws: Workspace,
) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    app = TrainledgerApp(cap_ws, watch=False)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            pane = await mounted_pane(pilot)
            pane.server_port = port
            await pilot.press("2")
            await until(pilot, lambda: "stopped" in text_of(pane, "#cap-server"))
            await pilot.press("S")
            await until(pilot, lambda: pane.last_error is not None, 20)
            assert f"port {port} is already in use" in pane.last_error
            assert f"--port {port + 1}" in pane.last_error
            assert "already in use" in text_of(pane, "#cap-server")
    finally:
        busy.close()
        process.stop_server(cap_ws)


async def test_capture_keys_in_help_and_palette(cap_ws: Workspace) -> None:
    app = TrainledgerApp(cap_ws, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        rows = {(where, does) for where, _, does in app.help_rows()}
        for b in CapturePane.BINDINGS:
            assert ("Capture", b.description) in rows
        await pilot.press("2")  # the palette offers the keys of the pane on screen (issue 14)
        await mounted_pane(pilot)
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert (
            "Capture: Start/stop server" in titles and "Capture: Open session" in titles
        )
        assert {b.id for b in CapturePane.BINDINGS} >= {
            "capture.open",
            "capture.server",
        }


def test_cells_strip_bars_and_charts() -> None:
    strip = input_strip([-1.0, -0.5, 0.0, 0.5, 1.0, 7.0, -7.0, 0.0], 4).plain
    assert strip == "▁▂▄▆\n██▁▄"
    assert (
        bars("g", [0.0, 0.5, 2.0], 4).plain
        == "g0 ░░░░  0.00\ng1 ██░░  0.50\ng2 ████  2.00"
    )
    assert sparkline([0, 5, 10], 3).plain == " ▄█"
    assert sparkline([0, 0], 2).plain == "··"
    tall = column_chart([0, 8, 16], 3, 2).plain.splitlines()
    assert tall == ["  █", " ██"]


def test_start_error_names_the_busy_port_and_another() -> None:
    log = "old run: address already in use\n" + "\n".join(f"line {i}" for i in range(5))
    assert "already in use" not in start_error(
        log, 9471, "~/ws"
    )  # an older failure in the log
    busy = start_error(
        "serve: cannot listen on 127.0.0.1:9471: [Errno 98] address already in use",
        9471,
        "~/ws",
    )
    assert busy.startswith("port 9471 is already in use")
    assert "trainledger capture serve --workspace ~/ws --port 9472" in busy


def _send(url: str, session: str, frames: list[dict[str, object]]) -> int:
    req = urllib.request.Request(
        f"{url}/san-frame", data=jsonl(frames),
        headers={"Content-Type": "application/x-ndjson", "X-MotionMix-SAN-Session": session,
                 "X-MotionMix-SAN-Schema": "2", "X-MotionMix-SAN-Dims": "128"},
    )  # fmt: skip
    return post(req, ok=(200, 422))


def _row_lines(table: DataTable) -> list[str]:
    """The table's rows as drawn (header first): what the user reads, cut or not."""
    return [table.render_line(y).text for y in range(table.row_count + 1)]


async def test_a_session_shows_its_own_rejects_and_the_table_agrees(tmp_path: Path) -> None:
    """Issue 14: this session's reasons (not the server's), the table's `rej` counting the
    frames the server refused, real file facts in the drill-down, whole ids, no interleave."""
    ws = init_workspace(tmp_path / "ws")
    state = process.start_server(ws, port=0)
    try:
        good = [frame(i) for i in range(2)]
        assert _send(state.url, "mixed", good + [frame(i, bad=1) for i in range(2, 11)]) == 200
        assert _send(state.url, "other", [frame(0, input=[1.0])]) == 422  # server-wide reason
        assert _send(state.url, "all-bad", [frame(0, bad=1), frame(1, bad=1)]) == 422
        ids = ["demo-20261203-074401", "demo-20261203-074459"]  # one minute, 20 characters
        for sid in ids:
            assert _send(state.url, sid, [frame(0)]) == 200
        app = TrainledgerApp(ws, clock=time.time)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            pane = await mounted_pane(pilot)
            await until(pilot, lambda: pane.stats is not None and "mixed" in table_rows(pane)
                        and "all-bad" in table_rows(pane))  # fmt: skip
            await until(pilot, lambda: table_rows(pane)["mixed"][2:4] == ["2", "9"])
            assert table_rows(pane)["all-bad"][1:4] == ["server", "0", "2"]
            table = pane.query_one("#cap-sessions", DataTable)
            drawn = "\n".join(_row_lines(table))
            assert all(sid in drawn for sid in ids), drawn  # never cut: the two stay apart
            table.move_cursor(row=table_rows_order(pane).index("mixed"))
            await until(pilot, lambda: "unknown field" in text_of(pane, "#cap-rejects"))
            rejects = text_of(pane, "#cap-rejects")
            assert "expected 128" not in rejects  # another session's reason
            assert "rejected 9" in rejects and "9 rejected" in rejects
            await settle(pilot)
            rej_w, lat_w = pane.query_one("#cap-rejects"), pane.query_one("#cap-latency")
            side_by_side = lat_w.region.y < rej_w.region.bottom
            if side_by_side:  # then every line must fit its own half
                width = rej_w.content_region.width
                assert all(len(ln) <= width for ln in rejects.splitlines()), rejects
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, CaptureSessionScreen))
            path = ws.captures_dir / "mixed.jsonl"
            facts = plain(app.screen.query_one("#session-facts", Static).content)
            st = path.stat()
            assert f"({st.st_size:,} bytes)" in facts
            when = datetime.fromtimestamp(st.st_mtime, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            assert when in facts and "1970" not in facts
            assert "9 rejected" in facts
            drill = plain(app.screen.query_one("#session-rejects", Static).content)
            assert "unknown field" in drill and "expected 128" not in drill
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, CaptureSessionScreen))
            table.move_cursor(row=table_rows_order(pane).index("all-bad"))
            await settle(pilot)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, CaptureSessionScreen))
            facts = plain(app.screen.query_one("#session-facts", Static).content)
            assert "1970" not in facts and "0 B" not in facts and "no file" in facts
            assert "2 rejected" in facts
            await pilot.press("escape")
    finally:
        process.stop_server(ws)


async def test_r_says_it_rescanned(cap_ws: Workspace) -> None:
    app = TrainledgerApp(cap_ws, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        pane = await mounted_pane(pilot)
        await until(pilot, lambda: pane.scans > 0)
        before = pane.scans
        await pilot.press("r")
        await until(pilot, lambda: pane.scans > before)
        await settle(pilot)
        said = [str(n.message) for n in app._notifications]
        assert any("rescanned" in m and "3 sessions" in m for m in said), said
