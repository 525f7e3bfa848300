"""Asks what share of requests a canary gets, before the confirmation says what it changes.

`C` in the Versions pane opens it; it only reads a whole percent from 1 to 99 (the range
the registry takes) and says plainly what is wrong with anything else. The operation
itself runs in the pane's worker after the shared confirmation.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from trainledger.console.text import plain

DEFAULT_TRAFFIC = 10


def parse_traffic(text: str) -> int | str:
    """The percent typed, or why it is not one (1-99, a whole number)."""
    value = text.strip().rstrip("%").strip()
    try:
        n = int(value)
    except ValueError:
        return f"{value or 'nothing'} is not a whole percent"
    if not 1 <= n <= 99:
        return f"{n} %: a canary takes 1 to 99 % (promote gives it 100 %)"
    return n


class CanaryPrompt(ModalScreen[int | None]):
    """Dismisses with the percent, or None when cancelled."""

    DEFAULT_CSS = """
    CanaryPrompt { align: center middle; }
    CanaryPrompt > Vertical {
        width: 64; max-width: 96%; height: auto;
        border: round $warning; background: $surface; padding: 0 1;
    }
    CanaryPrompt #canary-title { text-style: bold; }
    CanaryPrompt #canary-input { margin-top: 1; }
    CanaryPrompt #canary-error { color: $error; text-style: bold; height: auto; }
    CanaryPrompt #canary-hint { color: $text-muted; margin-top: 1; }
    """
    AUTO_FOCUS = "#canary-input"  # what has the focus when it opens (not the first focusable)
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "cancel", "Cancel", id="canary.cancel")]

    def __init__(self, model: str, version: str, active: str | None, current: int = 0) -> None:
        super().__init__()
        self.model = model
        self.version = version
        self.active = active
        self.current = current  # the share it has now, when it is the canary already

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(plain(f"Canary {self.model} {self.version}: what share of requests?"), id="canary-title")
            yield Static(plain(f"{self.active or 'the active version'} keeps the rest. "
                               + (f"It has {self.current} % now." if self.current else "It has 0 % now.")))
            yield Input(str(self.current or DEFAULT_TRAFFIC), type="integer", id="canary-input",
                        placeholder="1-99")  # fmt: skip
            yield Static("", id="canary-error")
            yield Static("Enter: next (the confirmation says what moves) · Esc cancels", id="canary-hint",
                         markup=False)  # fmt: skip

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#canary-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        result = parse_traffic(event.value)
        if isinstance(result, str):
            self.query_one("#canary-error", Static).update(plain(result))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)
