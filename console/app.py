"""The trainledger console: four panes over one workspace, fed by one watcher.

The app owns the workspace, the theme and the watcher; the panes own their data. The panes
are one ordered list, `TrainledgerApp.PANES` (console/panes/base.py): tabs, number keys,
subscriptions, help, the palette, theme changes and the headless summary all iterate it.
Nothing here blocks on files: panes read in thread workers, the watcher is an
async worker, and torch is never imported in this process.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from rich.text import Text
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.filter import LineFilter
from textual.lazy import Lazy
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from trainledger.console.executor import DaemonThreadPool
from trainledger.console.panes.base import Pane, PaneEntry, number_bindings
from trainledger.console.panes.capture import CapturePane
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.panes.ports import PortsPane
from trainledger.console.panes.versions import VersionsPane
from trainledger.console.prefetch import Prefetch
from trainledger.console.screens.canary_prompt import CanaryPrompt
from trainledger.console.screens.capture_session import CaptureSessionScreen
from trainledger.console.screens.columns import ColumnsScreen
from trainledger.console.screens.help import HelpScreen, binding_rows
from trainledger.console.screens.port_detail import PortDetail
from trainledger.console.screens.run_control import NewRunScreen
from trainledger.console.screens.run_picker import RunPicker
from trainledger.console.screens.run_report import RunReportScreen
from trainledger.console.screens.run_tags import RunTagsScreen
from trainledger.console.screens.version_history import VersionHistory
from trainledger.console.text import ControlCharacterFilter, clean_lines, notify_plain, plain
from trainledger.console.watcher import WorkspaceWatcher
from trainledger.console.widgets.chart import LineChart
from trainledger.console.widgets.chart_grid import ChartGrid
from trainledger.engines.runs import StartedRun
from trainledger.engines.workspace import Workspace
from trainledger.themes import CSS_PATH, THEMES, choose_theme, register_themes

if TYPE_CHECKING:
    from trainledger.engines.demo import DemoProcesses

def _pretty(path: Path) -> str:
    """The workspace path as a person reads it: ~ for the home folder."""
    where, home = str(path), str(Path.home())
    return "~" + where[len(home):] if where.startswith(home + os.sep) else where


def _binding_commands(title: str, node: DOMNode, bindings: Iterable[object]) -> Iterable[SystemCommand]:
    """A palette command per described binding of `node` that it allows now (not one that
    `--readonly` hides)."""
    for b in bindings:
        if not isinstance(b, Binding) or not b.description:
            continue
        _, name, params = parse_action(b.action)
        if node.check_action(name, params) is False:
            continue
        yield SystemCommand(f"{title}: {b.description}", f"key {b.key}",
                            lambda a=b.action, w=node: w.call_later(w.run_action, a))  # fmt: skip


PANES: list[PaneEntry] = [
    PaneEntry("curves", "Curves", CurvesPane,
              lambda app: CurvesPane(app.workspace, clock=app.clock, prefetch=app.prefetch),
              screens=(("Chart (Tab to focus)", LineChart.BINDINGS), ("Metric grid", ChartGrid.BINDINGS),
                       ("Run", RunReportScreen.BINDINGS), ("New run", NewRunScreen.BINDINGS),
                       ("Columns", ColumnsScreen.BINDINGS), ("Run tags", RunTagsScreen.BINDINGS))),
    # mounted after the first paint: the Curves chart is what must show first
    PaneEntry("capture", "Capture", CapturePane,
              lambda app: CapturePane(app.workspace, clock=app.clock), lazy=True,
              screens=(("Session", CaptureSessionScreen.BINDINGS),)),
    PaneEntry("versions", "Versions", VersionsPane,
              lambda app: VersionsPane(app.workspace, clock=app.clock), lazy=True,
              screens=(("Canary prompt", CanaryPrompt.BINDINGS), ("Run picker", RunPicker.BINDINGS),
                       ("History", VersionHistory.BINDINGS))),
    PaneEntry("ports", "Ports", PortsPane,
              lambda app: PortsPane(app.workspace, clock=app.clock), lazy=True,
              screens=(("Port detail", PortDetail.BINDINGS),)),
]  # fmt: skip

_GLOBAL_KEYS = [
    Binding("q", "quit", "Quit", id="app.quit"),
    Binding("question_mark", "help", "Help", id="app.help"),
]
_THEME_KEY = Binding("t", "next_theme", "Next theme", id="app.theme", show=False)


class TrainledgerApp(App[None]):
    TITLE = "trainledger"
    CSS_PATH = CSS_PATH
    ENABLE_COMMAND_PALETTE = True

    PANES: list[PaneEntry] = PANES  # a subclass with its own list gets its number keys too
    BINDINGS = [*_GLOBAL_KEYS, *number_bindings(PANES), _THEME_KEY]

    def __init_subclass__(cls, **kwargs: object) -> None:
        if "PANES" in cls.__dict__ and "BINDINGS" not in cls.__dict__:
            cls.BINDINGS = [*_GLOBAL_KEYS, *number_bindings(cls.PANES), _THEME_KEY]
        super().__init_subclass__(**kwargs)  # type: ignore[arg-type]

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
        readonly: bool = False,
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
        self.readonly = readonly  # --readonly: panes hide and refuse every key that writes
        self.watcher: WorkspaceWatcher | None = None
        self.exit_after: float | None = None
        self.summary = ""
        self.location = location or _pretty(workspace.root)
        self.startup_notes: list[str] = []  # said once the screen is up (the demo's taken ports)
        self.trainers: list[StartedRun] = []  # started with `n`: they outlive the console
        self.opened_at = time.time()  # a capture server started after this was started from here (S)
        # Start reading before Textual lays out the first frame (the CLI starts it earlier still).
        self.prefetch = prefetch or Prefetch(workspace).start()
        # Before any widget mounts: panes read theme colours as soon as data arrives.
        register_themes(self)
        self.theme = self._requested_theme
        for name in list(self.available_themes):  # the palette's theme picker offers only ours
            if name not in THEMES:
                self.unregister_theme(name)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(self._topbar(), id="topbar", markup=False)
        with TabbedContent(initial=self.PANES[0].id):
            for i, entry in enumerate(self.PANES, 1):
                with TabPane(f"{i} {entry.title}" if i <= 9 else entry.title, id=entry.id):
                    widget = entry.make(self)
                    yield Lazy(widget) if entry.lazy else widget
        yield Footer()

    def panes(self) -> list[tuple[PaneEntry, Pane]]:
        """The mounted pane widgets with their entries, in tab order (a lazy one may be missing)."""
        tabs = self.query_one(TabbedContent)
        out = []
        for entry in self.PANES:
            found = tabs.get_pane(entry.id).query(entry.widget)
            if found:
                out.append((entry, found.first()))
        return out  # type: ignore[return-value]

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
            for _, pane in self.panes():  # a lazy pane subscribes itself when it mounts
                self.watcher.subscribe(pane, *pane.WANTS)
            self.run_worker(self.watcher.run(), group="watcher", exclusive=True,
                            exit_on_error=False, description="watch the workspace")
        if self.exit_after is not None:
            self.set_timer(self.exit_after, self._exit_with_summary)
        for note in self.startup_notes:
            notify_plain(self, note, title="Demo", timeout=15)
        self._focus_in(self.PANES[0].id)

    def _watch_failed(self, text: str) -> None:
        notify_plain(self, text, title="Watching the workspace", severity="warning", timeout=10)

    def on_unmount(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.prefetch.cancel()

    # ------------------------------------------------------------------ actions
    def action_show_pane(self, pane: str) -> None:
        # Drop the focus first: left on a widget of the pane being hidden, Textual hands it to that
        # pane's next widget and TabbedContent switches back to it (a pane with nothing to focus,
        # such as Ports, could then never be shown from Versions).
        self.screen.set_focus(None)
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
        groups: list[tuple[str, object]] = [("Global", self.BINDINGS)]
        screens: list[tuple[str, object]] = []
        for entry in self.PANES:
            if entry.widget.BINDINGS and all(g[1] is not entry.widget.BINDINGS for g in groups):
                groups.append((entry.title, entry.widget.BINDINGS))
            screens.extend(entry.screens)
        return binding_rows([*groups, *screens, ("Help", HelpScreen.BINDINGS)])  # type: ignore[list-item]

    def action_next_theme(self) -> None:
        names = list(THEMES)
        i = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(i + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    def watch_theme(self, _: str) -> None:
        if not self.screen_stack:  # set in __init__, before any screen exists
            return
        for _, pane in self.panes():
            pane.restyle()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own commands, the panes, help, and the keys of what is on screen: the
        active pane's on the main screen, a modal screen's own on a modal one (a key another
        pane owns would act on a pane out of sight)."""
        yield from super().get_system_commands(screen)
        for entry in self.PANES:
            yield SystemCommand(f"Show {entry.title}", f"Switch to the {entry.title} pane",
                                lambda p=entry.id: self.action_show_pane(p))  # fmt: skip
        yield SystemCommand("Help: keys", "Every key of the console", self.action_help)
        if screen is not self.screen_stack[0]:
            title = type(screen).__name__.removesuffix("Screen") or "Screen"
            yield from _binding_commands(title, screen, screen.BINDINGS)
            return
        active = self.query_one(TabbedContent).active
        for entry, pane in self.panes():
            if entry.id == active:
                yield from _binding_commands(entry.title, pane, entry.widget.BINDINGS)

    # ------------------------------------------------------------------ quitting
    def track_trainer(self, started: StartedRun) -> None:
        """A trainer started from this console (`n`): named at quit while it still runs."""
        self.trainers.append(started)

    def left_running(self) -> str:
        """What this console started that still runs, and how to stop each; "" if nothing.

        Called once the app has exited (it reads the capture server's state file and asks the
        processes): `run` prints it to the terminal. The demo's own processes are not listed:
        the demo stops them itself.
        """
        items = []
        for t in self.trainers:
            if t.proc.poll() is None:
                items.append(f"  trainer of run {t.run_id} (pid {t.pid}), started with n\n"
                             f"    stop it: kill {t.pid}   (SIGTERM: it writes a last checkpoint and ends as "
                             "stopped), or S on the run in the Curves pane")  # fmt: skip
        if self.demo is None:
            from trainledger.engines.capture.process import server_state

            state = server_state(self.workspace)
            if state is not None and state.alive and state.started_at >= self.opened_at:
                where = shlex.quote(str(self.workspace.root))
                items.append(f"  capture server at {state.url} (pid {state.pid}), started with S in Capture\n"
                             f"    stop it: trainledger capture stop --workspace {where}")  # fmt: skip
        if not items:
            return ""
        return clean_lines("trainledger: left running after the console quit:\n" + "\n".join(items))

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the console; once it has exited, say on stderr which processes it leaves running."""
        result = super().run(*args, **kwargs)
        text = self.left_running()
        if text:
            print(text, file=sys.stderr)
        return result

    # ------------------------------------------------------------------ scripts
    def _exit_with_summary(self) -> None:
        self.summary = self.headless_summary()  # the widgets are gone after exit
        self.exit()

    def headless_summary(self) -> str:
        """A plain-text account of what the console held, for --headless-seconds."""
        mounted = dict((entry.id, pane) for entry, pane in self.panes())
        lines = []
        for entry in self.PANES:
            pane = mounted.get(entry.id)
            text = pane.summary() if pane is not None else f"{entry.id}: not mounted yet"
            if text:
                lines.append(text)
        return "\n".join(lines)
