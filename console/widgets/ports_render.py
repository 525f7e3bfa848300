"""What the Ports pane draws, as plain functions of PortView rows: tested without a terminal.

The matrix's columns and which of them fit a width, one row's cells, the health glyph and its
look, and the lines above and under the matrix (the confirmations are in ports_actions.py). Every
string a PortView holds (model, versions, paths, run ids, details, notes) is data: it becomes
`plain` Text, control characters replaced, never markup. Colours come from a `Look` built from
the theme; each health state also has a text style (bold, reverse, dim), so states stay apart
in the mono theme and under NO_COLOR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from trainledger.console.text import clean, plain
from trainledger.console.widgets.capture_render import duration, sparkline

if TYPE_CHECKING:
    from trainledger.engines.serving.view import PortView

# state -> (glyph, theme variable, text style): the glyph and the text style carry the state where
# colour is gone (argo rollouts' glyphs: ✔ healthy, ⚠ degraded, ‖ paused, ✖ failed)
STATE_LOOK: dict[str, tuple[str, str | None, str]] = {
    "up": ("✔", "success", "bold"),
    "slow": ("⚠", "warning", "bold"),
    "hung": ("‖", "error", "bold"),
    "garbage": ("✖", "error", "bold reverse"),
    "down": ("✖", "error", "bold"),
    "stopped": ("·", None, "dim"),
}
RUNNING = frozenset({"up", "slow", "hung", "garbage"})  # a process answers (or holds) the port
BAD_ERROR_RATE = 0.15  # seed 004 rolls back past 15 %: shown as bad from there
DASH = "–"
RESERVE = 2  # the table's vertical scrollbar, when rows outgrow it


@dataclass(frozen=True)
class Look:
    """Rich styles for the health states and a few roles, read from the theme once per restyle."""

    state: Mapping[str, Style] = field(default_factory=dict)
    good: Style = Style()
    warn: Style = Style(bold=True)
    bad: Style = Style(bold=True)
    muted: Style = Style(dim=True)
    head: Style = Style(bold=True)

    def of(self, state: str) -> Style:
        return self.state.get(state, Style())


def look_from(colours: Mapping[str, Style | None]) -> Look:
    """A Look from the theme's colours by variable name (success, warning, error)."""

    def style(var: str | None, attrs: str) -> Style:
        base = Style.parse(attrs) if attrs else Style()
        colour = colours.get(var) if var else None
        return colour + base if colour else base

    return Look(
        state={s: style(var, attrs) for s, (_, var, attrs) in STATE_LOOK.items()},
        good=style("success", ""), warn=style("warning", ""), bad=style("error", "bold"),
    )  # fmt: skip


def glyph(state: str) -> str:
    return STATE_LOOK.get(state, ("?", None, ""))[0]


# --------------------------------------------------------------------------- numbers as words


def ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def percent(rate: float | None) -> str:
    if rate is None or not math.isfinite(rate):
        return DASH
    pct = rate * 100
    return "100%" if pct >= 99.95 else f"{pct:.1f}%"


def per_second(rps: float | None) -> str:
    if rps is None or not math.isfinite(rps):
        return DASH
    if rps >= 10_000:
        return f"{rps / 1000:.0f}k"
    if rps >= 1000:
        return f"{rps / 1000:.1f}k"
    return f"{rps:.1f}" if rps < 100 else f"{rps:.0f}"


def memory(n: int | None) -> str:
    if n is None:
        return DASH
    mb = n / (1 << 20)
    if mb < 1:
        return f"{n >> 10} KB"
    return f"{mb:.0f} MB" if mb < 1024 else f"{mb / 1024:.1f} GB"


def count(n: int | None) -> str:
    """A parameter count in three figures: 840, 12.3k, 1.23M, 7.1B."""
    if n is None:
        return DASH
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.3g}{unit}"
    return str(n)


def short_sha(sha: str | None, width: int = 8) -> str:
    return DASH if not sha else clean(sha)[:width]


def metric(val: tuple[str, float] | None, short: bool = False) -> str:
    """`val/cosine 0.71`; `short` drops a `val/` prefix (the column says val)."""
    if not val:
        return DASH
    name, value = val
    name = str(name)
    if short and name.startswith(("val/", "val_")) and len(name) > 4:
        name = name[4:]
    try:
        shown = f"{float(value):.4g}"
    except (TypeError, ValueError):
        shown = clean(value)
    return f"{clean(name)} {shown}"


def fit(text: str, width: int) -> str:
    """`text` cut to `width` cells with an ellipsis at the end."""
    if cell_len(text) <= width:
        return text
    out, used = "", 0
    for ch in text:
        if used + cell_len(ch) > width - 1:
            break
        out += ch
        used += cell_len(ch)
    return out + "…"


def fit_left(text: str, width: int) -> str:
    """`text` cut to `width` cells from the left: a path keeps its file name."""
    if cell_len(text) <= width:
        return text
    out, used = "", 0
    for ch in reversed(text):
        if used + cell_len(ch) > width - 1:
            break
        out = ch + out
        used += cell_len(ch)
    return "…" + out


