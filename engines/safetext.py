"""Make any string from a file, a process, a request or the user safe to print.

Run names, metric names, session ids, error texts and log lines are data. Printed raw,
an `ESC ] 2 ; ... BEL` in a run name sets the user's terminal title and OSC 52 writes
their clipboard. `clean` replaces every C0 and C1 control character (and DEL) with a
visible mark, so what reaches a terminal is the text and nothing else. The console
wraps the result in a Rich `Text` (never markup); CLIs print it as it is.
"""

from __future__ import annotations

import re

# C0 (0x00-0x1f), DEL (0x7f), C1 (0x80-0x9f); plus the Unicode line and paragraph
# separators, which some terminals treat as newlines.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_KEEP_NL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _mark(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ESC -> ␛, BEL -> ␇
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"  # C1 and the separators: the replacement character


def clean(value: object) -> str:
    """`value` as a string with every control character replaced by a visible mark."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(_mark, text)


def clean_lines(value: object) -> str:
    """Like `clean`, but keeps newlines (for multi-line log text and error details)."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL_KEEP_NL.sub(_mark, text)


def has_control(value: str) -> bool:
    return _CONTROL.search(value) is not None
