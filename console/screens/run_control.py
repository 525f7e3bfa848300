"""Modal screens to start a training run and to confirm stopping one.

They only collect and check what the person typed; the Curves pane starts and signals
processes in thread workers (engines.runs), so these screens never touch a process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from trainledger.console.text import plain_lines
from trainledger.engines.runs import BACKENDS
from trainledger.engines.training.models import MODELS


@dataclass
class NewRunRequest:
    model: str
    data: str | None
    backend: str
    epochs: int
    settings: list[str] = field(default_factory=list)


def check_form(model: object, data: str, backend: object, epochs: str, settings: str) -> NewRunRequest | str:
    """A NewRunRequest, or the first problem with the form as a sentence."""
    if not isinstance(model, str) or model not in MODELS:
        return "choose a model"
    if not isinstance(backend, str) or backend not in BACKENDS:
        return "choose a backend"
    try:
        n = int(epochs.strip())
    except ValueError:
        return f"epochs: {epochs.strip() or 'nothing'} is not a whole number"
    if n < 1:
        return "epochs: at least 1"
    path = data.strip()
    if path and not os.path.exists(os.path.expanduser(path)):
        return f"data: {path} does not exist"
    items = settings.split()
    for item in items:
        if "=" not in item or item.startswith("="):
            return f"settings: {item!r} is not KEY=VALUE"
    return NewRunRequest(model, os.path.expanduser(path) if path else None, backend, n, items)


class NewRunScreen(ModalScreen[NewRunRequest | None]):
    """The form behind `n`: model, data, backend, epochs (and optional --set items)."""

    DEFAULT_CSS = """
    NewRunScreen { align: center middle; }
    NewRunScreen > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    NewRunScreen Label { margin: 1 0 0 0; color: $text-muted; }
    NewRunScreen Button { margin: 0 2 0 0; }
    NewRunScreen #new-run-error { color: $error; height: auto; }
    NewRunScreen Horizontal { height: auto; margin: 1 0 0 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="new_run.cancel")]

    def __init__(self, model: str | None = None) -> None:
        super().__init__()
        self.initial_model = model if model in MODELS else next(iter(MODELS))

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("New training run   (Enter starts, Esc cancels)", markup=False)
            yield Label("model")
            yield Select([(m, m) for m in MODELS], value=self.initial_model, allow_blank=False,
                         id="new-model", compact=True)  # fmt: skip
            yield Label("data (optional: without it the model generates its demo data)")
            yield Input(placeholder="path to a dataset file or folder", id="new-data", compact=True)
            yield Label("backend")
            yield Select([(b, b) for b in BACKENDS], value="torch", allow_blank=False, id="new-backend", compact=True)
            yield Label("epochs")
            yield Input("10", id="new-epochs", type="integer", compact=True)
            yield Label("settings (optional, KEY=VALUE separated by spaces, as --set)")
            yield Input(placeholder="e.g. log_every=5 prior_samples=4096", id="new-settings", compact=True)
            yield Static("", id="new-run-error", markup=False)
            with Horizontal():
                yield Button("Start", variant="primary", id="new-start", compact=True)
                yield Button("Cancel", id="new-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#new-model", Select).focus()

    def _submit(self) -> None:
        result = check_form(
            self.query_one("#new-model", Select).value,
            self.query_one("#new-data", Input).value,
            self.query_one("#new-backend", Select).value,
            self.query_one("#new-epochs", Input).value,
            self.query_one("#new-settings", Input).value,
        )
        if isinstance(result, str):
            self.query_one("#new-run-error", Static).update(plain_lines(result))
            return
        self.dismiss(result)

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#new-start")
    def _start_pressed(self) -> None:
        self._submit()

    @on(Button.Pressed, "#new-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
