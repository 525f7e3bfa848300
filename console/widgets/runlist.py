"""The run list of the Curves pane: one row per run with marks, status and progress.

A thin DataTable: rows are keyed by run id, cells are updated in place so the cursor
and scroll position survive live updates.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from trainledger.console.styles import theme_style
from trainledger.engines.metrics.series import SeriesSnapshot
from trainledger.engines.workspace import RunInfo

# status -> (theme variable, bold)
STATUS_STYLE = {
    "running": ("success", True),
    "stopped": ("warning", False),
    "failed": ("error", True),
    "lost": ("warning", False),
}
NAME_WIDTH = 15
# Fixed widths: columns never jump as values arrive, and snapshots are stable.
COLUMNS = (("run", "run", NAME_WIDTH + 2), ("status", "status", 8), ("progress", "progress", 12))


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def short_label(label: str, width: int = NAME_WIDTH) -> str:
    """Keep the end of long run ids: that is where runs differ (time stamp, hash)."""
    return label if len(label) <= width else "…" + label[-(width - 1):]


def progress_text(snap: SeriesSnapshot | None) -> str:
    if snap is None:
        return "…"
    if snap.n == 0:
        return "no rows"
    step = snap.step[snap.n - 1]
    epoch = snap.epoch[snap.n - 1]
    parts = [f"s{int(step):,}" if math.isfinite(step) else ""]
    if math.isfinite(epoch):
        parts.append(f"e{epoch:.0f}")
    return " ".join(p for p in parts if p)


class RunList(DataTable[Text | str]):
    """Runs, newest first. Marks: ◆ pinned baseline, ✓ selected for comparison."""

    DEFAULT_CSS = """
    RunList { height: 1fr; overflow-x: hidden; }
    """
    # Rows are what matters here: Home/End go to the first/last run, j/k as in a pager.
    BINDINGS = [
        Binding("home", "scroll_top", "First run", show=False),
        Binding("end", "scroll_bottom", "Last run", show=False),
        Binding("j", "cursor_down", "Next run", show=False),
        Binding("k", "cursor_up", "Previous run", show=False),
    ]

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=1, **kwargs)  # type: ignore[arg-type]
        self.clock = clock
        self._order: list[str] = []
        self._restore: str | None = None  # the cursor's run across a column rebuild
        self.wide = False

    @property
    def columns_shown(self) -> tuple[tuple[str, str, int], ...]:
        return COLUMNS if self.wide else COLUMNS[:2]

    def on_mount(self) -> None:
        for key, label, width in self.columns_shown:
            self.add_column(label, key=key, width=width)

    def set_wide(self, wide: bool) -> None:
        """Show the progress column only where it fits (no sideways scrolling)."""
        if wide == self.wide:
            return
        self.wide = wide
        self._restore = self.cursor_run
        self.clear(columns=True)
        self._order = []
        for key, label, width in self.columns_shown:
            self.add_column(label, key=key, width=width)

    @property
    def order(self) -> list[str]:
        return list(self._order)

    @property
    def cursor_run(self) -> str | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    def _status(self, info: RunInfo) -> Text:
        status = info.status
        var, bold = STATUS_STYLE.get(status, (None, False))
        style = theme_style(self.app, var, bold=bold) if var else ""
        label = status
        if status == "running" and info.started:
            label = f"▶ {duration(self.clock() - info.started)}"
        return Text(label, style=style)

    def sync(
        self,
        runs: Sequence[RunInfo],
        snapshots: dict[str, SeriesSnapshot],
        selected: set[str],
        pinned: str | None,
    ) -> None:
        """Bring the rows in line with `runs` (newest first), keeping the cursor's run."""
        keep = self.cursor_run or self._restore
        ordered = sorted(runs, key=lambda r: (r.started or 0.0, r.id), reverse=True)
        ids = [r.id for r in ordered]
        if ids != self._order:
            self.clear()
            self._order = ids
            for info in ordered:
                cells = self._cells(info, snapshots, selected, pinned)
                self.add_row(*cells[: len(self.columns_shown)], key=info.id)
            if keep in ids:
                self.move_cursor(row=ids.index(keep))
            self._restore = None
            return
        for info in ordered:
            for (key, _, _), value in zip(self.columns_shown, self._cells(info, snapshots, selected, pinned)):
                self.update_cell(info.id, key, value)

    def _cells(
        self,
        info: RunInfo,
        snapshots: dict[str, SeriesSnapshot],
        selected: set[str],
        pinned: str | None,
    ) -> tuple[Text | str, ...]:
        mark = ("◆" if info.id == pinned else " ") + ("✓" if info.id in selected else " ")
        return (mark + short_label(info.label), self._status(info), progress_text(snapshots.get(info.id)))
