"""What a pane is to the app: one entry in the app's list, and a small protocol.

The app names no pane class outside its one ordered list of `PaneEntry`: the tabs, their
number keys, the watcher's subscriptions, the help screen, the command palette, theme
changes and the headless summary all iterate it. A new pane is one module (a widget that
follows `Pane`) plus one entry in `TrainledgerApp.PANES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from textual.binding import Binding
from textual.widget import Widget

if TYPE_CHECKING:
    from trainledger.console.messages import ChangeMessage


@runtime_checkable
class Pane(Protocol):
    """The widget of a pane: the watcher's messages it wants, a restyle, a summary."""

    WANTS: tuple[type[ChangeMessage], ...]  # the change messages the watcher sends it

    def restyle(self) -> None:
        """The theme changed: redraw what holds colours baked in."""

    def summary(self) -> str:
        """Plain text of what it shows, for `--headless-seconds` (may be several lines)."""


@dataclass(frozen=True)
class PaneEntry:
    """One tab: its id, title, the widget class (its BINDINGS go to help and the palette),
    how to build it from the app, whether it mounts after the first paint, and the keys
    of screens it opens (listed in help under their own heading)."""

    id: str
    title: str
    widget: type[Widget]
    make: Callable[[Any], Widget]  # the app -> the pane's widget
    lazy: bool = False
    screens: tuple[tuple[str, Sequence[Binding]], ...] = field(default_factory=tuple)


def number_bindings(entries: Sequence[PaneEntry]) -> list[Binding]:
    """`1`…`9`: show the pane in that position."""
    return [
        Binding(str(i), f"show_pane('{e.id}')", e.title, id=f"app.pane.{e.id}", show=False)
        for i, e in enumerate(entries, 1)
        if i <= 9
    ]
