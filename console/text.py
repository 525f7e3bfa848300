"""Text from data, for widgets: always a Rich `Text`, never markup, never escapes.

Every string that comes from a file, a process, a request or the user goes through
`plain` (or `plain_lines`) before it reaches a widget, a border title or a
notification. `[/]` in a run name is then two brackets and a slash, and an escape
sequence is a visible ␛ followed by its characters.
"""

from __future__ import annotations

from rich.style import Style, StyleType
from rich.text import Text

from trainledger.engines.safetext import clean, clean_lines

__all__ = ["clean", "clean_lines", "plain", "plain_lines"]


def plain(value: object, style: StyleType | Style = "") -> Text:
    """One line of data as Text: control characters replaced, no markup parsed."""
    return Text(clean(value), style=style, end="")


def plain_lines(value: object, style: StyleType | Style = "") -> Text:
    """Multi-line data as Text (newlines kept, every other control replaced)."""
    return Text(clean_lines(value), style=style, end="")