# --------------------------------------------------------------------------- the matrix's columns


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # what it gets when there is room
    least: int  # abbreviated to this before it is dropped
    right: bool = False
    short: str = ""  # the label when `label` does not fit


# In the order shown; PRIORITY says which stay as the terminal narrows.
COLUMNS: tuple[Column, ...] = (
    Column("port", "port", 5, 5, right=True),
    Column("health", "health", 9, 9),
    Column("model", "model", 14, 8),
    Column("active", "active", 6, 6),
    Column("canary", "canary", 8, 7),
    Column("run", "run", 16, 12),
    Column("data", "data · sha256", 26, 18),
    Column("val", "val metric", 16, 12),
    Column("params", "params", 7, 6, right=True),
    Column("latency", "p50/p95 ms", 10, 9, right=True, short="p50/p95"),
    Column("err", "err", 5, 5, right=True),
    Column("rps", "req/s", 6, 5, right=True),
    Column("rss", "rss", 7, 7, right=True),
    Column("spark", "latency", 16, 10),
)
PRIORITY = ("port", "health", "model", "active", "canary", "latency", "err", "spark", "rps", "rss",
            "run", "params", "val", "data")  # fmt: skip
GROW_ORDER = ("model", "data", "run", "val", "canary", "latency", "err", "rps", "spark", "params", "health", "port",
              "active", "rss")  # who gets the room left, first to last  # fmt: skip
GROW = {"spark": 40, "model": 24, "run": 28, "data": 48, "val": 24}  # past their width on wide screens


def layout(width: int, padding: int = 1) -> tuple[tuple[Column, int], ...]:
    """The columns that fit `width` cells, each with its width, in the order shown.

    Columns join in PRIORITY order at their least width and the first that does not fit ends
    the list (at 80 cells: port to latency; the rest of a row is said under the matrix); the
    room left widens them to their width in priority order, then a very wide terminal widens
    the sparkline and the provenance further."""
    by_key = {c.key: c for c in COLUMNS}
    budget = width - RESERVE
    chosen: dict[str, int] = {}
    used = 0
    for key in PRIORITY:
        need = by_key[key].least + 2 * padding
        if used + need > budget:
            break
        chosen[key] = by_key[key].least
        used += need
    for key in [k for k in GROW_ORDER if k in chosen]:
        grow = min(by_key[key].width - chosen[key], budget - used)
        chosen[key] += grow
        used += grow
    for key, most in GROW.items():
        if key in chosen and used < budget:
            grow = max(0, min(most - chosen[key], budget - used))
            chosen[key] += grow
            used += grow
    return tuple((c, chosen[c.key]) for c in COLUMNS if c.key in chosen)


def health_text(row: PortView, look: Look) -> Text:
    state = clean(row.state)
    return Text(f"{glyph(row.state)} {state}", style=look.of(row.state), end="")


def _cell(row: PortView, key: str, width: int, look: Look) -> Text:
    if key == "port":
        return Text(str(row.port), end="")
    if key == "health":
        t = health_text(row, look)
        t.truncate(width, overflow="ellipsis")
        return t
    if key == "model":
        if row.model is None:
            return Text(fit("passthrough", width), style=look.muted + Style(italic=True), end="")
        return plain(fit(clean(row.model), width))
    if key == "active":
        if not row.active:
            return Text(DASH, style=look.muted, end="")
        return plain(fit(clean(row.active), width), style=look.good if row.state == "up" else "")
    if key == "canary":
        if not row.canary:
            return Text(DASH, style=look.muted, end="")
        return plain(fit(f"{clean(row.canary)} {row.traffic}%", width), style=look.warn)
    if key == "run":
        return plain(fit(clean(row.run_id), width)) if row.run_id else Text(DASH, style=look.muted, end="")
    if key == "data":
        if not row.dataset_path:
            return Text(DASH, style=look.muted, end="")
        sha = short_sha(row.dataset_sha256)
        t = plain(fit_left(clean(row.dataset_path), max(4, width - len(sha) - 1)))
        t.append(" " + sha, style=look.muted)
        return t
    if key == "val":
        return plain(fit(metric(row.val_metric, short=True), width))
    if key == "params":
        return Text(count(row.parameters), end="")
    if key == "latency":
        p50, p95, style = row.p50_ms, row.p95_ms, Style()
        if p50 is None and p95 is None and (row.probe_p50_ms is not None or row.probe_p95_ms is not None):
            p50, p95, style = row.probe_p50_ms, row.probe_p95_ms, look.muted  # the prober's own probes
        if p50 is None and p95 is None:
            return Text(DASH, style=look.muted, end="")
        return Text(fit(f"{ms(p50)}/{ms(p95)}", width), style=style, end="")
    if key == "err":
        rate = row.error_rate
        style = look.bad if rate is not None and rate >= BAD_ERROR_RATE else look.warn if rate else Style()
        return Text(percent(rate), style=style, end="")
    if key == "rps":
        return Text(per_second(row.rps), end="")
    if key == "rss":
        return Text(memory(row.rss_bytes), end="")
    if key == "spark":
        values = [v for v in row.latency_history if isinstance(v, (int, float)) and math.isfinite(v)]
        if not values:
            return Text(DASH, style=look.muted, end="")
        return sparkline(values, width, look.of(row.state) if row.state != "up" else None)
    raise KeyError(key)


