"""The one confirmation screen: every action that changes what is live goes through it.

Stop a run, stop the capture server, and (next) promote, roll back, canary and abort a
model version all ask here. It says what the action is, what changes from and to, and
the details that decide it (checksums, checks, figures). The focus starts on Cancel, so
an Enter pressed by habit cancels (k9s' users asked for this after accidental deletes);
`y` confirms, `n` or Escape cancels. The most dangerous actions ask the user to type a
name first. Every text in it may come from data, so all of it is shown as plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from trainledger.console.text import notify_plain, plain, plain_lines


@dataclass(frozen=True)
class Confirmation:
    """What the screen asks. `change` is (from, to); `type_to_confirm` is a name to type."""

    title: str
    action: str  # the confirm button's label: "Stop the run"
    change: tuple[str, str] | None = None
    details: str = ""
    type_to_confirm: str | None = None
    cancel: str = "Cancel"


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True only when confirmed; every other way out is False."""

    # Textual focuses the first focusable widget after on_mount; with a type-to-confirm box that
    # is the Input, which would take the focus from Cancel. Name Cancel as the screen's own pick.
    AUTO_FOCUS = "#confirm-cancel"

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 76; max-width: 96%; height: auto; max-height: 96%;
        border: round $warning; background: $surface; padding: 0 1;
    }
    ConfirmScreen #confirm-title { text-style: bold; }
    ConfirmScreen #confirm-change { margin-top: 1; }
    ConfirmScreen #confirm-details { margin-top: 1; color: $text-muted; }
    ConfirmScreen #confirm-typed { margin-top: 1; }
    ConfirmScreen #confirm-hint { margin-top: 1; color: $text-muted; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 2; min-width: 12; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("y", "confirm", "Confirm", id="confirm.yes"),
        Binding("n,escape", "cancel", "Cancel", id="confirm.no"),
    ]

    def on_key(self, event: events.Key) -> None:
        """A name to type: what is typed goes to its box until it reads the name, wherever the
        focus is (it starts on Cancel), so the `n` or `2` of `run-0296` neither cancels nor
        switches panes. Once the name is typed, `y` on a button confirms as usual."""
        if self.ask.type_to_confirm is None or not event.is_printable or event.character is None:
            return
        box = self.query_one("#confirm-typed", Input)
        if self.focused is box or self.typed_ok:
            return
        event.stop()
        event.prevent_default()
        box.focus()
        box.insert_text_at_cursor(event.character)

    def __init__(self, ask: Confirmation) -> None:
        super().__init__()
        self.ask = ask

    def compose(self) -> ComposeResult:
        ask = self.ask
        with Vertical():
            yield Static(plain(ask.title), id="confirm-title")
            if ask.change is not None:
                before, after = ask.change
                yield Static(plain(f"{before}  →  {after}"), id="confirm-change")
            if ask.details:
                yield Static(plain_lines(ask.details), id="confirm-details")
            if ask.type_to_confirm is not None:
                yield Input(placeholder=f"type {ask.type_to_confirm} to confirm", id="confirm-typed",
                            select_on_focus=False)  # a key that moves the focus here adds, never replaces
            hint = "y confirms · n or Esc cancels · Enter presses the button in focus"
            if ask.type_to_confirm is not None:
                hint = "type the name, then Tab and y (or Enter on the button) · Esc cancels"
            yield Static(hint, id="confirm-hint", markup=False)
            with Horizontal():
                yield Button(plain(ask.cancel), id="confirm-cancel", variant="default")
                yield Button(plain(ask.action), id="confirm-ok", variant="error",
                             disabled=ask.type_to_confirm is not None)  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()  # the less destructive action wins

    @property
    def typed_ok(self) -> bool:
        name = self.ask.type_to_confirm
        return name is None or self.query_one("#confirm-typed", Input).value == name

    @on(Input.Changed, "#confirm-typed")
    def _typed(self, _: Input.Changed) -> None:
        self.query_one("#confirm-ok", Button).disabled = not self.typed_ok

    @on(Input.Submitted, "#confirm-typed")
    def _typed_enter(self, event: Input.Submitted) -> None:
        event.stop()  # Enter in the box never confirms: the button must be chosen

    @on(Button.Pressed, "#confirm-ok")
    def _ok(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#confirm-cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def action_confirm(self) -> None:
        if self.typed_ok:
            self.dismiss(True)
        else:
            notify_plain(self, f"type {self.ask.type_to_confirm} first", title=self.ask.title,
                         severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(False)
