"""Text from data, for widgets: always a Rich `Text`, never markup, never escapes.

Every string that comes from a file, a process, a request or the user goes through
`plain` (or `plain_lines`) before it reaches a widget, a border title or a
notification. `[/]` in a run name is then two brackets and a slash, and an escape
sequence is a visible ␛ followed by its characters.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style, StyleType
from rich.text import Text
from textual.color import Color
from textual.filter import LineFilter

from trainledger.engines.safetext import clean, clean_lines, has_control

__all__ = ["ControlCharacterFilter", "clean", "clean_lines", "plain", "plain_lines"]


def plain(value: object, style: StyleType | Style = "") -> Text:
    """One line of data as Text: control characters replaced, no markup parsed."""
    return Text(clean(value), style=style, end="")


def plain_lines(value: object, style: StyleType | Style = "") -> Text:
    """Multi-line data as Text (newlines kept, every other control replaced)."""
    return Text(clean_lines(value), style=style, end="")


class ControlCharacterFilter(LineFilter):
    """The last line of defence: no control character reaches the terminal as text.

    Every data string is cleaned where it enters a widget (`plain`); this filter, run on
    every rendered line, catches any that a future widget forgets. Textual's own cursor
    and mode changes are control *segments* and pass untouched.
    """

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not any(seg.control is None and has_control(seg.text) for seg in segments):
            return segments
        return [
            Segment(clean(seg.text), seg.style, None)
            if seg.control is None and has_control(seg.text)
            else seg
            for seg in segments
        ]


def notify_plain(target: object, message: str, **kwargs: object) -> None:
    """`target.notify(...)` (an App or a widget) for a message that holds data: no markup."""
    kwargs["markup"] = False
    if "title" in kwargs:
        kwargs["title"] = clean(kwargs["title"])
    target.notify(clean_lines(message), **kwargs)  # type: ignore[attr-defined]
