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
from trainledger.engines.capture.live import SessionSeen
from trainledger.engines.capture.sessions import SessionSummary


def session_facts(
    s: SessionSummary, shown_path: str | None = None, server: SessionSeen | None = None
) -> Table:
    """The drill-down's table of facts about one session file (and what the running server
    counted for it: frames it rejected are answered to the client, never stored)."""
    t = Table(box=None, show_header=False, expand=True, pad_edge=False)
    t.add_column("what", style="dim", no_wrap=True)
    t.add_column("value", overflow="fold")
    t.add_row("file", plain(shown_path or str(s.path)))
    t.add_row("size", f"{human_bytes(s.size)} ({s.size:,} bytes)")
    modified = datetime.fromtimestamp(s.mtime, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    t.add_row("modified", modified)
    if not s.valid_id:
        t.add_row("session id", plain(f"invalid: {s.invalid_reason}", style="bold"))
    t.add_row("lines", f"{s.lines:,}")
    t.add_row("frames", f"{s.frames:,} accepted")
    t.add_row("rejected", f"{s.rejected:,}")
    if server:
        t.add_row("server", f"{server.accepted:,} accepted · "
                            f"{server.rejected:,} rejected since it started "
                            "(rejected frames are not stored; reasons: the pane's server counts)")  # fmt: skip
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


def rejects_table(s: SessionSummary) -> Table | Text:
    if not s.reasons:
        return Text("No rejected lines.", style="dim")
    first: dict[str, list[int]] = {}
    for line, reason in s.first_rejects:
        first.setdefault(reason, []).append(line)
    t = Table(box=None, expand=True, pad_edge=False)
    t.add_column("count", justify="right", no_wrap=True)
    t.add_column("reason", overflow="fold")
    t.add_column("first lines", no_wrap=True, style="dim")
    for reason, count in s.reasons.items():
        t.add_row(
            f"{count:,}",
            plain(reason),
            ", ".join(str(n) for n in first.get(reason, [])) or "…",
        )
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
        self, summary: SessionSummary, shown_path: str | None = None, server: SessionSeen | None = None
    ) -> None:
        super().__init__()
        self.summary = summary
        self.shown_path = shown_path
        self.server = server  # the server's /stats entry for this session, when it saw it

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._title(), id="session-title")
            yield Static(
                session_facts(self.summary, self.shown_path, self.server), id="session-facts"
            )
            yield Static("Rejected lines by reason (the server's decoder)", id="session-rejects-title",
                         markup=False)  # fmt: skip
            yield Static(rejects_table(self.summary), id="session-rejects")
            yield Static(Text("esc closes", style="dim"))

    def _title(self) -> Text:
        return plain(f"Session {self.summary.id}", style="bold")

    def show(self, summary: SessionSummary) -> None:
        """The pane scanned again: show the newer facts (cheap; only when it changed)."""
        if (
            summary.version == self.summary.version
            and summary.path == self.summary.path
        ):
            return
        self.summary = summary
        if self.is_mounted:
            self.query_one("#session-facts", Static).update(
                session_facts(summary, self.shown_path, self.server)
            )
            self.query_one("#session-rejects", Static).update(rejects_table(summary))

    def action_close(self) -> None:
        self.dismiss(None)
