"""The help screen: every key the console binds, generated from the bindings.

The rows for keys that belong to the widgets we use (a DataTable's cursor keys, the
filter box, the palette) are written by hand in WIDGET_KEYS: Textual does not list
them as bindings of ours, so those few rows must be kept true by hand.
"""

from __future__ import annotations

from typing import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# Keys that belong to widgets we use, listed so the help screen tells the whole truth.
WIDGET_KEYS = [
    ("Runs", "↑ ↓  j k", "move the run cursor (the chart follows)"),
    ("Runs", "PgUp PgDn  Home End", "page / first run / last run"),
    ("Runs", "/ (list focused)", "run filter: words in id/name/tags, model:X status:X tag:X, -term negates"),
    ("Run filter", "Enter / Esc", "keep the filter / go back to the filter before"),
    ("Metric filter", "/ (chart focused), m", "metric regex; Enter applies, empty clears, Esc closes"),
    ("Columns", "space", "tick or untick a config key or metric (Columns screen, `h`)"),
    ("Sessions", "↑ ↓", "move the session cursor (Capture pane)"),
    ("Ports", "↑ ↓", "move the port cursor (Ports pane)"),
    ("Anywhere", "ctrl+p", "command palette (every action, searchable)"),
]


def key_label(key: str) -> str:
    names = {
        "question_mark": "?",
        "slash": "/",
        "space": "space",
        "left_square_bracket": "[",
        "right_square_bracket": "]",
        "escape": "esc",
    }
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


def binding_rows(groups: Iterable[tuple[str, Iterable[Binding | tuple[str, str, str]]]]) -> list[tuple[str, str, str]]:
    rows = []
    for where, bindings in groups:
        for b in bindings:
            if isinstance(b, Binding):
                rows.append((where, key_label(b.key), b.description or b.action))
            else:
                rows.append((where, key_label(b[0]), b[2] if len(b) > 2 else b[1]))
    return rows


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close help", id="help.close"),
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(expand=True, box=None, show_edge=False, pad_edge=False)
        table.add_column("where", style="dim", no_wrap=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        last = None
        for where, key, does in [*self.rows, *WIDGET_KEYS]:
            table.add_row(Text(where if where != last else ""), Text(key), Text(does))
            last = where
        with VerticalScroll():
            yield Static(Text("trainledger — keys   (esc, ? or q closes)", style="bold"))
            yield Static(table)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
