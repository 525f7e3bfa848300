"""What the run screen's sections look like, as plain functions of `RunDetails`: tested without a terminal.

Identity (with the whole error, every line of it), the command line, every setting, the data
and its hash, timings, the best and last of every metric, events, checkpoints and the
malformed metric lines. Every string from a file becomes `plain` Text (control characters
replaced, never markup). Times are shown in UTC so a screen reads the same on every host.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from trainledger.console.text import plain, plain_lines
from trainledger.console.widgets.report_render import Look
from trainledger.engines.run_details import RunDetails

SHA_SHOWN = 16  # characters of a sha256 in tables (the full hash is in the file and in `identity`)
EVENTS_SHOWN = 200
MALFORMED_SHOWN = 50


# --------------------------------------------------------------------------- formatting


def utc(t: float | None) -> str:
    if t is None or not math.isfinite(t) or t <= 0:
        return "-"
    try:
        return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "-"


def duration(s: float | None) -> str:
    """`42s`, `17m 40s`, `3h 05m`, `2d 4h`."""
    if s is None or not math.isfinite(s) or s < 0:
        return "-"
    if s < 60:
        return f"{s:.1f}s" if s < 10 else f"{s:.0f}s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {sec:02d}s"


def number(v: float | None) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.6g}"


def size(n: float | None) -> str:
    if n is None or not math.isfinite(n):
        return "-"
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


def _at(step: float | None, epoch: float | None) -> str:
    parts = []
    if step is not None:
        parts.append(f"step {number(step)}")
    if epoch is not None:
        parts.append(f"epoch {number(epoch)}")
    return " · ".join(parts) or "-"


def _pairs(rows: list[tuple[str, Text]], look: Look) -> Table:
    """A two-column key/value table; values wrap (never cut)."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style=look.head, no_wrap=True)
    t.add_column(overflow="fold")
    for key, value in rows:
        t.add_row(plain(key), value)
    return t


# --------------------------------------------------------------------------- sections


def status_text(d: RunDetails, look: Look) -> Text:
    status = d.info.status
    style = look.of("fail") if status in ("failed", "lost") else look.of("pass") if status == "finished" else Style()
    return plain(status, style)


def identity(d: RunDetails, look: Look) -> RenderableType:
    i = d.info
    rows = [
        ("id", plain(d.run_id)),
        ("name", plain(d.name or "-")),
        ("model", plain(i.model or "-")),
        ("backend", plain(d.backend or "-")),
        ("device", plain(d.device or "-")),
        ("host", plain(i.host or "-")),
        ("pid", plain("-" if i.pid is None else str(i.pid))),
        ("status", status_text(d, look)),
    ]
    if i.tags:
        rows.append(("tags", plain(", ".join(i.tags))))
    if i.note:
        rows.append(("note", plain_lines(i.note)))
    if i.problem:
        rows.append(("run.json", plain(i.problem, look.of("fail"))))
    parts: list[RenderableType] = [_pairs(rows, look)]
    if i.error:
        parts.append(Text("error (the whole text)", style=look.head))
        parts.append(plain_lines(i.error, look.of("fail")))  # the whole text, every line
    for part in parts:  # in a Group each Text ends its line (Textual drops a last line left open)
        if isinstance(part, Text):
            part.end = "\n"
    return Group(*parts)


def command(d: RunDetails, look: Look) -> RenderableType:
    if d.command is None:
        return Text("not recorded: run.json has no argv (a run written by a script of its own)", style=look.muted,
                    end="")  # fmt: skip
    return plain(d.command)


def timings(d: RunDetails, look: Look) -> RenderableType:
    t = d.timings
    running = d.info.status == "running"
    rows = [
        ("started", plain(utc(t.started))),
        ("ended", plain(utc(t.ended) if t.ended is not None else ("running" if running else "-"))),
        ("duration", plain(duration(t.duration) + (" so far" if running and t.duration is not None else ""))),
        ("at", plain(_at(t.last_step, t.last_epoch) + (f" of {number(t.total_epochs)} epochs"
                                                       if t.total_epochs is not None else ""))),  # fmt: skip
        ("steps/s", plain("-" if t.steps_per_s is None else f"{t.steps_per_s:.3g}")),
    ]
    if running:
        rows.append(("ETA", plain(duration(t.eta_s) if t.eta_s is not None else "unknown (no total steps or epochs)")))
    return _pairs(rows, look)


