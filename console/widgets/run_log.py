"""The run screen's log view: many lines, drawn one visible line at a time, searchable.

Lines arrive already read (a worker follows the file with engines/run_details.LogTail); each
is cleaned of control characters when it is stored, so an escape sequence in a trainer's
output is shown as ␛ and never reaches the terminal. While the view is scrolled to its end it
follows new lines. `search` marks every line holding the text (case-insensitive); `next_match`
and `previous_match` move to them, wrapping around.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from trainledger.engines.run_details import LOG_MAX_LINES
from trainledger.engines.safetext import clean


class RunLogView(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"run-log--match", "run-log--current"}
    DEFAULT_CSS = """
    RunLogView { height: 1fr; background: $surface; }
    RunLogView > .run-log--match { background: $warning 40%; }
    RunLogView > .run-log--current { background: $accent; color: $text; text-style: bold; }
    """

    def __init__(self, *, max_lines: int = LOG_MAX_LINES, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: list[str] = []
        self.dropped = 0  # lines dropped from the top to stay within max_lines
        self.search_text = ""
        self.matches: list[int] = []  # line indexes holding the query
        self.current: int | None = None  # index into matches
        self.follow = True
        self._width = 0

    # ------------------------------------------------------------------ content
    def clear(self) -> None:
        self.lines, self.dropped, self._width = [], 0, 0
        self.matches, self.current = [], None
        self._resize()

    def append(self, raw: Iterable[str]) -> None:
        """Add lines at the end (cleaned here); keeps following if the view was at its end."""
        new = [clean(line) for line in raw]
        if not new:
            return
        start = len(self.lines)
        self.lines.extend(new)
        self._width = max(self._width, *(cell_len(s) for s in new))
        over = len(self.lines) - self.max_lines
        if over > 0:
            del self.lines[:over]
            self.dropped += over
            start -= over
            self.matches = [i - over for i in self.matches if i >= over]
            if self.current is not None and self.current >= len(self.matches):
                self.current = len(self.matches) - 1 if self.matches else None
        if self.search_text:
            q = self.search_text.lower()
            self.matches.extend(i for i in range(max(0, start), len(self.lines)) if q in self.lines[i].lower())
        self._resize()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
            self.call_after_refresh(self._stick)  # again once the layout knows the new size
        self.refresh()

    def _stick(self) -> None:
        if self.follow and not self.is_vertical_scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def _resize(self) -> None:
        self.virtual_size = Size(self._width, len(self.lines))

    # ------------------------------------------------------------------ search
    def search(self, query: str) -> int:
        """Mark every line holding `query`; moves to the first at or below the top line. The count."""
        self.search_text = query
        q = query.lower()
        self.matches = [i for i, line in enumerate(self.lines) if q and q in line.lower()]
        self.current = None
        if self.matches:
            top = int(self.scroll_y)
            after = [k for k, i in enumerate(self.matches) if i >= top]
            self._go(after[0] if after else 0)
        self.refresh()
        return len(self.matches)

    def next_match(self, delta: int = 1) -> int | None:
        """Move to the next (delta 1) or previous (-1) match, wrapping; the line index."""
        if not self.matches:
            return None
        k = 0 if self.current is None else (self.current + delta) % len(self.matches)
        self._go(k)
        return self.matches[k]

    def previous_match(self) -> int | None:
        return self.next_match(-1)

    def _go(self, k: int) -> None:
        self.current = k
        line = self.matches[k]
        self.follow = False
        height = max(1, self.scrollable_content_region.height)
        if not (self.scroll_y <= line < self.scroll_y + height):
            self.scroll_to(y=max(0, line - height // 3), animate=False, immediate=True)
        self.refresh()

    @property
    def current_line(self) -> int | None:
        return None if self.current is None else self.matches[self.current]

    def follow_end(self) -> None:
        self.follow = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new < old and not self.is_vertical_scroll_end:
            self.follow = False  # the user scrolled up: stop following until back at the end
        elif self.is_vertical_scroll_end:
            self.follow = True

    # ------------------------------------------------------------------ drawing
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if index >= len(self.lines):
            return Strip.blank(width, base)
        line = self.lines[index]
        text = Text(line, no_wrap=True, end="")
        if self.search_text and index in self._match_set():
            current = self.current_line == index
            style: Style = self.get_component_rich_style("run-log--current" if current else "run-log--match")
            q, low, at = self.search_text.lower(), line.lower(), 0
            while (at := low.find(q, at)) >= 0:
                text.stylize(style, at, at + len(q))
                at += len(q) or 1
            if current:
                text.stylize(Style(bold=True))
        strip = Strip(text.render(self.app.console), cell_len(line))
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_style(base)

    def _match_set(self) -> set[int]:
        key = (id(self.matches), len(self.matches))
        if getattr(self, "_set_key", None) != key:
            self._set_key = key
            self._set = set(self.matches)
        return self._set

    def visible_text(self) -> str:
        """The lines on screen now, as text (tests and the screen's status read it)."""
        top = int(self.scroll_y)
        return "\n".join(self.lines[top : top + max(1, self.size.height)])
