"""The tags and note of one run (`T` in Curves), kept in the run folder's meta.json.

The screen only edits: it checks each tag as engines/runmeta.py will (1-40 characters, no
spaces, commas or control characters) and dismisses with (tags, note), or None when
cancelled; the pane writes meta.json in a thread worker. Tags and the note come from a
file and from the user, so they are shown as plain text.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static, TextArea

from trainledger.console.text import plain
from trainledger.engines.runmeta import InvalidMeta, validate_tag


def parse_tags(text: str) -> tuple[str, ...]:
    """`"best, lr-sweep  keep"` -> ("best", "lr-sweep", "keep"); raises InvalidMeta for a bad tag."""
    tags: list[str] = []
    for word in text.replace(",", " ").split():
        if validate_tag(word) not in tags:
            tags.append(word)
    return tuple(tags)


class RunTagsScreen(ModalScreen["tuple[tuple[str, ...], str] | None"]):
    """Tags (space or comma separated) and a note; ctrl+s or Save keeps them, Esc cancels."""

    DEFAULT_CSS = """
    RunTagsScreen { align: center middle; }
    RunTagsScreen > Vertical {
        width: 72; max-width: 96%; height: auto; max-height: 96%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    RunTagsScreen #tags-title { text-style: bold; }
    RunTagsScreen .tags-label { margin-top: 1; color: $text-muted; }
    RunTagsScreen #tags-note { height: 6; }
    RunTagsScreen #tags-error { color: $error; height: auto; }
    RunTagsScreen Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    RunTagsScreen Button { margin-left: 2; min-width: 10; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("ctrl+s", "save", "Save tags and note", id="tags.save"),
        Binding("escape", "cancel", "Cancel", id="tags.cancel"),
    ]

    def __init__(self, run_id: str, label: str, tags: Sequence[str], note: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.label = label
        self.tags = tuple(tags)
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            title = f"Tags and note of {self.label}" + (f" ({self.run_id})" if self.label != self.run_id else "")
            yield Static(plain(title), id="tags-title")
            yield Static("tags (space or comma separated)", classes="tags-label", markup=False)
            yield Input(" ".join(self.tags), placeholder="best lr-sweep", id="tags-input")
            yield Static("", id="tags-error", markup=False)
            yield Static("note", classes="tags-label", markup=False)
            yield TextArea(self.note, id="tags-note", soft_wrap=True, show_line_numbers=False)
            yield Static("Enter in the tags box or ctrl+s saves · Esc cancels", classes="tags-label",
                         markup=False)  # fmt: skip
            with Horizontal():
                yield Button("Cancel", id="tags-cancel", variant="default")
                yield Button("Save", id="tags-save", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#tags-input", Input).focus()

    def _parsed(self) -> tuple[str, ...] | None:
        try:
            tags = parse_tags(self.query_one("#tags-input", Input).value)
        except InvalidMeta as exc:
            self.query_one("#tags-error", Static).update(plain(str(exc)))
            return None
        self.query_one("#tags-error", Static).update("")
        return tags

    @on(Input.Changed, "#tags-input")
    def _typed(self, _: Input.Changed) -> None:
        self._parsed()  # the reason shows as soon as a tag is bad

    @on(Input.Submitted, "#tags-input")
    def _enter(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    @on(Button.Pressed, "#tags-save")
    def _save(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#tags-cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def action_save(self) -> None:
        tags = self._parsed()
        if tags is None:
            return
        self.dismiss((tags, self.query_one("#tags-note", TextArea).text))

    def action_cancel(self) -> None:
        self.dismiss(None)
