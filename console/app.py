"""The trainledger console: four panes over one workspace, fed by one watcher.

The app owns the workspace, the theme and the watcher; the panes own their data.
Nothing here blocks on files: panes read in thread workers, the watcher is an
async worker, and torch is never imported in this process.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.filter import LineFilter
from textual.lazy import Lazy
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from trainledger.console.executor import DaemonThreadPool
from trainledger.console.panes.capture import CapturePane
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.panes.planned import PORTS, VERSIONS, PlannedPane
from trainledger.console.prefetch import Prefetch
from trainledger.console.screens.capture_session import CaptureSessionScreen
from trainledger.console.screens.help import HelpScreen, binding_rows
from trainledger.console.text import ControlCharacterFilter, clean, notify_plain, plain
from trainledger.console.watcher import WorkspaceWatcher
from trainledger.engines.workspace import Workspace
from trainledger.themes import CSS_PATH, THEMES, choose_theme, register_themes

if TYPE_CHECKING:
    from trainledger.engines.demo import DemoProcesses

def _pretty(path: Path) -> str:
    """The workspace path as a person reads it: ~ for the home folder."""
    where, home = str(path), str(Path.home())
    return "~" + where[len(home):] if where.startswith(home + os.sep) else where


PANES = (("curves", "Curves"), ("capture", "Capture"), ("versions", "Versions"), ("ports", "Ports"))


class TrainledgerApp(App[None]):
    TITLE = "trainledger"
    CSS_PATH = CSS_PATH
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("1", "show_pane('curves')", "Curves", id="app.pane.curves", show=False),
        Binding("2", "show_pane('capture')", "Capture", id="app.pane.capture", show=False),
        Binding("3", "show_pane('versions')", "Versions", id="app.pane.versions", show=False),
        Binding("4", "show_pane('ports')", "Ports", id="app.pane.ports", show=False),
        Binding("t", "next_theme", "Next theme", id="app.theme", show=False),
    ]

    DEFAULT_CSS = """
    #topbar { dock: top; height: 1; background: $panel; color: $text; padding: 0 1; }
    TabbedContent, TabPane { height: 1fr; }
    TabPane { padding: 0; }
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        theme: str | None = None,
        watch: bool = True,
        origin: str | None = None,
        demo: "DemoProcesses | None" = None,
        clock: Callable[[], float] = time.time,
        location: str | None = None,
        prefetch: Prefetch | None = None,
    ) -> None:
        self._requested_theme = choose_theme(theme, os.environ)  # fails early on a bad name
        # Under NO_COLOR Textual adds a filter: with ansi_color it is NoColor (the terminal's
        # own colours, bold/dim/reverse kept); without, Monochrome, which turns the mono
        # theme's ANSI default colours into black on black.
        super().__init__(ansi_color=True if "NO_COLOR" in os.environ else None)
        if self.no_color:
            self.add_class("-no-color")  # app.tcss: reverse video where colour showed
        self._control_filter = ControlCharacterFilter()
        self.workspace = workspace
        self.watch_enabled = watch
        self.origin = origin
        self.demo = demo
        self.clock = clock
        self.watcher: WorkspaceWatcher | None = None
        self.exit_after: float | None = None
        self.summary = ""
        self.location = location or _pretty(workspace.root)
        # Start reading before Textual lays out the first frame (the CLI starts it earlier still).
        self.prefetch = prefetch or Prefetch(workspace).start()
        # Before any widget mounts: panes read theme colours as soon as data arrives.
        register_themes(self)
        self.theme = self._requested_theme

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(self._topbar(), id="topbar", markup=False)
        with TabbedContent(initial="curves"):
            with TabPane("1 Curves", id="curves"):
                yield CurvesPane(self.workspace, clock=self.clock, prefetch=self.prefetch)
            with TabPane("2 Capture", id="capture"):
                # mounted after the first paint: the Curves chart is what must show first
                yield Lazy(CapturePane(self.workspace, clock=self.clock))
            with TabPane("3 Versions", id="versions"):
                yield PlannedPane(VERSIONS, self.workspace.root, self.location)
            with TabPane("4 Ports", id="ports"):
                yield PlannedPane(PORTS, self.workspace.root, self.location)
        yield Footer()

    def _topbar(self) -> Text:
        tag = f" · {self.origin}" if self.origin and self.origin != "argument" else ""
        return plain(f"trainledger · {self.location}{tag}")  # a folder name is data too

    def on_load(self) -> None:
        # Thread workers run on the loop's default executor: make it one that never keeps
        # the console from exiting when a worker is stuck (console/executor.py).
        asyncio.get_running_loop().set_default_executor(DaemonThreadPool())

    def get_line_filters(self) -> Sequence[LineFilter]:
        return [*super().get_line_filters(), self._control_filter]

    def on_mount(self) -> None:
        if self.watch_enabled:
            self.watcher = WorkspaceWatcher(self.workspace.root, on_error=self._watch_failed)
            for pane in self.query(CurvesPane):
                self.watcher.subscribe(pane, *pane.WANTS)
            for capture in self.query(CapturePane):  # none yet if it is still lazy
                self.watcher.subscribe(capture, *capture.WANTS)  # (it subscribes itself when it mounts)
            for planned in self.query(PlannedPane):
                self.watcher.subscribe(planned, *planned.spec.wants)
            self.run_worker(self.watcher.run(), group="watcher", exclusive=True,
                            exit_on_error=False, description="watch the workspace")
        if self.exit_after is not None:
            self.set_timer(self.exit_after, self._exit_with_summary)
        self.query_one(CurvesPane).query_one("#runs").focus()

    def _watch_failed(self, text: str) -> None:
        notify_plain(self, text, title="Watching the workspace", severity="warning", timeout=10)

    def on_unmount(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.prefetch.cancel()

    # ------------------------------------------------------------------ actions
    def action_show_pane(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane
        self._focus_in(pane)

    def _focus_in(self, pane: str, tries: int = 10) -> None:
        """Focus the pane's first focusable widget; a lazily mounted pane may need a few refreshes."""
        tabs = self.query_one(TabbedContent)
        if tabs.active != pane:
            return  # the user moved on
        focusable = [w for w in tabs.get_pane(pane).query("*") if w.focusable]
        if focusable:
            focusable[0].focus()
        elif tries > 0:
            self.call_after_refresh(self._focus_in, pane, tries - 1)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_rows()))

    def help_rows(self) -> list[tuple[str, str, str]]:
        return binding_rows(
            [
                ("Global", self.BINDINGS),  # type: ignore[list-item]
                ("Curves", CurvesPane.BINDINGS),  # type: ignore[list-item]
                ("Capture", CapturePane.BINDINGS),  # type: ignore[list-item]
                ("Session", CaptureSessionScreen.BINDINGS),  # type: ignore[list-item]
                ("Help", HelpScreen.BINDINGS),  # type: ignore[list-item]
            ]
        )

    def action_next_theme(self) -> None:
        names = list(THEMES)
        i = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(i + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    def watch_theme(self, _: str) -> None:
        if not self.screen_stack:  # set in __init__, before any screen exists
            return
        for pane in self.query(CurvesPane):
            pane.restyle()
        for capture in self.query(CapturePane):
            capture.restyle()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for pane_id, title in PANES:
            yield SystemCommand(f"Show {title}", f"Switch to the {title} pane",
                                lambda p=pane_id: self.action_show_pane(p))
        yield SystemCommand("Help: keys", "Every key of the console", self.action_help)
        curves = self.query(CurvesPane)
        if curves:
            pane = curves.first()
            for b in CurvesPane.BINDINGS:
                assert isinstance(b, Binding)
                action = getattr(pane, f"action_{b.action}")
                yield SystemCommand(f"Curves: {b.description}", f"key {b.key}", action)
        for capture in self.query(CapturePane):
            for b in CapturePane.BINDINGS:
                run = lambda a=b.action, c=capture: c.call_later(c.run_action, a)  # noqa: E731
                yield SystemCommand(f"Capture: {b.description}", f"key {b.key}", run)

    # ------------------------------------------------------------------ scripts
    def _exit_with_summary(self) -> None:
        self.summary = self.headless_summary()  # the widgets are gone after exit
        self.exit()

    def headless_summary(self) -> str:
        """A plain-text account of what the console held, for --headless-seconds."""
        pane = self.query_one(CurvesPane)
        lines = [f"runs: {len(pane.infos)}"]
        for run_id, info in sorted(pane.infos.items()):
            snap = pane.snapshots.get(run_id)  # only plotted runs are read in full
            rows = f"{snap.n} rows" if snap else "not read (not plotted)"
            lines.append(f"  {clean(run_id)}  {clean(info.status)}  {rows}")
        if pane.state.metric:
            lines.append(f"chart: {pane.state.metric}")
        panes = self.query(CapturePane)  # mounted lazily: not there in the first frames
        sessions = panes.first().merged() if panes else {}
        server = panes.first().server_state if panes else None
        running = server is not None and getattr(server, "alive", False)
        lines.append(f"capture: {len(sessions)} session(s), server {server.url if running else 'stopped'}")
        for sid, s in sorted(sessions.items()):
            lines.append(f"  {clean(sid)}  {s.frames} frames  {s.rejected} rejected")
        return "\n".join(lines)
