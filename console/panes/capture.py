"""The Capture pane: live SAN capture sessions, the capture server's state, the newest frame.

Two thread workers feed it and nothing on the UI thread touches a file or a socket:
- a session scan (engines.capture.sessions) after each CaptureChanged from the watcher,
  coalesced to at most SCANS_PER_S and never two at once;
- the server's poller (engines.capture.live.Poller: state file + typed /stats once a second,
  the next poll only after the previous one answered), for as long as the pane lives.
The pane renders by difference: a table cell is rewritten only when its text changed, the
detail blocks only when the chosen session, the stats or the width changed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from trainledger.console.messages import (
    CaptureChanged,
    CaptureScanned,
    CaptureServerPolled,
)
from trainledger.console.text import clean, clean_lines, notify_plain
from trainledger.console.widgets.capture_detail import CaptureDetail
from trainledger.console.widgets.capture_server_line import server_line, start_error
from trainledger.console.widgets.capture_table import CaptureTable
from trainledger.engines.capture.live import (
    Poller,
    ServerPoll,
    ServerStats,
    SessionCounts,
    is_live,
    merge_sessions,
    poll_server,
    server_fps,
    session_counts,
)
from trainledger.engines.capture.sessions import (
    CaptureSnapshot,
    SessionScanner,
    SessionSummary,
)
from trainledger.engines.workspace import Workspace

SCANS_PER_S = 4
POLL_S = 1.0
SCAN_BYTES = (
    8 << 20
)  # per scan (~50 ms of decoding); more waits for the next scan, so the GIL stays shared
TOKEN_ENV = "TRAINLEDGER_CAPTURE_TOKEN"


class CapturePane(Widget):
    """Sessions on the left (or top), the chosen session's live picture beside them."""

    DEFAULT_CSS = """
    CapturePane { height: 1fr; }
    CapturePane #cap-server { height: auto; max-height: 3; padding: 0 1; }
    CapturePane #cap-body { height: 1fr; layout: vertical; }
    CapturePane #cap-sessions { height: auto; max-height: 8; }
    CapturePane #cap-detail { height: 1fr; padding: 0 1; }
    CapturePane.-wide #cap-body { layout: horizontal; }
    CapturePane.-wide #cap-sessions { height: 1fr; max-height: 100%; width: 76; }
    CapturePane #cap-mid, CapturePane #cap-bars { height: auto; }
    CapturePane #cap-rejects, CapturePane #cap-latency { width: 1fr; height: auto; }
    CapturePane #cap-rejects { padding-right: 1; }
    CapturePane #cap-gestures, CapturePane #cap-cameras { width: 1fr; height: auto; }
    CapturePane .cap-block { height: auto; }
    """

    WANTS = (CaptureChanged,)  # the watcher's messages this pane is sent
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "open_session", "Open session", id="capture.open"),
        Binding("S", "toggle_server", "Start/stop server", id="capture.server"),
        Binding("r", "rescan", "Rescan files", id="capture.rescan", show=False),
        Binding(
            "d",
            "scroll_detail(1)",
            "Details down",
            id="capture.details_down",
            show=False,
        ),
        Binding(
            "u", "scroll_detail(-1)", "Details up", id="capture.details_up", show=False
        ),
    ]

    def __init__(
        self,
        workspace: Workspace,
        clock: Callable[[], float] = time.time,
        server_port: int = 9471,
        poll_server: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.clock = clock
        self.server_port = server_port
        self.poll_server = poll_server
        self.scanner = SessionScanner(workspace.captures_dir)
        self.snapshot: CaptureSnapshot | None = None
        self.server_state: Any = None
        self.stats: ServerStats | None = None
        self.server_available = True
        self.server_polled = False
        self.server_busy = False  # a start or stop is under way
        self.last_error: str | None = None
        self._scanning = False
        self._scan_dirty = False
        self._scan_timer: Any = None
        self._last_scan_at = 0.0
        self._server_text: Text | None = None
        self.scans = 0  # how many scans finished (tests and benchmarks read it)
        self.scan_error: str | None = None  # why the last scan failed, until one succeeds
        self._say_rescanned = False  # `r` asked: say so when the next scan is in

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static("", id="cap-server")
        with Container(id="cap-body"):
            yield CaptureTable(id="cap-sessions")
            yield CaptureDetail(id="cap-detail")

    def on_mount(self) -> None:
        watcher = getattr(self.app, "watcher", None)
        if watcher is not None:  # mounted lazily, after the app started its watcher
            watcher.subscribe(self, *self.WANTS)
        self.request_scan()
        if self.poll_server:
            self._poll_server()
        self._render_server()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= 140, "-wide")
        self.query_one(CaptureDetail).forget()
        self.call_after_refresh(self._render_detail)

    # ------------------------------------------------------------------ scanning
    @on(CaptureChanged)
    def _capture_changed(self, _: CaptureChanged) -> None:
        self.request_scan()

    def request_scan(self) -> None:
        """Scan soon: at once if idle and the last scan is old enough, else coalesce."""
        if self._scanning:
            self._scan_dirty = True
            return
        if self._scan_timer is not None:
            return
        wait = self._last_scan_at + 1.0 / SCANS_PER_S - time.monotonic()
        if wait > 0:
            self._scan_timer = self.set_timer(wait, self._scan_now)
        else:
            self._scan_now()

    def _scan_now(self) -> None:
        self._scan_timer = None
        self._scanning = True
        self._scan_dirty = False
        scanner = self.scanner

        def work() -> None:
            snap, error = None, None
            try:
                snap = scanner.scan(max_bytes=SCAN_BYTES)
            except Exception as exc:  # noqa: BLE001 - shown in the pane; the next change scans again
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self.post_message(CaptureScanned(snap, error))

        self.run_worker(work, thread=True, group="capture-scan", exit_on_error=False,
                        description="scan san-training/ session files")  # fmt: skip

    @on(CaptureScanned)
    def _scanned(self, message: CaptureScanned) -> None:
        self._scanning = False
        self._last_scan_at = time.monotonic()
        if message.error is not None and message.error != self.scan_error:
            notify_plain(self, f"scanning {self.shown_path(self.workspace.captures_dir)} failed: "
                         f"{message.error}\nit is scanned again on the next change",
                         title="Capture", severity="error", timeout=10)  # fmt: skip
        self.scan_error = message.error
        snap: CaptureSnapshot | None = message.snapshot
        if snap is not None:
            self.scans += 1
            self.snapshot = snap
            self._sync_table()
            self._render_detail()
            self._refresh_drill_down()
            if self._say_rescanned and snap.complete:
                self._say_rescanned = False
                n = len(self.merged())
                notify_plain(self, f"rescanned {self.shown_path(self.workspace.captures_dir)}: "
                             f"{n} session{'' if n == 1 else 's'}, {snap.bytes_read:,} new bytes read",
                             title="Capture", timeout=4)  # fmt: skip
            if not snap.complete:
                self._scan_dirty = True  # more bytes wait: go on after the usual gap
        if self._scan_dirty:
            self.request_scan()

    def action_scroll_detail(self, direction: int) -> None:
        detail = self.query_one(CaptureDetail)
        detail.scroll_to(
            y=detail.scroll_y + direction * max(1, detail.size.height - 2),
            animate=False,
        )

    def action_rescan(self) -> None:
        self._say_rescanned = True
        self.request_scan()

    def _refresh_drill_down(self) -> None:
        """Keep an open drill-down current: the file's facts and the server's counts."""
        # the drill-down module is imported when first opened (not at start-up): if it
        # is not loaded, no drill-down can be showing
        drill = sys.modules.get("trainledger.console.screens.capture_session")
        if drill is None or not isinstance(self.app.screen, drill.CaptureSessionScreen):
            return
        screen = self.app.screen
        fresh = self.merged().get(screen.summary.id)
        if fresh is not None:
            screen.show(fresh, self.counts(fresh), self.shown_path(fresh.path))

    # ------------------------------------------------------------------ server polling
    def _poll_server(self) -> None:
        """Start the poller (once): it runs until the pane goes and its worker is cancelled."""
        ws, token = self.workspace, os.environ.get(TOKEN_ENV)

        def deliver(poll: ServerPoll) -> None:
            self.post_message(CaptureServerPolled(poll))

        def work() -> None:
            stop = get_current_worker().cancelled_event
            Poller(lambda: poll_server(ws, token), deliver, POLL_S).run(stop)

        self.run_worker(work, thread=True, group="capture-server", exclusive=True,
                        exit_on_error=False, description="poll the capture server")

    def _poll_now(self) -> None:
        """One poll at once (after a start or stop), beside the poller's own."""
        ws, token = self.workspace, os.environ.get(TOKEN_ENV)

        def work() -> None:
            self.post_message(CaptureServerPolled(poll_server(ws, token)))

        self.run_worker(work, thread=True, group="capture-server-now", exit_on_error=False,
                        description="poll the capture server once")

    @on(CaptureServerPolled)
    def _server_polled(self, message: CaptureServerPolled) -> None:
        self.server_state = message.state
        self.stats = message.stats
        self.server_available = message.available
        self.server_polled = True
        self._render_server()
        self._sync_table()  # "live" depends on the stats and on the clock
        self._render_detail()
        self._refresh_drill_down()

    # ------------------------------------------------------------------ rendering
    def _live(self, s: SessionSummary) -> bool:
        return is_live(s, self.stats, self.clock())

    def merged(self) -> dict[str, SessionSummary]:
        """The session files, then sessions the running server saw but wrote no frame for."""
        if self.snapshot is None:
            return {}
        return merge_sessions(self.snapshot.sessions, self.stats, self.workspace.captures_dir)

    def counts(self, s: SessionSummary) -> SessionCounts:
        """This session's counts and reasons, as the table, detail and drill-down show them."""
        on_disk = self.snapshot is not None and self.snapshot.get(s.id) is not None
        return session_counts(s, self.stats, on_disk)

    def _sync_table(self) -> None:
        if self.snapshot is None or not self.is_mounted:
            return
        self.query_one(CaptureTable).sync(self.merged(), self._live, self.counts)

    def shown_path(self, path: Path) -> str:
        """A workspace path as the top bar spells the workspace (~ for home)."""
        location = getattr(self.app, "location", None)
        try:
            rel = path.relative_to(self.workspace.root)
        except ValueError:
            return str(path)
        if not location:
            return str(path)
        return location if str(rel) == "." else f"{location}/{rel}"

    def selected(self) -> SessionSummary | None:
        sessions = self.merged()
        if not sessions:
            return None
        key = self.query_one(CaptureTable).cursor_id()
        found = sessions.get(key) if key is not None else None
        if found is not None:
            return found
        return next(iter(sessions.values()))

    def _render_server(self) -> None:
        if not self.is_mounted:
            return
        text = server_line(
            self.app, self.server_state, self.stats, self.server_available, self.server_polled,
            self.shown_path(self.workspace.root), self.clock(), self.server_busy, self.last_error,
        )  # fmt: skip
        if text != self._server_text:
            self._server_text = text
            self.query_one("#cap-server", Static).update(text)

    def _render_detail(self) -> None:
        if not self.is_mounted:
            return
        s = self.selected()
        live = s is not None and self._live(s)
        empty = (f"No capture sessions in {self.shown_path(self.workspace.captures_dir)} yet. Start the server (S) "
                 "and stream frames, or drop schema-v2 JSONL files there.")  # fmt: skip
        fps_src = server_fps(self.stats, self.clock()) if live else None
        counts = self.counts(s) if s is not None else None
        self.query_one(CaptureDetail).show(s, fps_src, counts, empty)

    def summary(self) -> str:
        """Sessions and the server, as text (the headless demo prints it)."""
        sessions = self.merged()
        state = self.server_state
        running = state is not None and getattr(state, "alive", False)
        where = clean(state.url) if running else "stopped"
        lines = [f"capture: {len(sessions)} session(s), server {where}"]
        for sid, s in sorted(sessions.items()):
            c = self.counts(s)
            lines.append(f"  {clean(sid)}  {c.frames} frames  {c.rejected} rejected")
        return "\n".join(lines)

    def restyle(self) -> None:
        """The theme changed: colours are baked into the detail texts."""
        self.query_one(CaptureDetail).forget()
        self._server_text = None
        self._render_server()
        self._render_detail()

    @on(DataTable.RowHighlighted, "#cap-sessions")
    def _cursor_moved(self, _: DataTable.RowHighlighted) -> None:
        self._render_detail()

    # ------------------------------------------------------------------ actions
    @on(DataTable.RowSelected, "#cap-sessions")
    def _row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_open_session()

    def action_open_session(self) -> None:
        s = self.selected()
        if s is None:
            self.notify("no capture session yet", title="Capture", severity="warning")
            return
        from trainledger.console.screens.capture_session import CaptureSessionScreen

        self.app.push_screen(CaptureSessionScreen(s, self.shown_path(s.path), self.counts(s)))

    def action_toggle_server(self) -> None:
        if self.server_busy:
            self.notify(
                "the capture server is being started or stopped", title="Capture"
            )
            return
        if not self.server_available:
            self.notify("the capture server is not available in this build", title="Capture",
                        severity="error")  # fmt: skip
            return
        state = self.server_state
        if state is not None and state.alive:
            plan = (f"The server at {state.url} (pid {state.pid}) gets SIGTERM, then SIGKILL after 5 s.\n"
                    "Every frame it acknowledged is already in its session file; clients "
                    "streaming to it will get connection errors until it is started again.")  # fmt: skip

            def chosen(confirmed: bool | None) -> None:
                if confirmed:
                    self._server_action("stop")

            from trainledger.console.screens.confirm import Confirmation, ConfirmScreen

            ask = Confirmation(
                title="Stop the capture server?", action="Stop the server",
                cancel="Keep it running", change=(f"serving {state.url}", "stopped"), details=plan,
            )  # fmt: skip
            self.app.push_screen(ConfirmScreen(ask), chosen)
            return
        self._server_action("start")

    def _server_action(self, what: str) -> None:
        ws, port, app = self.workspace, self.server_port, self.app
        where = self.shown_path(ws.root)
        self.server_busy = True
        self.last_error = None
        self._render_server()

        def work() -> None:
            from trainledger.engines.capture import process

            error = None
            try:
                if what == "start":
                    state = process.start_server(ws, port=port)
                    note = f"capture server at {state.url}"
                else:
                    stopped = process.stop_server(ws)
                    note = (
                        "capture server stopped"
                        if stopped
                        else "no capture server was running"
                    )
            except (process.CaptureServerError, OSError) as exc:
                error = (
                    start_error(str(exc), port, where) if what == "start" else str(exc)
                )
                note = None
            app.call_from_thread(self._server_done, note, error)

        self.run_worker(work, thread=True, group="capture-server-control", exit_on_error=False,
                        description=f"{what} the capture server")  # fmt: skip

    def _server_done(self, note: str | None, error: str | None) -> None:
        self.server_busy = False
        self.last_error = error
        if error:
            self.notify(clean_lines(error), title="Capture server", severity="error", timeout=12,
                        markup=False)  # the error text comes from a process
        elif note:
            self.notify(clean_lines(note), title="Capture server", timeout=4, markup=False)
        self._render_server()
        if self.poll_server:
            self._poll_now()
