"""The run screen's System tab captions: the latest and the highest of each figure of system.jsonl.

The figures themselves are drawn as Textual Sparklines by the screen; these say what they are
(`CPU  82% now · max 95%`), and how much of the file they cover. Pure functions, no terminal.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from trainledger.console.widgets.run_render import duration, size
from trainledger.engines.run_details import SystemSeries

FIELDS = ("cpu_percent", "rss_bytes", "gpu_util_percent", "gpu_mem_used_bytes")
_LABELS = {
    "cpu_percent": ("CPU", lambda v: f"{v:.0f}%"),
    "rss_bytes": ("RSS", size),
    "gpu_util_percent": ("GPU", lambda v: f"{v:.0f}%"),
    "gpu_mem_used_bytes": ("GPU memory", size),
}
HEAD = Style(bold=True)


def caption(system: SystemSeries, field: str, head: Style = HEAD) -> Text | None:
    """`CPU        81.8% now · max 95%` for one figure; None when no row has it."""
    values = system.column(field)
    if not values:
        return None
    label, fmt = _LABELS[field]
    t = Text(f"{label:<11}", style=head, end="")
    t.append(f"{fmt(values[-1])} now · max {fmt(max(values))}")
    if field == "gpu_mem_used_bytes" and system.gpu_mem_total_bytes:
        t.append(f" of {size(system.gpu_mem_total_bytes)}")
    return t


def span(system: SystemSeries) -> Text:
    """How many samples over how long, or why there are none."""
    if not system.rows:
        return Text("no system.jsonl: the trainer samples its CPU, memory and GPU there once a second",
                    style="dim", end="")  # fmt: skip
    seconds = system.time[-1] - system.time[0] if len(system.time) > 1 else 0.0
    tail = " (the file's last 2 MB)" if system.from_tail else ""
    return Text(f"{system.rows:,} samples over {duration(seconds)}{tail}", style="dim", end="")
