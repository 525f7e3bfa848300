"""The capture-session drill-down, and the confirmation before stopping the capture server.

Both only render what the Capture pane hands them (a SessionSummary, a sentence); the
pane keeps the drill-down current by calling `show()` after each scan, so this screen
never reads a file itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from trainledger.console.text import plain
from trainledger.console.widgets.capture_render import human_bytes, micros
from trainledger.engines.capture.live import SessionCounts, session_counts
from trainledger.engines.capture.sessions import SessionSummary


def session_facts(
    s: SessionSummary, shown_path: str | None = None, counts: SessionCounts | None = None
) -> Table:
    """The drill-down's table of facts about one session file, with what the running server
    counted for it (frames it rejected are answered to the client, never stored)."""
    counts = counts if counts is not None else session_counts(s, None)
    t = Table(box=None, show_header=False, expand=True, pad_edge=False)
    t.add_column("what", style="dim", no_wrap=True)
    t.add_column("value", overflow="fold")
    t.add_row("file", plain(shown_path or str(s.path)))
    if counts.on_disk:
        t.add_row("size", f"{human_bytes(s.size)} ({s.size:,} bytes)")
        modified = datetime.fromtimestamp(s.mtime, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        t.add_row("modified", modified)
    else:
        t.add_row("size", "no file yet: the server stored none of this session's frames")
        t.add_row("modified", "–")
    if not s.valid_id:
        t.add_row("session id", plain(f"invalid: {s.invalid_reason}", style="bold"))
    if counts.on_disk:
        t.add_row("lines", f"{s.lines:,}")
    t.add_row("frames", f"{counts.frames:,} accepted")
    t.add_row("rejected", f"{counts.rejected:,}" + (
        f" ({counts.file_rejected:,} bad lines in the file · {counts.server_rejected:,} refused by the server)"
        if counts.server is not None and counts.on_disk else ""))  # fmt: skip
    if counts.server is not None:
        t.add_row("server", f"{counts.server.accepted:,} accepted · "
                            f"{counts.server.rejected:,} rejected since it started "
                            "(rejected frames are not stored)")  # fmt: skip
    if s.pending_bytes:
        t.add_row(
            "partial", f"{s.pending_bytes:,} bytes of a last line without its newline"
        )
    if s.first_ts is not None and s.last_ts is not None:
        span = s.last_ts - s.first_ts
        t.add_row("ts range", f"{s.first_ts:.3f} … {s.last_ts:.3f}  ({span:.1f} s)")
    else:
        t.add_row("ts range", "–")
    if s.latency is not None and s.latency_range is not None:
        p50, p95, p99 = s.latency
        lo, hi = s.latency_range
        t.add_row("latency_us", f"p50 {micros(p50)} · p95 {micros(p95)} · p99 {micros(p99)}"
                                f"  (min {micros(lo)}, max {micros(hi)})")  # fmt: skip
    else:
        t.add_row("latency_us", "–")
    return t


def rejects_table(s: SessionSummary, counts: SessionCounts | None = None) -> Table | Text:
    """This session's rejects by reason: the file's bad lines, then the frames the server
    refused for it (its own reasons, never another session's)."""
    counts = counts if counts is not None else session_counts(s, None)
    if not counts.reasons:
        return Text("No rejected lines.", style="dim")
    first: dict[str, list[int]] = {}
    for line, reason in s.first_rejects:
        first.setdefault(reason, []).append(line)
    t = Table(box=None, expand=True, pad_edge=False)
    t.add_column("count", justify="right", no_wrap=True)
    t.add_column("where", no_wrap=True, style="dim")
    t.add_column("reason", overflow="fold")
    t.add_column("first lines", no_wrap=True, style="dim")
    for source, reason, count in counts.reasons:
        lines = (", ".join(str(n) for n in first.get(reason, [])) or "…") if source == "file" else "not stored"
        t.add_row(f"{count:,}", source, plain(reason), lines)
    return t


class CaptureSessionScreen(ModalScreen[None]):
    """Enter on a session: its file, size, frame count, rejects by reason, ts range, latency."""

    DEFAULT_CSS = """
    CaptureSessionScreen { align: center middle; }
    CaptureSessionScreen > VerticalScroll {
        width: 96%; max-width: 120; height: auto; max-height: 96%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    CaptureSessionScreen #session-rejects-title { margin-top: 1; text-style: bold; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,q", "close", "Close session", id="capture_session.close")
    ]

    def __init__(
        self, summary: SessionSummary, shown_path: str | None = None, counts: SessionCounts | None = None
    ) -> None:
        super().__init__()
        self.summary = summary
        self.shown_path = shown_path
        self.counts = counts  # the file's and the running server's counts for this session

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._title(), id="session-title")
            yield Static(
                session_facts(self.summary, self.shown_path, self.counts), id="session-facts"
            )
            yield Static("Rejected by reason (the server's decoder)", id="session-rejects-title",
                         markup=False)  # fmt: skip
            yield Static(rejects_table(self.summary, self.counts), id="session-rejects")
            yield Static(Text("esc closes", style="dim"))

    def _title(self) -> Text:
        return plain(f"Session {self.summary.id}", style="bold")

    def show(
        self, summary: SessionSummary, counts: SessionCounts | None = None, shown_path: str | None = None
    ) -> None:
        """The pane scanned or polled again: show the newer facts (only when they changed;
        a session the server alone knew may have gained a file, with its size and time)."""
        shown_path = shown_path or self.shown_path
        if (summary, counts, shown_path) == (self.summary, self.counts, self.shown_path):
            return
        self.summary, self.counts, self.shown_path = summary, counts, shown_path
        if self.is_mounted:
            self.query_one("#session-facts", Static).update(
                session_facts(summary, self.shown_path, counts)
            )
            self.query_one("#session-rejects", Static).update(rejects_table(summary, counts))

    def action_close(self) -> None:
        self.dismiss(None)
