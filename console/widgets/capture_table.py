"""The Capture pane's sessions table: one row per session, rewritten cell by cell.

`sync()` compares each row's texts with what is shown and calls `update_cell` only for the
cells that changed, adds new sessions at the end and removes vanished ones, so a server
ingesting at full rate costs a few cell updates per scan, never a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.widgets import DataTable

from trainledger.console.text import plain
from trainledger.console.widgets.capture_render import human_bytes, micros
from trainledger.engines.capture.live import SessionCounts
from trainledger.engines.capture.sessions import SessionSummary

# The session column is as wide as its longest id (None): an id is never cut, so two
# sessions started in the same minute (demo-20261203-074401, ...074459) stay apart.
COLUMNS = (("id", "session", None), ("src", "src", 6), ("frames", "frames", 8), ("rej", "rej", 6),
           ("fps", "fps", 5), ("p95", "p95 lat", 8), ("size", "size", 9))  # fmt: skip


def session_fps(s: SessionSummary) -> float | None:
    """Frames per second by the frames' own ts: the mean of the last 5 whole seconds."""
    if not s.fps:
        return None
    whole = s.fps[:-1] if len(s.fps) > 1 else s.fps
    recent = whole[-5:]
    return sum(recent) / len(recent)


def session_row(s: SessionSummary, live: bool, counts: SessionCounts) -> tuple[str, ...]:
    """The row's texts; a session only the server knows (no file yet) says so. `rej` counts
    the file's bad lines and the frames the running server refused for it (never stored)."""
    if not counts.on_disk:
        return (s.id, "server", "0", f"{counts.rejected:,}", "–", "–", "no file")
    fps = session_fps(s)
    src = "bad id" if not s.valid_id else ("live" if live else "file")
    p95 = micros(s.latency[1]) if s.latency else "–"
    return (s.id, src, f"{s.frames:,}", f"{counts.rejected:,}", "–" if fps is None else f"{fps:.0f}",
            p95, human_bytes(s.size))  # fmt: skip


class CaptureTable(DataTable[str]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.shown: dict[str, tuple[str, ...]] = {}
        self.cell_updates = 0  # benchmarks and tests read it

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def sync(self, sessions: dict[str, SessionSummary], live: Callable[[SessionSummary], bool],
             counts: Callable[[SessionSummary], SessionCounts]) -> None:  # fmt: skip
        wanted = {
            sid: session_row(s, live(s), counts(s)) for sid, s in sessions.items()
        }
        for gone in [k for k in self.shown if k not in wanted]:
            self.remove_row(gone)
            del self.shown[gone]
        keys = [key for key, _, _ in COLUMNS]
        for sid, row in wanted.items():
            old = self.shown.get(sid)
            if old is None:
                self.add_row(*(plain(cell) for cell in row), key=sid)  # ids are data
            elif old != row:
                for col, a, b in zip(keys, old, row, strict=True):
                    if a != b:
                        self.update_cell(sid, col, plain(b))
                        self.cell_updates += 1
            self.shown[sid] = row

    def cursor_id(self) -> str | None:
        if (
            self.row_count
            and self.cursor_row is not None
            and 0 <= self.cursor_row < self.row_count
        ):
            return str(self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value)
        return None
