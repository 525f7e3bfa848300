"""Text builders for the Capture pane: sparklines, the 128-cell input strip, bars, numbers.

Pure functions from numbers to Rich Text, so the pane renders without Textual widgets per
value (one Static per block) and tests can check the cells exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.style import Style
from rich.text import Text

from trainledger.engines.safetext import clean

BLOCKS = "▁▂▃▄▅▆▇█"
GESTURES = 8
CAMERAS = 7


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def duration(seconds: float) -> str:
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def micros(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 10_000:
        return f"{value / 1000:,.0f} ms"
    if value >= 1000:
        return f"{value / 1000:.1f} ms"
    return f"{value:.0f} µs"


def sparkline(values: Sequence[float], width: int, style: Style | None = None) -> Text:
    """The newest `width` values as ▁..█ scaled to their max (blank when all are zero)."""
    vals = list(values)[-width:] if width > 0 else []
    top = max(vals, default=0)
    if top <= 0:
        return Text("·" * len(vals), style=style or "")
    cells = "".join(
        " " if v <= 0 else BLOCKS[min(7, int(v / top * 7.999))] for v in vals
    )
    return Text(cells, style=style or "")


def column_chart(
    values: Sequence[float], width: int, height: int, style: Style | None = None
) -> Text:
    """The newest `width` values as columns `height` cells tall (eighths of a cell), max at the top."""
    if height <= 1:
        return sparkline(values, width, style)
    vals = list(values)[-width:] if width > 0 else []
    top = max(vals, default=0)
    levels = [
        0 if top <= 0 or v <= 0 else max(1, round(v / top * height * 8)) for v in vals
    ]
    rows = []
    for r in range(height):
        floor = (height - 1 - r) * 8
        rows.append(
            "".join(
                " " if lv <= floor else BLOCKS[min(8, lv - floor) - 1] for lv in levels
            )
        )
    return Text("\n".join(rows), style=style or "")


def input_strip(
    values: Sequence[float], per_row: int, style: Style | None = None
) -> Text:
    """The input vector as shaded cells, `per_row` cells a row; −1..1 maps to ▁..█."""
    rows = []
    for i in range(0, len(values), max(1, per_row)):
        chunk = values[i : i + per_row]
        rows.append(
            "".join(
                BLOCKS[
                    min(7, max(0, int((min(1.0, max(-1.0, v)) + 1.0) / 2.0 * 7.999)))
                ]
                for v in chunk
            )
        )
    return Text("\n".join(rows), style=style or "")


def bars(
    label: str,
    values: Sequence[float],
    width: int,
    style: Style | None = None,
    muted: Style | None = None,
) -> Text:
    """Labelled horizontal bars, one a line: `g3 ██████░░░░ 0.42` (values clamped to 0..1)."""
    out = Text()
    for i, v in enumerate(values):
        frac = min(1.0, max(0.0, float(v)))
        full = round(frac * width)
        if i:
            out.append("\n")
        out.append(f"{label}{i} ", style=muted or "")
        out.append("█" * full, style=style or "")
        out.append("░" * (width - full), style=muted or "")
        out.append(f" {float(v):5.2f}")
    return out


def newest_frame_facts(frame: dict[str, Any]) -> str:
    """One line of the newest frame's scalar fields."""
    parts = [f"frame {frame.get('frame')}", f"ts {frame.get('ts'):.3f}"]
    if frame.get("track_name"):
        parts.append(clean(frame["track_name"]))
    parts.append(f"regime {frame.get('regime')}")
    parts.append(f"latency {micros(frame.get('latency_us'))}")
    return " · ".join(parts)


def reasons_text(
    rows: Sequence[tuple[str, str, int]],
    width: int,
    warn: Style | None = None,
    muted: Style | None = None,
) -> Text:
    """`(source, reason, count)` rows, the count right-aligned, reasons cut to the width."""
    out = Text()
    if not rows:
        out.append("no rejects", style=muted or "")
        return out
    for i, (source, reason, count) in enumerate(rows):
        if i:
            out.append("\n")
        head = f"{count:>7,} {source:<6} "
        room = max(8, width - len(head))
        out.append(f"{count:>7,} ", style=warn or "")
        out.append(f"{source:<6} ", style=muted or "")
        reason = clean(reason)
        out.append(reason if len(reason) <= room else reason[: room - 1] + "…")
    return out