def cells(row: PortView, columns: Sequence[tuple[Column, int]], look: Look) -> tuple[Text, ...]:
    """One row of the matrix, a Text per column (right-aligned where the column is)."""
    out = []
    for col, width in columns:
        t = _cell(row, col.key, width, look)
        if col.right:
            t.justify = "right"
        out.append(t)
    return tuple(out)


def header(col: Column, width: int) -> Text:
    label = col.label if cell_len(col.label) <= width or not col.short else col.short
    return Text(fit(label, width), justify="right" if col.right else "left", end="")


# --------------------------------------------------------------------------- above and under the matrix


def tally(rows: Sequence[PortView]) -> str:
    """`6 ports · 4 up · 1 hung · 1 stopped`."""
    by: dict[str, int] = {}
    for r in rows:
        by[r.state] = by.get(r.state, 0) + 1
    parts = [f"{len(rows)} port{'s' if len(rows) != 1 else ''}"]
    parts += [f"{n} {clean(s)}" for s, n in sorted(by.items(), key=lambda kv: (kv[0] != "up", kv[0]))]
    return " · ".join(parts)


def head_text(rows: Sequence[PortView], now: float, width: int, readonly: bool = False) -> Text:
    """The line above the matrix: the tally, how fresh the probes are, the keys."""
    t = Text(tally(rows), end="")
    probed = [r.probed_at for r in rows if r.probed_at is not None]
    if probed:
        t.append(f" · probed {max(0, int(now - max(probed)))}s ago")
    if readonly:
        t.append(" · read-only")
    keys = " · enter: drill-down · ? keys" if readonly else " · enter: drill-down · u d r: start, drain, restart"
    if cell_len(t.plain + keys) <= width - 2:
        t.append(keys, style="dim")
    return t


def versions_words(row: PortView) -> str:
    """`lvm-amn v2 + v3 at 10 %` (or what the port serves)."""
    name = clean(row.model) if row.model else "passthrough"
    text = f"{name} {clean(row.active) if row.active else '(nothing active)'}"
    if row.canary:
        text += f" + {clean(row.canary)} at {row.traffic} %"
    return text


def foot_text(row: PortView | None, look: Look, busy: str | None = None) -> Text:
    """Under the matrix: the chosen port's health and why, and its provenance (which a narrow
    terminal has no columns for)."""
    if row is None:
        return Text("", end="")
    t = Text(end="")
    t.append(f"{row.port} ", style=look.head)
    t.append_text(plain(versions_words(row)))
    t.append("  ")
    t.append_text(health_text(row, look))
    if busy:
        t.append(f"  ({busy})", style=look.warn)
    if row.pid is not None:
        t.append(f"  pid {row.pid}", style=look.muted)
    if row.uptime_s is not None:
        t.append(f"  up {duration(row.uptime_s)}", style=look.muted)
    if not row.configured:
        t.append("  started by hand", style=look.muted)
    if row.detail:
        t.append("\n")
        t.append_text(plain(row.detail, style=look.of(row.state) if row.state != "up" else look.muted))
    if row.note:
        t.append("\n⚠ ", style=look.warn)
        t.append_text(plain(row.note, style=look.warn))
    prov = [f"run {clean(row.run_id)}" if row.run_id else "no run (deployed from a folder)" if row.model else ""]
    if row.dataset_path:
        prov.append(f"data {clean(row.dataset_path)} {short_sha(row.dataset_sha256, 12)}")
    if row.val_metric:
        prov.append(metric(row.val_metric))
    if row.parameters is not None:
        prov.append(f"{count(row.parameters)} parameters")
    if row.rps is not None:
        prov.append(f"{per_second(row.rps)} req/s")
    if row.rss_bytes is not None:
        prov.append(f"RSS {memory(row.rss_bytes)}")
    prov = [p for p in prov if p]
    if prov:
        t.append("\n")
        t.append_text(plain(" · ".join(prov), style=look.muted))
    return t


def empty_text(ports_file: str) -> Text:
    return plain(
        f"No ports yet. List them in {ports_file} and start them here (u), or from a shell:\n"
        "  trainledger ports up            (every port in the file)\n"
        "  trainledger serve --model MODEL --port PORT\n"
        "A server started by hand shows here too."
    )


def said(rows: Sequence[PortView]) -> list[str]:
    """The headless summary's lines: one per port."""
    return [f"  {r.port}  {versions_words(r)}  {clean(r.state)}" for r in rows]

