"""The Capture pane's server line: running (where, how, counters), stopped (how to start it),
or a stale record left by a crash. Kept apart so its wording is tested on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App

from trainledger.console.styles import theme_style
from trainledger.console.text import clean, clean_lines
from trainledger.console.widgets.capture_render import duration
from trainledger.engines.capture.live import ServerStats


def start_command(root: Path | str) -> str:
    return f"trainledger capture serve --workspace {root}"


def server_line(
    app: App[Any],
    state: Any,
    stats: ServerStats | None,
    available: bool,
    polled: bool,
    root: Path | str,
    now: float,
    busy: bool = False,
    error: str | None = None,
) -> Text:
    ok, warn, muted = (
        theme_style(app, "success"),
        theme_style(app, "warning"),
        theme_style(app, "text-muted"),
    )
    t = Text()
    if not available:
        t.append("○ capture server: not available", style=warn)
        t.append(" (engines.capture.process is missing from this install)", style=muted)
        return t
    if busy:
        t.append("… starting or stopping the capture server", style=warn)
        return t
    if not polled:
        t.append("… reading the capture server's state", style=muted)
        return t
    if state is None:
        t.append("○ capture server stopped", style=warn)
        t.append(" · S starts it here, or: ", style=muted)
        t.append(clean(start_command(root)))
        if error:
            t.append("\n⚠ " + clean_lines(error), style=warn)
        return t
    if not state.alive:
        t.append("⚠ stale record: ", style=warn)
        t.append(clean(f"the capture server (pid {state.pid}, {state.url}) is gone"))
        t.append(" · S clears it and starts one, or: ", style=muted)
        t.append(clean(start_command(root)))
        return t
    t.append("● capture server ", style=ok)
    t.append(clean(state.url), style="bold")
    facts = [f"fsync {clean(state.fsync)}", f"up {duration(now - state.started_at)}"]
    if state.token_required:
        facts.append("token required")
    if stats is None:
        facts.append("/stats not answering")
    else:
        bad = sum(stats.bad_requests.values())
        facts += [f"{stats.frames_accepted:,} accepted", f"{stats.frames_rejected:,} rejected",
                  f"{bad:,} bad requests"]  # fmt: skip
    t.append(" · " + " · ".join(facts), style=muted)
    t.append(" · S stops it", style=muted)
    return t


def start_error(message: str, port: int, root: Path | str) -> str:
    """The start failure in a sentence; a busy port says which and how to pick another."""
    low = "\n".join(
        message.strip().splitlines()[-3:]
    ).lower()  # this failure, not older log lines
    if "address already in use" in low or "errno 98" in low or "eaddrinuse" in low:
        return (f"port {port} is already in use on 127.0.0.1 (another capture server or program). "
                f"Stop that, or pick another port: trainledger capture serve --workspace {root} "
                f"--port {port + 1}")  # fmt: skip
    first = message.strip().splitlines()
    return "the capture server did not start: " + (
        " / ".join(first[-3:]) if first else "no reason given"
    )
