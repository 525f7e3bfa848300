"""The Ports pane: its drawing as pure functions, its keys on fixed rows, and real port servers.

Real parts throughout: the real prober against real passthrough servers on free 127.0.0.1 ports
(started by the pane's `u` through ports.toml, or by hand with `python -m
trainledger.engines.serving serve`), a SIGSTOPped one for a hung port, the real registry of the
fixture workspace for the drill-down's audit and for the reason of a moved version. Fixed rows go
in through the pane's test hook (`hold`) or as the poll message the prober's worker posts.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from tests.console.conftest import CLOCK, FROZEN, settle
from tests.console.registry_fixture import build_registry
from tests.console.test_ports_snapshots import fixture_rows
from trainledger.console.app import PANES, TrainledgerApp
from trainledger.console.messages import PortsChanged, RegistryChanged
from trainledger.console.panes.base import PaneEntry
from trainledger.console.panes.ports import PortsPane, PortsPolled, PortsTable
from trainledger.console.panes.ports_actions import stop_ask
from trainledger.console.screens.confirm import ConfirmScreen
from trainledger.console.screens.port_detail import PortDetail, facts
from trainledger.console.widgets import ports_render as render
from trainledger.engines.registry.store import Registry
from trainledger.engines.serving import process, records
from trainledger.engines.serving.view import PortView
from trainledger.engines.workspace import Workspace, init_workspace

HOSTILE = "[/]x [link=x]y\x1b]2;title\x07"
SHOWN = "[/]x [link=x]y␛]2;title␇"
_BUILT: Path | None = None


@pytest.fixture
def reg_ws(tmp_path: Path) -> Workspace:
    """A private copy of the frozen workspace with the fixture registry (built once per session)."""
    global _BUILT
    if _BUILT is None:
        _BUILT = Path(tmp_path.parent / "ports-fixture")
        shutil.copytree(FROZEN, _BUILT)
        build_registry(Workspace(_BUILT))
    dest = tmp_path / "ws"
    shutil.copytree(_BUILT, dest, symlinks=True)
    return Workspace(dest)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(pilot, check: Callable[[], bool], timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await pilot.pause(0.02)


class Said:
    """What the app notified (a spy around the real App.notify)."""

    def __init__(self, app: TrainledgerApp) -> None:
        self.texts: list[str] = []
        real = app.notify

        def spy(message, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.texts.append(f"{kwargs.get('title', '')}: {message}")
            return real(message, *args, **kwargs)

        app.notify = spy  # type: ignore[method-assign]

    def __contains__(self, part: str) -> bool:
        return any(part in t for t in self.texts)


class UnpolledApp(TrainledgerApp):
    """The console with a Ports pane whose prober never starts: rows arrive as poll messages."""

    PANES = [*PANES[:-1], PaneEntry("ports", "Ports", PortsPane,
                                    lambda app: PortsPane(app.workspace, clock=app.clock, poll=False), lazy=True)]


def app_on(ws: Workspace, cls: type[TrainledgerApp] = TrainledgerApp, **kwargs: object) -> TrainledgerApp:
    app = cls(ws, watch=kwargs.pop("watch", False), clock=lambda: CLOCK, **kwargs)  # type: ignore[arg-type]
    app.animation_level = "none"
    return app


async def opened(pilot) -> PortsPane:  # type: ignore[no-untyped-def]
    await pilot.press("4")
    await until(pilot, lambda: bool(pilot.app.query(PortsPane)))
    await settle(pilot, rounds=2)
    return pilot.app.query_one(PortsPane)


def as_text(renderable: object, width: int = 200) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable, markup=False)
    return out.getvalue()


def row_of(pane: PortsPane, port: int) -> PortView | None:
    return pane.rows.get(port)


# --------------------------------------------------------------------------- pure drawing


def test_the_matrix_fits_80_columns_and_shows_every_column_at_160() -> None:
    for width in range(40, 261):
        columns = render.layout(width)
        assert sum(w + 2 for _, w in columns) <= width - render.RESERVE, width
    narrow = [c.key for c, _ in render.layout(80)]
    assert narrow == ["port", "health", "model", "active", "canary", "latency", "err", "spark"]
    wide = [c.key for c, _ in render.layout(160)]
    assert wide == [c.key for c in render.COLUMNS]
    spark = dict((c.key, w) for c, w in render.layout(240))["spark"]
    assert spark > dict((c.key, w) for c, w in render.layout(160))["spark"]
    for col, width in render.layout(80):
        assert render.header(col, width).cell_len <= width


def test_every_string_of_a_row_is_plain_text_with_its_controls_replaced() -> None:
    row = dataclasses.replace(fixture_rows()[1], model=HOSTILE, active=HOSTILE, canary=HOSTILE, run_id=HOSTILE,
                              dataset_path=HOSTILE, detail=HOSTILE, note=HOSTILE, url=HOSTILE, state=HOSTILE,
                              val_metric=(HOSTILE, 0.5), artifact_path=HOSTILE,
                              windows=({"reason": HOSTILE, "outcome": HOSTILE, "start": HOSTILE},))  # fmt: skip
    look = render.Look()
    texts = [*render.cells(row, render.layout(400), look), render.foot_text(row, look), render.head_text([row], 0, 400),
             stop_ask(row).details, stop_ask(row).change[0]]  # fmt: skip
    out = io.StringIO()
    console = Console(file=out, width=400, color_system=None)
    for t in texts:
        console.print(t, markup=False)  # the confirmation's strings reach the screen through plain()
    console.print(facts(row, {}, look, 400))
    from trainledger.console.screens.port_detail import windows_table

    console.print(windows_table(row, look))
    printed = out.getvalue()
    assert "\x1b" not in printed and "\x07" not in printed
    assert "[/]x [link=x]y␛]2;" in printed  # markup shown as text, the escape as ␛
    assert SHOWN[:10] in render.foot_text(row, look).plain


def test_numbers_read_as_words() -> None:
    assert [render.ms(v) for v in (0.4213, 12.34, 640.0, None, float("nan"))] == ["0.42", "12.3", "640", "–", "–"]
    assert [render.percent(v) for v in (0.0, 0.2, 0.99999, None)] == ["0.0%", "20.0%", "100%", "–"]
    assert [render.count(v) for v in (840, 12_672, 1_234_567, None)] == ["840", "12.7k", "1.23M", "–"]
    assert [render.memory(v) for v in (512 << 10, 182 << 20, 1_610 << 20)] == ["512 KB", "182 MB", "1.6 GB"]
    assert render.metric(("val/cosine", 0.71), short=True) == "cosine 0.71"
    assert render.fit_left("data/a/long/path.jsonl", 12) == "…/path.jsonl"


# --------------------------------------------------------------------------- keys on fixed rows


async def test_drain_asks_with_the_focus_on_cancel_and_cancel_changes_nothing(reg_ws: Workspace) -> None:
    app = app_on(reg_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        pane.hold(fixture_rows())
        await settle(pilot)
        assert pane.select_port(9002)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.focused.id == "confirm-cancel"
        assert app.screen.ask.change[1] == "stopped" and "SIGTERM" in app.screen.ask.details
        await pilot.press("enter")  # Cancel has the focus
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert pane.busy == {} and not [w for w in app.workers if w.group == "ports-control"]
        for port, key in ((9002, "r"), (9003, "u")):
            pane.select_port(port)
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen) and app.focused.id == "confirm-cancel", key
            await pilot.press("n")
            await settle(pilot)
        said = Said(app)
        pane.select_port(9001)  # up: u says so instead of asking
        await pilot.press("u")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and "9001 is up already" in said
        pane.select_port(9100)  # started by hand: r cannot start it again
        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and "started by hand" in said


async def test_readonly_hides_and_refuses_every_key_that_writes(reg_ws: Workspace) -> None:
    app = app_on(reg_ws, readonly=True)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        pane.hold(fixture_rows())
        await settle(pilot)
        said = Said(app)
        for port, key, action in ((9003, "u", "start"), (9001, "d", "stop"), (9001, "r", "restart")):
            pane.select_port(port)
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            assert f"{action}: refused, the console is read-only" in said
            assert pane.check_action(action, ()) is False
        assert "read-only" in str(pane.query_one("#ports-head").content)
        await pilot.press("enter")  # reading is fine
        await pilot.pause()
        assert isinstance(app.screen, PortDetail)


async def test_the_drill_down_traces_the_port_to_files_and_reads_the_audit(reg_ws: Workspace) -> None:
    app = app_on(reg_ws)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await opened(pilot)
        rows = fixture_rows()
        pane.hold(rows)
        await settle(pilot)
        pane.select_port(9001)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PortDetail) and app.screen.reads > 0)
        screen = app.screen
        assert screen.versions["v1"].run_id == "lvm-amn-mse"  # the registry's record of the active version
        text = "\n".join(as_text(s.content) for s in screen.query("Static"))
        for part in ("/home/alice/frozen_ws/registry/artifacts/1f/1f3c.safetensors", "04" * 32, "lvm-amn-mse",
                     "val/cosine 0.71", "12,672", "abort", "p95 latency 6,200 ms > 5,000 ms", "rollback"):  # fmt: skip
            assert part in text, part
        audit = str(screen.query_one("#detail-audit").content)
        assert audit.index("abort") < audit.index("rollback")  # newest first
        pane.hold([dataclasses.replace(rows[0], state="hung", detail="no answer for 3.0 s"), *rows[1:]])
        await settle(pilot)
        assert "no answer for 3.0 s" in as_text(screen.query_one("#detail-facts").content)  # kept current
        await pilot.press("escape")
        assert not isinstance(app.screen, PortDetail)


async def test_a_version_moved_by_the_server_is_said_at_once_with_its_reason(reg_ws: Workspace) -> None:
    """Between two polls lvm-amn's canary went (the fixture's newest entry: an automatic-looking
    abort): the pane reads that entry from the registry and says its reason."""
    app = app_on(reg_ws, cls=UnpolledApp)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        first = dataclasses.replace(fixture_rows()[0], canary="v3", traffic=25)
        pane.post_message(PortsPolled([first]))
        await settle(pilot)
        assert not said.texts
        pane.post_message(PortsPolled([dataclasses.replace(first, canary=None, traffic=0)]))
        await until(pilot, lambda: "p95 latency 6,200 ms > 5,000 ms" in said)
        assert "port 9001: v1 + v3 → v1" in said and "abort v3 → v1: p95 latency" in said, said.texts
        pane.post_message(PortsPolled([dataclasses.replace(first, canary=None, traffic=0, state="down")]))
        pane.post_message(PortsPolled([first]))  # the same entry is never said twice
        await settle(pilot)
        assert len([t for t in said.texts if "6,200" in t]) == 1


async def test_an_abort_between_two_polls_is_said_when_the_registry_changes(reg_ws: Workspace) -> None:
    app = app_on(reg_ws, cls=UnpolledApp)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        row = fixture_rows()[1]  # ternary-vae v2 + v3 at 10 %
        pane.post_message(PortsPolled([row]))
        await until(pilot, lambda: "ternary-vae" in pane._audit_seen)  # what is old news
        pane.post_message(RegistryChanged())  # a canary step is no news
        with Registry(reg_ws) as reg:
            reg.canary("ternary-vae", "v3", 25, reason="step")
        await settle(pilot)
        assert not said.texts
        with Registry(reg_ws) as reg:
            reg.abort("ternary-vae", reason="error rate 0.5 > 0.15 in a 30 s window of 40 requests")
        pane.post_message(RegistryChanged())  # the row never showed the canary gone
        await until(pilot, lambda: "error rate 0.5 > 0.15" in said)
        assert "ternary-vae port 9002" in said and "abort v3 → v2" in said


# --------------------------------------------------------------------------- real port servers


def serve_by_hand(ws: Workspace, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "trainledger.engines.serving", "serve", "--workspace", str(ws.root), "--passthrough",
            "--dim", "4", "--port", str(port), "--exit-with-parent"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not any(r.port == port and r.alive for r in records.read_records(ws)):
        assert proc.poll() is None and time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.05)
    return proc


@pytest.mark.slow
async def test_u_d_and_r_start_drain_and_restart_a_real_port(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    port = free_port()
    ws.ports_file.write_text(f"[[port]]\nport = {port}\npassthrough = true\ndim = 4\n")
    app = app_on(ws)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await opened(pilot)
            await until(pilot, lambda: (r := row_of(pane, port)) is not None and r.state == "stopped")
            await pilot.press("u")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen) and app.focused.id == "confirm-cancel"
            await pilot.press("y")
            await until(pilot, lambda: (r := row_of(pane, port)) is not None and r.state == "up" and r.pid)
            first_pid = row_of(pane, port).pid  # type: ignore[union-attr]
            assert "passthrough" in str(pane.query_one("#ports-foot").content)
            # each y once its confirmation is up (a y pressed before it is shown is lost), and
            # deadlines for a 2-core box running the other test worker
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: (r := row_of(pane, port)) is not None and r.state == "up"
                        and r.pid not in (None, first_pid), timeout=45)  # fmt: skip
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: (r := row_of(pane, port)) is not None and r.state == "stopped", timeout=45)
            assert not [r for r in records.read_records(ws) if r.alive]
    finally:
        process.stop_port(ws, port)


@pytest.mark.slow
async def test_a_port_started_by_hand_shows_and_a_hung_one_never_stalls_the_pane(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    port = free_port()
    proc = serve_by_hand(ws, port)
    try:
        app = app_on(ws, watch=True)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await opened(pilot)
            await until(pilot, lambda: (r := row_of(pane, port)) is not None and r.state == "up")
            assert row_of(pane, port).configured is False  # type: ignore[union-attr]
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                await until(pilot, lambda: row_of(pane, port).state == "hung")  # type: ignore[union-attr]
                polls, started = pane.polls, time.monotonic()
                await until(pilot, lambda: pane.polls >= polls + 2)  # still about once a second
                assert time.monotonic() - started < 2 * (1.0 + 0.5) + 1.0
                polls = pane.polls
                await until(pilot, lambda: pane.polls > polls and not pane._polling)
                pane.post_message(PortsChanged())  # polls at once, not a second later
                await pilot.pause()
                assert pane._polling or pane.polls > polls + 1
                other = free_port()  # the watcher sees ports.toml change
                ws.ports_file.write_text(f"[[port]]\nport = {other}\npassthrough = true\n")
                await until(pilot, lambda: row_of(pane, other) is not None, timeout=3.0)
                assert row_of(pane, other).state == "stopped"  # type: ignore[union-attr]
                assert pane.query_one(PortsTable).row_count == 2
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            await until(pilot, lambda: row_of(pane, port).state == "up")  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
async def test_a_failing_canary_aborted_by_its_server_shows_at_once_with_its_reason(tmp_path: Path) -> None:
    """A real server with an injected error rate on v2: the registry puts v2 on canary, the server
    aborts it by itself, and the pane says so with the audit's reason. The runs are trained in a
    child process, so this (console) process never imports torch."""
    from tests.engines.serving.served import MODEL, context
    from trainledger.engines.serving.portsfile import read_ports
    from trainledger.engines.workspace import open_workspace

    root = tmp_path / "ws"
    script = "import sys; from pathlib import Path; from tests.engines.serving.served import registry_workspace; " \
             "registry_workspace(Path(sys.argv[1]))"  # fmt: skip
    subprocess.run([sys.executable, "-c", script, str(root)], check=True, cwd=Path(__file__).parents[2], timeout=120)
    ws = open_workspace(root)
    with Registry(ws) as reg:
        reg.set_policy(MODEL, {"window_s": 1.0, "min_requests": 5})
    port = free_port()
    ws.ports_file.write_text(f'[[port]]\nport = {port}\nmodel = "{MODEL}"\nfault = ["v2:error=0.5"]\n')
    process.start_port(ws, read_ports(ws)[0], exit_with_parent=True)
    stop = threading.Event()

    def traffic() -> None:
        import http.client
        import json

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        body = json.dumps({"context": context()}).encode()
        while not stop.is_set():
            try:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
                conn.getresponse().read()
            except OSError:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            stop.wait(0.01)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        app = app_on(ws, watch=True)
        async with app.run_test(size=(160, 48)) as pilot:
            pane = await opened(pilot)
            said = Said(app)
            await until(pilot, lambda: (r := row_of(pane, port)) is not None and r.state == "up" and r.active == "v1")
            with Registry(ws) as reg:
                reg.canary(MODEL, "v2", 50, reason="try v2")
            await until(pilot, lambda: "error rate" in said, timeout=20)  # whether a poll saw v2 or not
            with Registry(ws) as reg:
                aborted = reg.audit(MODEL, limit=1, newest_first=True)[0]
            assert aborted.action == "abort" and aborted.reason in " ".join(said.texts)
            assert f"{MODEL} port {port}" in said and "abort v2 → v1" in said
            await until(pilot, lambda: row_of(pane, port).canary is None)  # type: ignore[union-attr]
    finally:
        stop.set()
        sender.join(5)
        process.stop_port(ws, port)
