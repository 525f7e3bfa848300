"""Run the real `trainledger` console in a real pseudo-terminal and keep every byte it wrote.

Snapshot SVGs show what Textual meant to draw; these bytes are what a user's terminal
receives: the colour codes, and any escape sequence that data smuggled in.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ConsoleRun:
    output: bytes
    returncode: int | None
    quit_seconds: float | None  # from the quit key to the process's exit


def run_console(
    argv: list[str],
    env: dict[str, str] | None = None,
    *,
    size: tuple[int, int] = (80, 24),
    keys: list[tuple[float, bytes]] = (),
    settle: float = 4.0,
    quit_key: bytes | None = b"q",
    exit_timeout: float = 15.0,
) -> ConsoleRun:
    """Start `python <argv>` on a pty; after `settle` s send each (delay, bytes) key, then quit.

    The process is killed if it has not exited `exit_timeout` s after the quit key.
    """
    master, slave = pty.openpty()
    cols, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLORTERM")}
    full_env.update({"TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, *argv], stdin=slave, stdout=slave, stderr=slave, env=full_env,
        cwd=ROOT, start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    out = bytearray()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([master], [], [], min(left, 0.05))
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    return
                if not chunk:
                    return
                out.extend(chunk)
            elif proc.poll() is not None:
                return

    quit_seconds = None
    try:
        pump(settle)
        for delay, data in keys:
            os.write(master, data)
            pump(delay)
        if quit_key is not None and proc.poll() is None:
            os.write(master, quit_key)
            sent = time.monotonic()
            while proc.poll() is None and time.monotonic() - sent < exit_timeout:
                pump(0.05)
            if proc.poll() is not None:
                quit_seconds = time.monotonic() - sent
        pump(0.3)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        os.close(master)
    return ConsoleRun(bytes(out), proc.returncode, quit_seconds)


_SGR = re.compile(rb"\x1b\[([0-9;:]*)m")
_OTHER_ESC = re.compile(rb"\x1b(?:\[[0-9;:?<=>]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[P^_][^\x1b]*\x1b\\|.)")


def cells_with_colours(output: bytes) -> list[tuple[str, object, object]]:
    """Every printed non-blank character with the (fg, bg) SGR state it was printed in."""
    fg: object = None
    bg: object = None
    cells = []
    pos = 0
    text = output
    while pos < len(text):
        if text[pos] == 0x1B:
            m = _SGR.match(text, pos)
            if m:
                fg, bg = _apply_sgr(m.group(1).decode(), fg, bg)
                pos = m.end()
                continue
            m = _OTHER_ESC.match(text, pos)
            pos = m.end() if m else pos + 1
            continue
        end = text.find(b"\x1b", pos)
        end = len(text) if end < 0 else end
        for ch in text[pos:end].decode("utf-8", "replace"):
            if not ch.isspace():
                cells.append((ch, fg, bg))
        pos = end
    return cells


def _apply_sgr(params: str, fg: object, bg: object) -> tuple[object, object]:
    codes = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", params)] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            fg = bg = None
        elif c in (38, 48) and i + 1 < len(codes):
            if codes[i + 1] == 5 and i + 2 < len(codes):
                value, i = ("256", codes[i + 2]), i + 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                value, i = ("rgb", tuple(codes[i + 2 : i + 5])), i + 4
            else:
                value = None
            if c == 38:
                fg = value
            else:
                bg = value
        elif 30 <= c <= 37 or 90 <= c <= 97:
            fg = ("16", c - 30 if c < 90 else c - 90 + 8)
        elif 40 <= c <= 47 or 100 <= c <= 107:
            bg = ("16", c - 40 if c < 100 else c - 100 + 8)
        elif c == 39:
            fg = None
        elif c == 49:
            bg = None
        i += 1
    return fg, bg
