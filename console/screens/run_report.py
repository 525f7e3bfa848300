"""Enter on a run in Curves: the run screen, everything about one run in six tabs.

1 Overview: identity (id, name, model, backend, device, host, pid, status and the whole
error), the command line, timings (steps/s, ETA while running), best and last of every metric,
malformed metric lines. 2 Config: every setting, the data and its sha256 then and now.
3 Events & checkpoints (sizes, sha256 against the sidecar). 4 System: CPU, RSS and GPU from
system.jsonl as sparklines. 5 Log: the trainer's log from a bounded tail, following while it
grows, `/` to search, n / N between matches. 6 Report: the stored provenance report, its claims
verified and its checks (console/provenance.py).

The UI thread never reads a file: `engines/run_details.gather` runs in a worker (again when
the watcher says the run's files changed, and every 2 s while the run runs); hashes in
another (cached by path, size and mtime); the log is polled once a second in a third. `R`
renames the run (meta.json, through engines/runmeta) unless the console is read-only. Every
string from a file is plain Text with control characters replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Sparkline, Static, TabbedContent, TabPane

from trainledger.console import provenance
from trainledger.console.messages import ReportsChanged, RunFilesChanged
from trainledger.console.provenance import Assessment
from trainledger.console.styles import theme_style
from trainledger.console.text import notify_plain, plain
from trainledger.console.widgets import report_render as render
from trainledger.console.widgets import run_render as rr
from trainledger.console.widgets import run_system
from trainledger.console.widgets.run_log import RunLogView
from trainledger.engines import run_details
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.run_details import LogChunk, LogTail, RunDetails
from trainledger.engines.workspace import Workspace

LOG_POLL_S = 1.0
DETAILS_POLL_S = 2.0  # while the run runs
TABS = ("overview", "config", "events", "system", "log", "report")
SYSTEM_FIELDS = run_system.FIELDS


class ReportRead(Message):
    """The worker read (`final` False) or verified (`final` True) the run's report."""

    def __init__(self, assessment: Assessment, final: bool) -> None:
        super().__init__()
        self.assessment, self.final = assessment, final


class DetailsRead(Message):
    def __init__(self, details: RunDetails | None, error: str | None = None) -> None:
        super().__init__()
        self.details, self.error = details, error


class HashesRead(Message):
    def __init__(self, details: RunDetails) -> None:
        super().__init__()
        self.details = details


class LogRead(Message):
    def __init__(self, chunk: LogChunk) -> None:
        super().__init__()
        self.chunk = chunk


class Renamed(Message):
    def __init__(self, name: str | None, error: str | None = None) -> None:
        super().__init__()
        self.name, self.error = name, error


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    draw: Callable[[RunReportScreen], RenderableType | None]  # None: the section is hidden


# ---------------------------------------------------------------------------- the report tab


def _summary(s: RunReportScreen) -> RenderableType | None:
    a = s.assessment
    if a is None:
        return Text("reading the report…", style="dim", end="")
    if a.report is None:
        if a.error:
            return plain(f"? {a.error}", s.look.of(render.ERROR))
        return render.no_report_text(s.run_id, s.look)
    t = plain(f"{a.report.subject or s.run_id} · {a.report.kind or 'kind unknown'} · "
              f"report made {render.when(a.report.made_at)}", s.look.muted)  # fmt: skip
    t.append("\n")
    t.append_text(render.counts_text(a, s.look))
    if a.error and a.verdicts is None:
        t.append("\n")
        t.append_text(plain("the claims are shown as claimed; nothing was verified", s.look.of(render.ERROR)))
    return t


def _claims(s: RunReportScreen) -> RenderableType | None:
    a = s.assessment
    if a is None or a.report is None:
        return None
    width = s.query_one("#report-scroll", VerticalScroll).size.width or 80
    return render.claims_table(a.report.claims, a.verdicts, s.look, width, pending=a.error is None)


