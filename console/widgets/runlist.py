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
COLUMNS = (("run", "run"), ("status", "status"), ("progress", "progress"))
NAME_WIDTH = 15


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

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

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
        keep = self.cursor_run
        ordered = sorted(runs, key=lambda r: (r.started or 0.0, r.id), reverse=True)
        ids = [r.id for r in ordered]
        if ids != self._order:
            self.clear()
            self._order = ids
            for info in ordered:
                self.add_row(*self._cells(info, snapshots, selected, pinned), key=info.id)
            if keep in ids:
                self.move_cursor(row=ids.index(keep))
            return
        for info in ordered:
            for (key, _), value in zip(COLUMNS, self._cells(info, snapshots, selected, pinned)):
                self.update_cell(info.id, key, value)

    def _cells(
        self,
        info: RunInfo,
        snapshots: dict[str, SeriesSnapshot],
        selected: set[str],
        pinned: str | None,
    ) -> tuple[Text | str, ...]:
        mark = ("◆" if info.id == pinned else " ") + ("✓" if info.id in selected else " ")
        name = info.label
        if len(name) > NAME_WIDTH:
            name = "…" + name[-(NAME_WIDTH - 1):]  # ids end in what tells runs apart
        return (mark + name, self._status(info), progress_text(snapshots.get(info.id)))
