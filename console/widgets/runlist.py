"""The run list of the Curves pane: one row per run with marks, status and progress.

A thin DataTable: rows are keyed by run id, cells are updated in place so the cursor
and scroll position survive live updates. Rows come from run.json alone and are drawn
at once; a row's progress comes from its run's `RunBrief` when that is read, and one
result updates that row only (cells are compared with what is shown first). Every
string from a run folder reaches a cell as `plain` Text: never markup, never escapes.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from trainledger.console.run_filter import Column, column_width, fit, format_value
from trainledger.console.styles import theme_style
from trainledger.console.text import clean, plain
from trainledger.engines.metrics.brief import RunBrief
from trainledger.engines.workspace import RunInfo

# status -> (theme variable, bold)
STATUS_STYLE = {
    "running": ("success", True),
    "stopped": ("warning", False),
    "failed": ("error", True),
    "lost": ("warning", False),
}
NAME_WIDTH = 15
STATUS_WIDTH = 9  # "finished", "▶ 12h03m", "⚠ unknown": never cut
PROGRESS_WIDTH = 12
BORDER = 1  # the list's right border (CurvesPane's CSS)
SCROLLBAR = 1  # the list's vertical scrollbar (RunList's CSS): always counted, shown or not
PAD = 2  # cell_padding=1 on each side of every column
# Fixed widths: columns never jump as values arrive, and snapshots are stable. The run
# column's width is what the list's width leaves (RunList.fit_width); this is its floor.
COLUMNS = (("run", "run", NAME_WIDTH + 2), ("status", "status", STATUS_WIDTH), ("progress", "progress", PROGRESS_WIDTH))
# Shown only on very wide terminals (see CurvesPane.on_resize): rate, time left, process cost.
EXTRA_COLUMNS = (("rate", "steps/s", 7), ("eta", "ETA", 7), ("cpu", "CPU%", 5), ("rss", "RSS", 6), ("gpu", "GPU%", 5))
ARCHIVED_MARK = "⊟"
REGISTERED_MARK = "®"


def fixed_width(columns: Sequence[tuple[str, str, int]]) -> int:
    """Cells the columns other than the run column take, padding included."""
    return sum(w + PAD for key, _, w in columns if key != "run")


def name_width_for(list_width: int, columns: Sequence[tuple[str, str, int]]) -> int:
    """The run column's width in a list `list_width` wide: what the other columns, the
    border and the scrollbar leave (the status column is never the one cut)."""
    return max(6, list_width - BORDER - SCROLLBAR - PAD - fixed_width(columns))


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def steps_per_s(brief: RunBrief | None) -> float | None:
    """The trainer's own steps_per_s if it logs one, else steps over time across the rows."""
    if brief is None or brief.rows == 0:
        return None
    if math.isfinite(brief.steps_per_s):
        return brief.steps_per_s
    s0, s1 = _finite(brief.first_step), _finite(brief.step)
    t0, t1 = _finite(brief.first_time), _finite(brief.last_time)
    if None in (s0, s1, t0, t1) or t1 <= t0:  # type: ignore[operator]
        return None
    return (s1 - s0) / (t1 - t0)  # type: ignore[operator]


def eta_seconds(brief: RunBrief | None, info: RunInfo) -> float | None:
    """Time left for a running run: epochs still to go times the seconds per epoch so far."""
    epochs = info.config.get("epochs") if isinstance(info.config, dict) else None
    if info.status != "running" or brief is None or brief.rows < 2 or not isinstance(epochs, (int, float)):
        return None
    e0, e1 = _finite(brief.first_epoch), _finite(brief.last_epoch)
    t0, t1 = _finite(brief.first_time), _finite(brief.last_time)
    if None in (e0, e1, t0, t1) or e1 <= e0 or t1 <= t0:  # type: ignore[operator]
        return None
    return max(0.0, float(epochs) - e1) * (t1 - t0) / (e1 - e0)  # type: ignore[operator]


def size_text(n: float | None) -> str:
    if n is None or not math.isfinite(n) or n < 0:
        return ""
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit in ("B", "K") or n >= 100 else f"{n:.1f}{unit}"
        n /= 1024
    return ""


def extra_cells(info: RunInfo, brief: RunBrief | None, system: dict[str, Any] | None) -> tuple[str, ...]:
    rate = steps_per_s(brief)
    rate_s = "" if rate is None else (f"{rate:.1f}" if rate < 1000 else f"{rate:.0f}")
    sysrow = system if info.status == "running" else None  # a finished run costs nothing now

    def num(key: str) -> float | None:
        v = (sysrow or {}).get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    cpu, rss, gpu = num("cpu_percent"), num("rss_bytes"), num("gpu_util_percent")
    return (
        rate_s,
        duration(eta_seconds(brief, info)),
        "" if cpu is None else f"{cpu:.0f}",
        size_text(rss),
        "" if gpu is None else f"{gpu:.0f}",
    )


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
    """Keep the end of long run ids: that is where runs differ (time stamp, hash).

    The chart's legend uses this; the run list shows names whole from the left (`name_cell`).
    """
    return label if len(label) <= width else "…" + label[-(width - 1):]