def metrics_table(d: RunDetails, look: Look) -> RenderableType:
    if not d.metrics:
        return Text("no metrics yet", style=look.muted, end="")
    t = Table(box=None, padding=(0, 1), show_edge=False, header_style=look.head, expand=False)
    t.add_column("metric", overflow="fold")
    t.add_column("best", justify="right", no_wrap=True)
    t.add_column("at", no_wrap=True)
    t.add_column("last", justify="right", no_wrap=True)
    t.add_column("at", no_wrap=True)
    t.add_column("points", justify="right", no_wrap=True)
    for m in d.metrics:
        arrow = {"min": " ↓", "max": " ↑"}.get(m.direction or "", "")
        name = plain(m.name)
        name.append(arrow, style=look.muted)
        best = plain(number(m.best)) if m.best is not None else Text("-", style=look.muted)
        best_at = plain(_at(m.best_step, m.best_epoch)) if m.best is not None else Text("")
        if m.best is not None and not m.best_is_last:
            best.stylize(look.head)
        last_at = plain(_at(m.last_step, m.last_epoch))
        t.add_row(name, best, best_at, plain(number(m.last)), last_at, plain(f"{m.count:,}"))
    return t


def config_table(d: RunDetails, look: Look) -> RenderableType:
    if not d.config:
        return Text("no settings recorded (run.json has no config)", style=look.muted, end="")
    return _pairs([(k, plain(v)) for k, v in d.config], look)


def data_text(d: RunDetails, look: Look) -> RenderableType:
    data = d.data
    if data is None:
        return Text("not recorded (run.json has no data)", style=look.muted, end="")
    rows: list[tuple[str, Text]] = []
    if data.path:
        rows.append(("path", plain(data.path)))
    if data.described:
        rows.append(("data", plain(data.described)))
    if data.kind:
        rows.append(("kind", plain(data.kind)))
    if data.size is not None:
        rows.append(("size", plain(size(data.size))))
    rows.append(("recorded sha256", plain(data.recorded_sha256 or "-")))
    if data.path:
        state = data.state
        now = data.sha256 or ("hashing…" if state == "unhashed" else "-")
        bad = state in ("changed", "no file")
        style = look.of("pass") if state == "matches" else look.of("fail") if bad else Style()
        line = plain(now)
        line.append_text(plain(f"  ({state}{': ' + data.problem if data.problem else ''})", style))
        rows.append(("sha256 now", line))
    return _pairs(rows, look)


def extra_table(d: RunDetails, look: Look) -> RenderableType | None:
    if not d.extra:
        return None
    return _pairs([(k, plain(v)) for k, v in d.extra], look)


def events_table(d: RunDetails, look: Look) -> RenderableType:
    if not d.events:
        return Text("no events (events.jsonl is empty or missing)", style=look.muted, end="")
    t = Table(box=None, padding=(0, 1), show_edge=False, header_style=look.head)
    t.add_column("kind", no_wrap=True)
    t.add_column("step", justify="right", no_wrap=True)
    t.add_column("epoch", justify="right", no_wrap=True)
    t.add_column("time", no_wrap=True)
    t.add_column("message", overflow="fold")
    shown = d.events[-EVENTS_SHOWN:]
    for e in shown:
        t.add_row(plain(e.kind), plain(number(e.step)), plain(number(e.epoch)), plain(utc(e.time)[11:19]),
                  plain_lines(e.message))  # fmt: skip
    if len(d.events) > len(shown):
        return Group(Text(f"the last {len(shown)} of {len(d.events):,} events", style=look.muted), t)
    return t


def checkpoints_table(d: RunDetails, look: Look, sha_chars: int = SHA_SHOWN) -> RenderableType:
    if not d.checkpoints:
        return Text("no checkpoints (the run folder has no checkpoints/)", style=look.muted, end="")
    t = Table(box=None, padding=(0, 1), show_edge=False, header_style=look.head)
    t.add_column("file", overflow="fold")
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column("at", no_wrap=True)
    t.add_column("sha256", overflow="fold")
    t.add_column("", no_wrap=True)
    for c in d.checkpoints:
        sha = c.sha256 or c.recorded_sha256
        state = c.state
        style = look.of("pass") if state == "matches" else look.of("fail") if state == "changed" else look.muted
        shown_sha = (sha[:sha_chars] + "…") if sha and sha_chars < len(sha) else (sha or "-")
        word = "hashing…" if state == "unhashed" else state
        t.add_row(plain(c.name), plain(size(c.size)), plain(_at(c.step, c.epoch)), plain(shown_sha), plain(word, style))
    return t


def malformed_text(d: RunDetails, look: Look) -> RenderableType:
    if d.malformed is None:
        return plain(d.malformed_problem or "not counted", look.muted)
    count, lines = d.malformed
    if count == 0:
        return Text("none: every line of metrics.jsonl is a row", style=look.muted, end="")
    t = plain(f"{count:,} malformed line{'s' if count != 1 else ''} in metrics.jsonl (skipped by the chart)",
              look.of("fail"))  # fmt: skip
    if lines:
        shown = lines[:MALFORMED_SHOWN]
        t.append("\nline" + ("s " if len(shown) > 1 else " "))
        t.append(", ".join(str(n) for n in shown))
        if count > len(shown):
            t.append(f" … and {count - len(shown):,} more")
    return t
