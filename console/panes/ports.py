"""The Ports pane: every port the workspace serves as one live matrix (engines/serving/view.PortView
rows), a port's drill-down on enter, and the keys that start, drain and restart a port.

Nothing here probes or reads on the UI thread. A thread worker calls `PortProber(ws).poll()`
(one call probes every port concurrently, each bounded by its timeout, so a hung port never
delays the others); the rows come back as a message and the next poll is armed 1 s after the
previous one began, never two at once (dolphie's loop). PortsChanged (ports.toml changed) and
RegistryChanged poll at once. When a row's active or canary version changes between polls (the
server aborted a failing canary or rolled back a failing bake, or someone promoted), a worker
reads the model's newest audit entry and the pane says it with its reason, at once; after a
RegistryChanged an abort or rollback newer than what was read before is said even when no poll
saw the canary. The keys' actions and those notices are in ports_actions.py, the drawing in
widgets/ports_render.py, the drill-down in screens/port_detail.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Static

from trainledger.console.messages import PortsChanged, RegistryChanged
from trainledger.console.panes.ports_actions import PortsActions, PortsMoves
from trainledger.console.styles import theme_style
from trainledger.console.text import clean, notify_plain, plain
from trainledger.console.widgets import ports_render as render
from trainledger.engines.workspace import Workspace

if TYPE_CHECKING:
    from trainledger.engines.serving.view import PortView

POLL_S = 1.0
TOKEN_ENV = "TRAINLEDGER_SERVE_TOKEN"


class PortsPolled(Message):
    """The prober's rows (None when the poll failed; `error` says why)."""

    def __init__(self, rows: Sequence[PortView] | None, error: str | None = None, fatal: bool = False,
                 problem: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.rows = rows
        self.error = error
        self.fatal = fatal  # the prober cannot be loaded: polling stops until the next change
        self.problem = problem  # why ports.toml could not be read (the records' ports still show)


class PortsTable(DataTable[int]):
    """The matrix; its columns follow the width (ports_render.layout)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.columns_shown: tuple[tuple[render.Column, int], ...] = ()
        self.shown: dict[int, tuple[Any, ...]] = {}
        self.cell_updates = 0
        self._keep: int | None = None  # the port the cursor stays on across a rebuild

    def set_layout(self, columns: tuple[tuple[render.Column, int], ...]) -> bool:
        if columns == self.columns_shown:
            return False
        keep = self.cursor_port()
        self.clear(columns=True)
        self.shown = {}
        self.columns_shown = columns
        for col, width in columns:
            self.add_column(render.header(col, width), width=width, key=col.key)
        self._keep = keep
        return True

    def sync(self, rows: Sequence[PortView], look: render.Look) -> None:
        """Rewrite only the cells whose text changed; add and remove rows by port, in port order."""
        wanted = {r.port: render.cells(r, self.columns_shown, look) for r in sorted(rows, key=lambda r: r.port)}
        if any(p not in self.shown and p < max(self.shown, default=p) for p in wanted):
            keep = self.cursor_port()  # a port joins above others: rebuild in order (rare)
            self.clear()
            self.shown = {}
            self._keep = keep
        for gone in [p for p in self.shown if p not in wanted]:
            self.remove_row(str(gone))
            del self.shown[gone]
        keys = [col.key for col, _ in self.columns_shown]
        for port, row in wanted.items():
            old = self.shown.get(port)
            if old is None:
                self.add_row(*row, key=str(port))
            elif old != row:
                for key, a, b in zip(keys, old, row, strict=True):
                    if a != b:
                        self.update_cell(str(port), key, b)
                        self.cell_updates += 1
            self.shown[port] = row
        if self._keep is not None and self._keep in self.shown:
            self.move_cursor(row=self.get_row_index(str(self._keep)))
            self._keep = None

    def cursor_port(self) -> int | None:
        if self.row_count and self.cursor_row is not None and 0 <= self.cursor_row < self.row_count:
            return int(self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value)
        return None


class PortsPane(PortsActions, PortsMoves, Widget):
    """The matrix, a line above it (tally, freshness, keys) and the chosen port under it."""

    DEFAULT_CSS = """
    PortsPane { height: 1fr; }
    PortsPane #ports-head { height: 1; padding: 0 1; }
    PortsPane #ports-problem { height: auto; max-height: 3; padding: 0 1; color: $warning; }
    PortsPane #ports-table { height: 1fr; }
    PortsPane #ports-foot { height: auto; max-height: 7; padding: 0 1; border-top: solid $panel; }
    PortsPane #ports-empty { height: auto; padding: 1 2; }
    """
    WANTS = (PortsChanged, RegistryChanged)
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "open_port", "Drill down", id="ports.open"),
        Binding("u", "start", "Start port", id="ports.start"),
        Binding("d", "stop", "Drain and stop", id="ports.stop"),
        Binding("r", "restart", "Restart", id="ports.restart"),
    ]

    def __init__(self, workspace: Workspace, clock: Callable[[], float] = time.time, poll: bool = True,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.workspace = workspace
        self.clock = clock
        self.rows: dict[int, PortView] = {}
        self.look = render.Look()
        self.polls = 0  # rows received (tests wait on it)
        self.poll_error: str | None = None
        self.problem: str | None = None  # why ports.toml could not be read
        self.held = False  # a test hook fed fixed rows: the prober's are ignored
        self.busy: dict[int, str] = {}  # port -> "starting" | "stopping" | "restarting"
        self._polling_enabled = poll
        self._prober: Any = None
        self._polling = self._poll_again = False
        self._started_at = 0.0
        self._timer: Any = None
        self._seen: dict[int, tuple[str | None, str | None, str | None]] = {}  # port -> (model, active, canary)
        self._audit_seen: dict[str, int] = {}  # model -> its newest audit entry id read so far
        self._told: set[int] = set()  # audit entry ids already said
        self._width = 0

    @property
    def readonly(self) -> bool:
        return bool(getattr(self.app, "readonly", False))

    def compose(self) -> ComposeResult:
        yield Static("", id="ports-head")
        yield Static("", id="ports-problem")
        yield PortsTable(id="ports-table")
        yield Static("", id="ports-empty")
        yield Static("", id="ports-foot")

    def on_mount(self) -> None:
        if not self.query(PortsTable):  # a lazy pane whose children went with a quit before it finished mounting
            return
        watcher = getattr(self.app, "watcher", None)
        if watcher is not None:  # mounted lazily, after the app started its watcher
            watcher.subscribe(self, *self.WANTS)
        self.look = self._theme_look()
        self._relayout(self.app.size.width)
        self._draw()
        if self._polling_enabled:
            self.poll_now()

    def on_resize(self) -> None:
        if self.size.width and self._relayout(self.size.width):
            self._draw()

    def on_unmount(self) -> None:
        self._stop_timer()

    # ------------------------------------------------------------------ polling
    @on(PortsChanged)
    @on(RegistryChanged)
    def _changed(self, message: Message) -> None:
        if not self.held:
            self.poll_now()
            if isinstance(message, RegistryChanged):
                self.check_audit({}, every_model=True)  # an abort between two polls shows too

    def poll_now(self) -> None:
        """Poll at once (or right after the poll in flight); the 1 Hz loop goes on from there."""
        if not self._polling_enabled:
            return  # made without a prober (poll=False): rows come as PortsPolled messages
        if self._polling:
            self._poll_again = True
            return
        self._stop_timer()
        self._polling = True
        self._started_at = time.monotonic()
        self._poll()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    @work(thread=True, group="ports-poll", exit_on_error=False, description="probe the ports")
    def _poll(self) -> None:
        rows, error, fatal, problem = None, None, False, None
        try:
            if self._prober is None:
                import os

                from trainledger.engines.serving.prober import PortProber

                self._prober = PortProber(self.workspace, token=os.environ.get(TOKEN_ENV))
            rows = self._prober.poll()
            problem = getattr(self._prober, "problem", None)
        except ImportError as exc:
            error, fatal = f"the port prober is not available: {exc}", True
        except Exception as exc:  # noqa: BLE001 - said once; the next poll tries again
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.post_message(PortsPolled(rows, error, fatal, problem))

    @on(PortsPolled)
    def _polled(self, message: PortsPolled) -> None:
        self._polling = False
        if self.held:
            return
        if message.error is not None and message.error != self.poll_error and not message.fatal:
            notify_plain(self, f"probing the ports failed: {message.error}", title="Ports", severity="error",
                         timeout=10)  # fmt: skip
        self.poll_error = message.error
        self.problem = message.problem
        if message.rows is not None:
            self.polls += 1
            self._take(message.rows, watch_moves=True)
        if message.fatal:
            return  # a PortsChanged tries again
        if self._poll_again:
            self._poll_again = False
            self.poll_now()
        elif self.is_mounted:
            wait = max(0.05, POLL_S - (time.monotonic() - self._started_at))
            self._timer = self.set_timer(wait, self.poll_now)

    def hold(self, rows: Sequence[PortView]) -> None:
        """A test hook: show these rows and ignore the prober from now on (snapshots, key tests)."""
        self.held = True
        self._stop_timer()
        self._take(rows, watch_moves=False)

    def _take(self, rows: Sequence[PortView], watch_moves: bool) -> None:
        ordered = sorted(rows, key=lambda r: r.port)
        changed = self.moves(ordered) if watch_moves else {}
        self.rows = {r.port: r for r in ordered}
        self.busy = {p: b for p, b in self.busy.items() if p in self.rows}
        self._draw()
        self._refresh_detail()
        if watch_moves:
            self.check_audit(changed)

    # ------------------------------------------------------------------ drawing
    def _theme_look(self) -> render.Look:
        return render.look_from({v: theme_style(self.app, v) for v in ("success", "warning", "error")})

    def _relayout(self, width: int) -> bool:
        self._width = width
        return self.query_one(PortsTable).set_layout(render.layout(width))

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        rows = list(self.rows.values())
        table = self.query_one(PortsTable)
        table.sync(rows, self.look)
        width = self._width or self.app.size.width
        self.query_one("#ports-head", Static).update(render.head_text(rows, self.clock(), width, self.readonly))
        problem = self.query_one("#ports-problem", Static)
        problem.display = bool(self.problem)
        problem.update(plain(f"⚠ {self.problem}" if self.problem else ""))
        empty = self.query_one("#ports-empty", Static)
        empty.display = not rows
        if not rows:
            if self.poll_error:
                empty.update(plain(f"⚠ {self.poll_error}"))
            else:
                empty.update(render.empty_text(self._shown(self.workspace.ports_file)))
        self._render_foot()

    def _render_foot(self) -> None:
        row = self.selected()
        foot = self.query_one("#ports-foot", Static)
        foot.display = row is not None
        foot.update(render.foot_text(row, self.look, self.busy.get(row.port) if row else None))

    def _shown(self, path: Any) -> str:
        """A workspace path as the top bar spells the workspace (~ for home)."""
        location = getattr(self.app, "location", None)
        try:
            rel = path.relative_to(self.workspace.root)
        except ValueError:
            return clean(path)
        return clean(f"{location}/{rel}" if location else path)

    def selected(self) -> PortView | None:
        if not self.rows or not self.is_mounted:
            return None
        port = self.query_one(PortsTable).cursor_port()
        return self.rows.get(port) if port is not None else next(iter(self.rows.values()))

    def select_port(self, port: int) -> bool:
        table = self.query_one(PortsTable)
        if port not in table.shown:
            return False
        table.move_cursor(row=table.get_row_index(str(port)))
        self._render_foot()
        return True

    @on(DataTable.RowHighlighted, "#ports-table")
    def _cursor_moved(self, _: DataTable.RowHighlighted) -> None:
        self._render_foot()

    @on(DataTable.RowSelected, "#ports-table")
    def _row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_open_port()

    # ------------------------------------------------------------------ the drill-down
    def _detail_screen(self) -> Any:
        """The open drill-down, if any (its module is imported when first opened)."""
        mod = sys.modules.get("trainledger.console.screens.port_detail")
        if mod is not None and self.is_attached and isinstance(self.app.screen, mod.PortDetail):
            return self.app.screen
        return None

    def _refresh_detail(self) -> None:
        detail = self._detail_screen()
        if detail is not None and detail.row.port in self.rows:
            detail.show(self.rows[detail.row.port])

    def action_open_port(self) -> None:
        row = self.selected()
        if row is None:
            return notify_plain(self, "no port yet", title="Ports", severity="warning")
        from trainledger.console.screens.port_detail import PortDetail

        self.app.push_screen(PortDetail(row, self.workspace, self.look, self.clock))

    # ------------------------------------------------------------------ the pane protocol
    def restyle(self) -> None:
        if self.is_mounted:
            self.call_after_refresh(self._restyle_now)

    def _restyle_now(self) -> None:
        self.look = self._theme_look()
        table = self.query_one(PortsTable)
        table._keep = table.cursor_port()  # the colours are baked into the cells: add them again
        table.shown = {}
        table.clear()
        self._draw()

    def summary(self) -> str:
        rows = list(self.rows.values())
        return "\n".join(["ports: " + render.tally(rows), *render.said(rows)])