def name_cell(marks: str, label: str, tags: Sequence[str], width: int) -> str:
    """Marks, the whole name (cut at the right with … if it must) and the tags after it
    as `#tag` while they fit (` #…` when some do not): the name is never cut from the
    left, and it wins over the tags."""
    room = width - len(marks)
    text = fit(clean(label), room)
    for tag in tags:
        more = f" #{clean(tag)}"
        if len(text) + len(more) <= room:
            text += more
            continue
        if len(text) + 3 <= room:
            text += " #…"
        break
    return marks + text


def progress_text(brief: RunBrief | None) -> str:
    if brief is None:
        return "…"
    if brief.rows == 0:
        return "⚠ unreadable" if brief.problem else "no rows"
    step, epoch = brief.step, brief.epoch
    parts = [f"s{int(step):,}" if math.isfinite(step) else ""]
    if math.isfinite(epoch):
        parts.append(f"e{epoch:.0f}")
    return " ".join(p for p in parts if p)


def _look(cell: Text | str) -> tuple[str, str]:
    """What a cell looks like: its text and its style (Text equality ignores the style)."""
    return (cell.plain, str(cell.style)) if isinstance(cell, Text) else (cell, "")


class RunList(DataTable[Text | str]):
    """Runs in the order the pane gives (newest first unless sorted). Marks: ◆ pinned
    baseline, ✓ selected for comparison, ® has a registered version, ⊟ archived."""

    DEFAULT_CSS = """
    RunList { height: 1fr; overflow-x: hidden; scrollbar-size-vertical: 1; }
    RunList.-scroll-x { overflow-x: auto; }
    """
    # Rows are what matters here: Home/End go to the first/last run, j/k as in a pager.
    BINDINGS = [
        Binding("home", "scroll_top", "First run", show=False),
        Binding("end", "scroll_bottom", "Last run", show=False),
        Binding("j", "cursor_down", "Next run", show=False),
        Binding("k", "cursor_up", "Previous run", show=False),
    ]

    class Scrolled(Message):
        """Other rows came into view: their runs may need reading."""

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=1, **kwargs)  # type: ignore[arg-type]
        self.clock = clock
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._shown: dict[str, tuple[Any, ...]] = {}  # run id -> the cells as last drawn
        self._inputs: dict[str, tuple[Any, ...]] = {}  # run id -> what those cells were made from
        self._restore: str | None = None  # the cursor's run across a column rebuild
        self.wide = False
        self.extra = False  # rate, ETA and CPU/RSS/GPU columns too
        self.registered: frozenset[str] = frozenset()  # runs with a registered version (the Versions pane says)
        self.list_width = 0  # the width the pane gave the list (0: the run column's floor)
        self.user_columns: tuple[Column, ...] = ()  # config keys and metrics chosen with `h`
        self.headers: dict[str, str] = {}  # a chosen column's id -> its header
        self.widths: dict[str, int] = {}  # a chosen column's id -> its width (from its values)
        # A chosen column's raw value for a run (the pane knows configs and metric values).
        self.value_of: Callable[[RunInfo, Column], Any] = lambda _info, _col: None

    @property
    def columns_shown(self) -> tuple[tuple[str, str, int], ...]:
        if self.wide and self.extra:
            base = COLUMNS + EXTRA_COLUMNS
        else:
            base = COLUMNS if self.wide else COLUMNS[:2]
        name = name_width_for(self.list_width, base) if self.list_width else NAME_WIDTH + 2
        cols = (("run", "run", name),) + tuple(base[1:])
        return cols + tuple((c.id, self.headers.get(c.id, c.key), self._width_of(c)) for c in self.user_columns)

    def _width_of(self, col: Column) -> int:
        return self.widths.get(col.id) or column_width(self.headers.get(col.id, col.key))

    @property
    def user_width(self) -> int:
        """Cells the chosen columns take, padding included."""
        return sum(self._width_of(c) + PAD for c in self.user_columns)

    def _add_columns(self) -> None:
        for key, label, width in self.columns_shown:
            self.add_column(plain(fit(label, width)), key=key, width=width)

    def on_mount(self) -> None:
        self._add_columns()

    def configure(
        self,
        wide: bool,
        extra: bool = False,
        list_width: int | None = None,
        columns: Sequence[Column] | None = None,
        headers: dict[str, str] | None = None,
        widths: dict[str, int] | None = None,
    ) -> bool:
        """Choose the columns: progress where it fits, the extra figures where they fit, the
        chosen config/metric columns; the run column takes the width the others leave."""
        extra = extra and wide
        width = self.list_width if list_width is None else list_width
        cols = self.user_columns if columns is None else tuple(columns)
        heads = self.headers if headers is None else dict(headers)
        sizes = self.widths if widths is None else dict(widths)
        if (wide, extra, width, cols, heads, sizes) == (self.wide, self.extra, self.list_width, self.user_columns,
                                                         self.headers, self.widths):  # fmt: skip
            return False
        self.wide, self.extra, self.list_width, self.user_columns = wide, extra, width, cols
        self.headers, self.widths = heads, sizes
        self.set_class(bool(cols), "-scroll-x")
        self._restore = self.cursor_run
        self.clear(columns=True)
        self._order = []
        self._index = {}
        self._shown = {}
        self._inputs = {}
        if self.is_mounted:
            self._add_columns()
        return True

    def set_wide(self, wide: bool, extra: bool = False) -> None:
        """Show the progress column only where it fits (no sideways scrolling)."""
        self.configure(wide, extra)

    @property
    def name_width(self) -> int:
        return self.columns_shown[0][2]

    @property
    def order(self) -> list[str]:
        return list(self._order)

    @property
    def cursor_run(self) -> str | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    def visible_runs(self, margin: int = 2) -> list[str]:
        """The runs whose rows are on screen (a screenful from the top before layout)."""
        height = self.scrollable_content_region.height or self.size.height or 40
        top = int(self.scroll_y)
        return self._order[max(0, top - margin) : top + height + margin]

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self.post_message(self.Scrolled())

    def _status(self, info: RunInfo) -> Text:
        status = info.status
        var, bold = STATUS_STYLE.get(status, (None, False))
        style = theme_style(self.app, var, bold=bold) if var else ""
        label = status
        if status == "running" and info.started:
            label = f"▶ {duration(self.clock() - info.started)}"
        elif info.problem and status == "unknown":
            label = "⚠ " + status
        return plain(label, style)

    def sync(
        self,
        runs: Sequence[RunInfo],
        briefs: dict[str, RunBrief],
        selected: set[str],
        pinned: str | None,
        system: dict[str, dict[str, Any]] | None = None,
        ordered: bool = False,
    ) -> None:
        """Bring the rows in line with `runs` (newest first, or as given when `ordered`),
        keeping the cursor's run.

        A new set or order of runs rebuilds the rows; otherwise only cells that differ
        from what is shown are updated.
        """
        keep = self.cursor_run or self._restore
        if not ordered:
            runs = sorted(runs, key=lambda r: (r.started or 0.0, r.id), reverse=True)
        ids = [r.id for r in runs]
        if ids != self._order:
            self.clear()
            self._order = ids
            self._index = {run_id: i for i, run_id in enumerate(ids)}
            self._shown = {}
            self._inputs = {}
            for info in runs:
                cells = self._cells(info, briefs.get(info.id), selected, pinned, system)
                self._shown[info.id] = cells
                self.add_row(*cells, key=info.id)
            if keep in self._index:
                self.move_cursor(row=self._index[keep])
            self._restore = None
            return
        for info in runs:
            self.update_run(info, briefs.get(info.id), selected, pinned, system)

    def restyle(self) -> None:
        """The theme changed: the next sync compares every row's cells again."""
        self._inputs = {}

    def set_registered(self, run_ids: frozenset[str]) -> None:
        """Mark these runs ®; the next sync redraws the rows whose mark changed."""
        self.registered = run_ids
        self._inputs = {}

    def values_changed(self) -> None:
        """The chosen columns' values changed (metric values read): compare rows again."""
        self._inputs = {}

    def update_run(
        self,
        info: RunInfo,
        brief: RunBrief | None,
        selected: set[str],
        pinned: str | None,
        system: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Redraw one run's row: only the cells whose content changed."""
        old = self._shown.get(info.id)
        if old is None:
            return
        sysrow = (system or {}).get(info.id) if self.extra else None
        inputs = (info, brief, info.id in selected, info.id == pinned, sysrow)
        was = self._inputs.get(info.id)
        if info.status != "running" and was is not None and all(
            a is b for a, b in zip(inputs, was)
        ):  # the same objects as last time: nothing to compare (a running row shows a clock)
            return
        self._inputs[info.id] = inputs
        cells = self._cells(info, brief, selected, pinned, system)
        if list(map(_look, cells)) == list(map(_look, old)):
            return
        for (key, _, _), value, before in zip(self.columns_shown, cells, old):
            if _look(value) != _look(before):
                self.update_cell(info.id, key, value)
        self._shown[info.id] = cells

    def _cells(
        self,
        info: RunInfo,
        brief: RunBrief | None,
        selected: set[str],
        pinned: str | None,
        system: dict[str, dict[str, Any]] | None = None,
    ) -> tuple[Text | str, ...]:
        marks = ("◆" if info.id == pinned else " ") + ("✓" if info.id in selected else " ")
        if info.id in self.registered:  # a run without a version keeps its row as it was
            marks += REGISTERED_MARK
        if info.archived:
            marks += ARCHIVED_MARK
        shown = self.columns_shown
        name = plain(name_cell(marks, info.label, info.tags, shown[0][2]), "dim" if info.archived else "")
        cells: tuple[Text | str, ...] = (name, self._status(info))
        if self.wide:
            cells += (plain(progress_text(brief)),)
        if self.extra:
            cells += tuple(plain(c) for c in extra_cells(info, brief, (system or {}).get(info.id)))
        for col, (_, _, width) in zip(self.user_columns, shown[len(cells):]):
            value = self.value_of(info, col)
            text = format_value(value)
            cell = plain(fit(text, width))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cell.justify = "right"
            cells += (cell,)
        return cells

