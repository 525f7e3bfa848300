"""Enter on a run in Curves: its stored report, a badge per claim, and the checks the report holds.

The report is read and then verified in a thread worker (console/provenance.py: every evidence
file re-hashed, every value re-derived; torch-free). The claims show as "checking…" from the
moment the file is read until the verdicts come. A run without a report says how to make one.
The screen is a list of sections (SECTIONS: id, title, how to draw it), so more of the run
(its config, its logs) can be added as sections of their own. It listens for the run's files
and its report changing and verifies again (never two at once); `r` verifies again by hand.
Every string is data: plain Text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from trainledger.console import provenance
from trainledger.console.messages import ReportsChanged, RunFilesChanged
from trainledger.console.provenance import Assessment
from trainledger.console.styles import theme_style
from trainledger.console.text import plain
from trainledger.console.widgets import report_render as render
from trainledger.engines.workspace import Workspace


class ReportRead(Message):
    """The worker read (`final` False) or verified (`final` True) the run's report."""

    def __init__(self, assessment: Assessment, final: bool) -> None:
        super().__init__()
        self.assessment, self.final = assessment, final


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    draw: Callable[[RunReportScreen], RenderableType | None]  # None: the section is hidden


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
    width = s.query_one(VerticalScroll).size.width or 80
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


class RunReportScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    RunReportScreen { align: center middle; }
    RunReportScreen > VerticalScroll {
        width: 100%; max-width: 160; height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    RunReportScreen .report-title { margin-top: 1; text-style: bold; }
    RunReportScreen #report-hint { color: $text-muted; }
    """
    AUTO_FOCUS = "VerticalScroll"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,q", "close", "Close report", id="run_report.close"),
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

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(plain(f"Run {self.run_id} · report", style="bold"), id="report-heading")
            yield Static("Esc or q closes · r verifies again · ↑ ↓ PgUp PgDn scroll", id="report-hint", markup=False)
            for section in SECTIONS:
                if section.title:
                    yield Static(section.title, id=f"report-{section.id}-title", classes="report-title", markup=False)
                yield Static("", id=f"report-{section.id}")

    def on_mount(self) -> None:
        self.look = render.look_from({v: theme_style(self.app, v) for v in ("success", "warning", "error")})
        watcher = getattr(self.app, "watcher", None)
        if watcher is not None:
            watcher.subscribe(self, RunFilesChanged, ReportsChanged)
        self.query_one(VerticalScroll).focus()
        self.draw()
        self.reverify()

    def on_unmount(self) -> None:
        watcher = getattr(self.app, "watcher", None)
        if watcher is not None:
            watcher.unsubscribe(self)

    def on_resize(self) -> None:
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

    @on(ReportsChanged)
    def _report_changed(self, message: ReportsChanged) -> None:
        if message.subject == self.run_id:
            self.reverify()

    def action_close(self) -> None:
        self.dismiss(None)