def _checks(s: RunReportScreen) -> RenderableType | None:
    a = s.assessment
    if a is None or a.report is None:
        return None
    return render.checks_table(a.report.checks, s.look)


def _extra(s: RunReportScreen) -> RenderableType | None:
    a = s.assessment
    if a is None or a.report is None or not a.report.extra:
        return None
    t = Text(end="")
    for i, (key, value) in enumerate(sorted(a.report.extra.items())):
        t.append("\n" if i else "")
        t.append_text(plain(f"{key}  ", s.look.head))
        t.append_text(plain(render.value_text(value)))
    return t


SECTIONS: tuple[Section, ...] = (
    Section("summary", "", _summary),
    Section("claims", "Claims (each with the files it rests on)", _claims),
    Section("checks", "Checks stored in the report", _checks),
    Section("extra", "More from the report", _extra),
)


# ---------------------------------------------------------------------------- the run tabs


def _needs(
    draw: Callable[[RunDetails, render.Look], RenderableType | None],
) -> Callable[[RunReportScreen], RenderableType | None]:
    def section(s: RunReportScreen) -> RenderableType | None:
        if s.details is None:
            return Text(s.details_error or "reading the run…", style="dim", end="")
        return draw(s.details, s.look)

    return section


# (tab, section id, title, draw)
RUN_SECTIONS: tuple[tuple[str, Section], ...] = (
    ("overview", Section("identity", "", _needs(rr.identity))),
    ("overview", Section("command", "Command line", _needs(rr.command))),
    ("overview", Section("timings", "Timings", _needs(rr.timings))),
    ("overview", Section("metrics", "Metrics: best and last (↓ lower is better, ↑ higher)", _needs(rr.metrics_table))),
    ("overview", Section("malformed", "Malformed metric lines", _needs(rr.malformed_text))),
    ("config", Section("config", "Config (every setting run.json records)", _needs(rr.config_table))),
    ("config", Section("data", "Data", _needs(rr.data_text))),
    ("config", Section("runextra", "Versions and summary", _needs(rr.extra_table))),
    ("events", Section("events", "Events", _needs(rr.events_table))),
    ("events", Section("checkpoints", "Checkpoints", _needs(rr.checkpoints_table))),
)


