"""The column picker (`h` in Curves): config keys and metrics as run list columns.

As W&B's runs table: every config key of the listed runs (flattened, `optimizer.lr`) and
every metric they log can be a column; a metric column shows its best value where the
metric has a direction (↓ lower is better, ↑ higher) and its last value otherwise. The
screen only chooses: it dismisses with the chosen columns, in order, or None when
cancelled. Keys and metric names come from files, so they are shown as plain text.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, SelectionList, Static
from textual.widgets.selection_list import Selection

from trainledger.console.run_filter import Column
from trainledger.console.text import plain


def option_label(col: Column, directions: dict[str, str]) -> str:
    if col.kind == "config":
        return f"config  {col.key}"
    arrow = {"min": " (best ↓)", "max": " (best ↑)"}.get(directions.get(col.key, ""), " (last)")
    return f"metric  {col.key}{arrow}"


class ColumnsScreen(ModalScreen["list[Column] | None"]):
    """Space ticks a key, Enter applies, Esc cancels; typing in the box narrows the list."""

    DEFAULT_CSS = """
    ColumnsScreen { align: center middle; }
    ColumnsScreen > Vertical {
        width: 70; max-width: 96%; height: 80%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    ColumnsScreen #columns-title { text-style: bold; }
    ColumnsScreen #columns-hint { color: $text-muted; }
    ColumnsScreen SelectionList { height: 1fr; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "apply", "Apply columns", id="columns.apply", priority=True),
        Binding("escape", "cancel", "Cancel", id="columns.cancel"),
        Binding("ctrl+r", "clear", "No extra columns", id="columns.clear"),
    ]

    def __init__(self, available: Sequence[Column], chosen: Sequence[Column],
                 directions: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.available = list(dict.fromkeys([*chosen, *available]))
        self.chosen = list(chosen)  # in the order ticked
        self.directions = directions or {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Run list columns", id="columns-title", markup=False)
            yield Input(placeholder="type to narrow the keys", id="columns-find")
            yield SelectionList[str](id="columns-list")
            yield Static("space ticks · Enter applies · ctrl+r none · Esc cancels", id="columns-hint",
                         markup=False)  # fmt: skip

    def on_mount(self) -> None:
        self._fill("")
        self.query_one(SelectionList).focus()

    def _fill(self, find: str) -> None:
        box = self.query_one(SelectionList)
        box.clear_options()
        find = find.casefold()
        ticked = {c.id for c in self.chosen}
        for col in self.available:
            if find and find not in col.key.casefold():
                continue
            box.add_option(Selection(self._prompt(col, col.id in ticked), col.id, col.id in ticked, id=col.id))

    def _prompt(self, col: Column, ticked: bool) -> Text:
        # a ✓ in the text too: under NO_COLOR (or the mono theme) the list's own button looks
        # the same ticked or not, its state being a colour only
        return plain(("✓ " if ticked else "  ") + option_label(col, self.directions))

    @on(Input.Changed, "#columns-find")
    def _find(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#columns-find")
    def _find_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(SelectionList).focus()

    @on(SelectionList.SelectionToggled)
    def _toggled(self, event: SelectionList.SelectionToggled) -> None:
        col_id = event.selection.value
        col = next((c for c in self.available if c.id == col_id), None)
        if col is None:
            return
        if col in self.chosen:
            self.chosen.remove(col)
        else:
            self.chosen.append(col)
        self.query_one(SelectionList).replace_option_prompt(col_id, self._prompt(col, col in self.chosen))

    def toggle(self, col: Column) -> None:
        """Tick or untick `col` (what space on its row does)."""
        if col in self.chosen:
            self.chosen.remove(col)
        else:
            self.chosen.append(col)
        self._fill(self.query_one("#columns-find", Input).value)

    def action_apply(self) -> None:
        self.dismiss(list(self.chosen))

    def action_clear(self) -> None:
        self.chosen = []
        self._fill(self.query_one("#columns-find", Input).value)

    def action_cancel(self) -> None:
        self.dismiss(None)