class RunReportScreen(ModalScreen[None]):
    """The run screen (the name is kept: the Curves pane and the help screen know it by it)."""

    DEFAULT_CSS = """
    RunReportScreen { align: center middle; }
    RunReportScreen > #run-box {
        width: 100%; max-width: 200; height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    RunReportScreen #run-tabs { height: 1fr; }
    RunReportScreen TabPane { padding: 0; }
    RunReportScreen .report-title { margin-top: 1; text-style: bold; }
    RunReportScreen #report-hint { color: $text-muted; height: 1; }
    RunReportScreen #report-heading { height: 1; }
    RunReportScreen #log-status { color: $text-muted; height: auto; }
    RunReportScreen Sparkline { height: 2; margin-bottom: 1; }
    RunReportScreen Input { height: 3; }
    """
    AUTO_FOCUS = "#overview-scroll"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,q", "close", "Close the run screen", id="run_report.close"),
        Binding("1", "show_tab('overview')", "Overview tab", id="run_report.tab_overview"),
        Binding("2", "show_tab('config')", "Config tab", id="run_report.tab_config"),
        Binding("3", "show_tab('events')", "Events and checkpoints tab", id="run_report.tab_events"),
        Binding("4", "show_tab('system')", "System tab", id="run_report.tab_system"),
        Binding("5", "show_tab('log')", "Log tab", id="run_report.tab_log"),
        Binding("6", "show_tab('report')", "Report tab", id="run_report.tab_report"),
        Binding("slash", "search", "Search the log", id="run_report.search"),
        Binding("n", "next_match", "Next match", id="run_report.next_match"),
        Binding("N", "previous_match", "Previous match", id="run_report.previous_match"),
        Binding("f", "follow", "Follow the log's end", id="run_report.follow"),
        Binding("R", "rename", "Rename the run", id="run_report.rename"),
        Binding("r", "reverify", "Verify again", id="run_report.verify"),
    ]

    def __init__(self, workspace: Workspace, run_id: str) -> None:
        super().__init__()
        self.workspace = workspace
        self.run_id = run_id
        self.look = render.Look()
        self.assessment: Assessment | None = None
        self.verified = 0  # verifications answered (tests wait on it)
        self._busy = self._again = False
        self.details: RunDetails | None = None
        self.details_error: str | None = None
        self.details_read = 0  # gathers answered (tests wait on them)
        self.hashed = 0
        self.log_polls = 0
        self.log_exists: bool | None = None
        self.log_skipped = 0
        self._series = RunSeries(workspace.run_dir(run_id), cache_dir=workspace.cache_dir, run_id=run_id)
        self._tail: LogTail | None = None
        self._details_busy = self._details_again = False
        self._hash_busy = False
        self._log_busy = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Vertical(id="run-box"):
            yield Static(plain(f"Run {self.run_id}", style="bold"), id="report-heading")
            yield Static("1-6 tabs · / search log, n N · f follow · R rename · r verify · q close",
                         id="report-hint", markup=False)
            with TabbedContent(initial="tab-overview", id="run-tabs"):
                for tab, title in (("overview", "1 Overview"), ("config", "2 Config"),
                                   ("events", "3 Events"), ("system", "4 System")):  # fmt: skip
                    with TabPane(title, id=f"tab-{tab}"), VerticalScroll(id=f"{tab}-scroll"):
                        if tab == "system":
                            yield Static("", id="run-system-span")
                            for field in SYSTEM_FIELDS:
                                yield Static("", id=f"run-sys-{field}-caption", classes="sys-caption")
                                yield Sparkline([], id=f"run-sys-{field}")
                        for where, section in RUN_SECTIONS:
                            if where != tab:
                                continue
                            if section.title:
                                yield Static(section.title, id=f"run-{section.id}-title", classes="report-title",
                                             markup=False)  # fmt: skip
                            yield Static("", id=f"run-{section.id}")
                with TabPane("5 Log", id="tab-log"):
                    yield Static("", id="log-status")
                    yield Input(placeholder="search the log (Enter finds, Esc leaves)", id="log-search")
                    yield RunLogView(id="run-log")
                with TabPane("6 Report", id="tab-report"), VerticalScroll(id="report-scroll"):
                    for section in SECTIONS:
                        if section.title:
                            yield Static(section.title, id=f"report-{section.id}-title", classes="report-title",
                                         markup=False)  # fmt: skip
                        yield Static("", id=f"report-{section.id}")
            yield Input(placeholder="new name (empty: back to run.json's)", id="rename")

    def on_mount(self) -> None:
        self.look = render.look_from({v: theme_style(self.app, v) for v in ("success", "warning", "error")})
        for wid in ("#log-search", "#rename"):
            self.query_one(wid, Input).display = False
        watcher = getattr(self.app, "watcher", None)
        if watcher is not None:
            watcher.subscribe(self, RunFilesChanged, ReportsChanged)
        self.query_one("#overview-scroll", VerticalScroll).focus()
        self.draw()
        self.reverify()
        self.refresh_details()
        self.poll_log()
        self.set_interval(LOG_POLL_S, self.poll_log)
        self.set_interval(DETAILS_POLL_S, self._details_tick)

    def on_unmount(self) -> None:
        watcher = getattr(self.app, "watcher", None)
        if watcher is not None:
            watcher.unsubscribe(self)

    def on_resize(self) -> None:
        self.draw()

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
        self.draw()

    def draw(self) -> None:
        if not self.is_mounted:
            return
        for section in SECTIONS:
            body = section.draw(self)
            shown = body is not None
            self.query_one(f"#report-{section.id}", Static).update(body if shown else "")
            self.query_one(f"#report-{section.id}", Static).display = shown
            if section.title:
                self.query_one(f"#report-{section.id}-title", Static).display = shown
        self.draw_run()

    def draw_run(self) -> None:
        if not self.is_mounted:
            return
        d = self.details
        heading = plain(f"Run {self.run_id}", style="bold")
        if d is not None:
            if d.name and d.name != self.run_id:
                heading.append_text(plain(f" · {d.name}", style="bold"))
            heading.append_text(plain(f" · {d.info.model or 'model unknown'} · {d.info.status}"))
        self.query_one("#report-heading", Static).update(heading)
        for _, section in RUN_SECTIONS:
            body = section.draw(self)
            shown = body is not None
            self.query_one(f"#run-{section.id}", Static).update(body if shown else "")
            self.query_one(f"#run-{section.id}", Static).display = shown
            if section.title:
                self.query_one(f"#run-{section.id}-title", Static).display = shown
        system = d.system if d is not None else run_details.SystemSeries()
        self.query_one("#run-system-span", Static).update(
            run_system.span(system) if d is not None else Text("reading the run…", style="dim"))
        for field in SYSTEM_FIELDS:
            caption = run_system.caption(system, field)
            spark = self.query_one(f"#run-sys-{field}", Sparkline)
            self.query_one(f"#run-sys-{field}-caption", Static).update(caption or "")
            self.query_one(f"#run-sys-{field}-caption", Static).display = caption is not None
            spark.display = caption is not None
            if caption is not None:
                spark.data = system.column(field)
        self._draw_log_status()

    def _draw_log_status(self) -> None:
        view = self.query_one(RunLogView)
        path = self.details.log_path if self.details else run_details.log_path(self.workspace, self.run_id)
        where = plain(str(path))
        if self.log_exists is False:
            t = Text("No log for this run. The console and the demo write a trainer's output to ", end="")
            t.append_text(where)
            t.append("; a run started elsewhere (a script calling trainledger.log, a trainer in another "
                     "terminal) prints to its own terminal.")  # fmt: skip
        elif self.log_exists is None:
            t = Text("reading the log…", style="dim", end="")
        else:
            t = where
            t.append(f" · {len(view.lines):,} lines")
            if self.log_skipped or view.dropped:
                t.append(" (the tail only)")
            t.append(" · following" if view.follow else " · f follows")
            if view.search_text:
                t.append(" · ")
                t.append_text(plain(f"{len(view.matches)} match{'es' if len(view.matches) != 1 else ''} for "
                                    f"{view.search_text!r}"))  # fmt: skip
                if view.current is not None:
                    t.append(f" ({view.current + 1} of {len(view.matches)}) · n N move")
        self.query_one("#log-status", Static).update(t)

    # ------------------------------------------------------------------ the run's files
    def _details_tick(self) -> None:
        if self.details is None or self.details.info.status == "running":
            self.refresh_details()

    def refresh_details(self) -> None:
        if self._details_busy:
            self._details_again = True
            return
        self._details_busy = True
        self._gather()

    @work(thread=True, group="run-details", exit_on_error=False, description="read a run's files")
    def _gather(self) -> None:
        try:
            details = run_details.gather(self.workspace, self.run_id, self._series)
        except Exception as exc:  # noqa: BLE001 - said on the screen
            self.post_message(DetailsRead(None, f"the run's files could not be read: {type(exc).__name__}: {exc}"))
            return
        self.post_message(DetailsRead(details))

    @on(DetailsRead)
    def _details_came(self, message: DetailsRead) -> None:
        self._details_busy = False
        self.details_read += 1
        if message.details is not None:
            old = self.details
            d = message.details
            if old is not None:  # keep hashes already made for unchanged files
                d = _keep_hashes(d, old)
            self.details, self.details_error = d, None
            self._hash_if_needed()
        else:
            self.details_error = message.error
        self.draw_run()
        if self._details_again:
            self._details_again = False
            self.refresh_details()

    def _hash_if_needed(self) -> None:
        d = self.details
        if d is None or self._hash_busy:
            return
        data_due = d.data is not None and d.data.path and d.data.sha256 is None and not d.data.problem
        if data_due or any(c.sha256 is None for c in d.checkpoints):
            self._hash_busy = True
            self._hash(d)

    @work(thread=True, group="run-hash", exit_on_error=False, description="hash a run's data and checkpoints")
    def _hash(self, d: RunDetails) -> None:
        data = run_details.hash_data(d.data, self.workspace.root) if d.data is not None else None
        ckpts = tuple(c if c.sha256 else run_details.hash_checkpoint(c) for c in d.checkpoints)
        self.post_message(HashesRead(replace(d, data=data, checkpoints=ckpts)))

    @on(HashesRead)
    def _hashes_came(self, message: HashesRead) -> None:
        self._hash_busy = False
        self.hashed += 1
        if self.details is not None:
            self.details = _keep_hashes(self.details, message.details)
        self.draw_run()

    # ------------------------------------------------------------------ the log
    def poll_log(self) -> None:
        if self._log_busy:
            return
        self._log_busy = True
        self._read_log()

    @work(thread=True, group="run-log", exit_on_error=False, description="follow a run's log")
    def _read_log(self) -> None:
        try:
            if self._tail is None:
                raw = run_details.read_run_json(self.workspace.run_dir(self.run_id))
                self._tail = LogTail(run_details.log_path(self.workspace, self.run_id, raw))
            chunk = self._tail.poll()
        except Exception:  # noqa: BLE001 - a log that cannot be read shows as none
            chunk = LogChunk((), reset=False, exists=False)
        self.post_message(LogRead(chunk))

    @on(LogRead)
    def _log_came(self, message: LogRead) -> None:
        self._log_busy = False
        self.log_polls += 1
        chunk = message.chunk
        view = self.query_one(RunLogView)
        if chunk.reset:
            view.clear()
            if view.search_text:
                view.search(view.search_text)
        self.log_exists = chunk.exists
        self.log_skipped = max(self.log_skipped, chunk.skipped_bytes) if not chunk.reset else chunk.skipped_bytes
        if chunk.lines:
            view.append(chunk.lines)
        self._draw_log_status()

    # ------------------------------------------------------------------ keys
    def action_show_tab(self, tab: str) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        tabs.active = f"tab-{tab}"
        target = self.query_one(RunLogView) if tab == "log" else self.query_one(f"#{tab}-scroll")
        target.focus()
        self.draw()

    def action_search(self) -> None:
        self.action_show_tab("log")
        box = self.query_one("#log-search", Input)
        box.display = True
        box.value = self.query_one(RunLogView).search_text
        box.focus()

    @on(Input.Submitted, "#log-search")
    def _search(self, event: Input.Submitted) -> None:
        event.stop()
        view = self.query_one(RunLogView)
        view.search(event.value)
        event.input.display = False
        view.focus()
        self._draw_log_status()

    def action_next_match(self) -> None:
        self._move(1)

    def action_previous_match(self) -> None:
        self._move(-1)

    def _move(self, delta: int) -> None:
        view = self.query_one(RunLogView)
        if not view.search_text:
            return
        self.query_one("#run-tabs", TabbedContent).active = "tab-log"
        view.next_match(delta)
        self._draw_log_status()

    def action_follow(self) -> None:
        self.action_show_tab("log")
        self.query_one(RunLogView).follow_end()
        self._draw_log_status()

    def action_rename(self) -> None:
        if getattr(self.app, "readonly", False):
            notify_plain(self.app, "read-only console: renaming a run is refused", severity="warning")
            return
        box = self.query_one("#rename", Input)
        box.value = self.details.name or "" if self.details else ""
        box.display = True
        box.focus()

    @on(Input.Submitted, "#rename")
    def _rename(self, event: Input.Submitted) -> None:
        event.stop()
        from trainledger.engines.runmeta import InvalidMeta, validate_name

        name: str | None = event.value.strip() or None
        if name is not None:
            try:
                validate_name(name)
            except InvalidMeta as exc:
                notify_plain(self.app, f"not renamed: {exc}", severity="error")
                return
        event.input.display = False
        self.query_one("#overview-scroll").focus()
        self._write_name(name)

    @work(thread=True, group="run-rename", exit_on_error=False, description="rename a run")
    def _write_name(self, name: str | None) -> None:
        try:
            from trainledger.engines.runmeta import write_meta

            write_meta(self.workspace.run_dir(self.run_id), name=name)
        except Exception as exc:  # noqa: BLE001 - said in a notification
            self.post_message(Renamed(name, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(Renamed(name))

    @on(Renamed)
    def _renamed(self, message: Renamed) -> None:
        if message.error:
            notify_plain(self.app, f"not renamed: {message.error}", severity="error")
            return
        said = f"renamed {self.run_id} to {message.name}" if message.name else f"{self.run_id}: name reset"
        notify_plain(self.app, said)
        self.refresh_details()

    # ------------------------------------------------------------------ reading and verifying
    def action_reverify(self) -> None:
        self.reverify()

    def reverify(self) -> None:
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._assess()

    @work(thread=True, group="run-report", exit_on_error=False, description="verify a run's report")
    def _assess(self) -> None:
        a: Assessment | None = None
        try:
            subject, a = provenance.begin(self.workspace, self.run_id)
            self.post_message(ReportRead(a, final=False))
            a = provenance.finish(self.workspace, subject, a)
        except Exception as exc:  # noqa: BLE001 - said on the screen
            a = Assessment(self.run_id, a.report if a else None, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.post_message(ReportRead(a or Assessment(self.run_id, error="nothing read"), final=True))

    @on(ReportRead)
    def _read(self, message: ReportRead) -> None:
        keep = self.assessment
        if message.final or keep is None or keep.report != message.assessment.report:
            self.assessment = message.assessment  # a re-read of the same report keeps its old verdicts meanwhile
        if message.final:
            self._busy = False
            self.verified += 1
        self.draw()
        if message.final and self._again:
            self._again = False
            self.reverify()

    @on(RunFilesChanged)
    def _files_changed(self, message: RunFilesChanged) -> None:
        if message.run_id == self.run_id:
            self.reverify()
            self.refresh_details()

    @on(ReportsChanged)
    def _report_changed(self, message: ReportsChanged) -> None:
        if message.subject == self.run_id:
            self.reverify()

    def action_close(self) -> None:
        for wid in ("#log-search", "#rename"):
            box = self.query_one(wid, Input)
            if box.display:  # Esc leaves the search or the rename first
                box.display = False
                (self.query_one(RunLogView) if wid == "#log-search" else self.query_one("#overview-scroll")).focus()
                return
        self.dismiss(None)


def _keep_hashes(new: RunDetails, old: RunDetails) -> RunDetails:
    """`new` with `old`'s hashes wherever the file is the same (path, size, mtime)."""
    done = {(c.path, c.size, c.mtime_ns): c.sha256 for c in old.checkpoints if c.sha256}
    ckpts = tuple(c if c.sha256 else replace(c, sha256=done.get((c.path, c.size, c.mtime_ns))) for c in new.checkpoints)
    data = new.data
    if data is not None and old.data is not None and data.sha256 is None and old.data.path == data.path:
        data = replace(data, sha256=old.data.sha256, size=old.data.size, mtime_ns=old.data.mtime_ns,
                       problem=old.data.problem)  # fmt: skip
    return replace(new, checkpoints=ckpts, data=data)
