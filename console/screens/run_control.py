"""Modal screens to start a training run and to confirm stopping one.

They only collect and check what the person typed; the Curves pane starts and signals
processes in thread workers (engines.runs), so these screens never touch a process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, OptionList, Select, Static

from trainledger.console.text import plain_lines
from trainledger.engines.runmeta import InvalidMeta, validate_name  # one rule however a run is named
from trainledger.engines.runs import BACKENDS
from trainledger.engines.training.cli_checks import BASE_MODELS
from trainledger.engines.training.models import MODELS
from trainledger.engines.workspace import RunInfo


@dataclass
class NewRunRequest:
    model: str
    data: str | None
    backend: str
    epochs: int
    settings: list[str] = field(default_factory=list)
    name: str | None = None
    lr: float | None = None
    batch_size: int | None = None
    base: str | None = None  # a run id (the form resolves a name) or a run folder


_FIELD_OF = {"name": "new-name", "epochs": "new-epochs", "lr": "new-lr", "batch size": "new-batch-size",
             "base": "new-base", "data": "new-data", "settings": "new-settings"}  # a problem's field
BASE_OF = {"lora-lm": "lm-base"}  # the model whose trained run each BASE_MODELS model builds on
_BASE_DONE = ("finished", "stopped")  # a stopped run has its last checkpoint


def check_name(name: str) -> str | None:
    """The problem with a run name, or None: runmeta's rule, the one `train --name` and a
    rename use too (an empty name is fine here: the field is optional)."""
    if not name:
        return None
    try:
        validate_name(name)
    except InvalidMeta as exc:
        return f"name: {exc}"
    return None


def check_lr(text: str) -> float | str | None:
    """The learning rate, None if empty, or the problem as a sentence."""
    if not text:
        return None
    try:
        lr = float(text)
    except ValueError:
        lr = math.nan
    if not math.isfinite(lr):
        return f"lr: {text} is not a number (e.g. 0.001)"
    if lr <= 0:
        return "lr: must be greater than 0 (e.g. 0.001)"
    return lr


def check_batch_size(text: str) -> int | str | None:
    if not text:
        return None
    try:
        n = int(text)
    except ValueError:
        return f"batch size: {text} is not a whole number"
    return n if n >= 1 else "batch size: at least 1"


def check_base(model: str, base: str, runs: Sequence[RunInfo]) -> str | None:
    """The run id (or run folder) `base` names for `model`; raise ValueError saying why not."""
    needed = BASE_OF.get(model)
    if model not in BASE_MODELS:
        if base:
            raise ValueError(f"base: {model} takes no base run (only {', '.join(BASE_MODELS)} does)")
        return None
    needed = needed or "base"
    if not base:
        done = [r.id for r in runs if r.model == needed and r.status in _BASE_DONE]
        which = (f"e.g. {', '.join(done[:3])}" if done
                 else f"no {needed} run in this workspace yet: train {needed} first")  # fmt: skip
        raise ValueError(f"base: {model} needs a base: the id or name of a trained {needed} run ({which})")
    found = [r for r in runs if r.id == base] or [r for r in runs if r.name == base]
    if len(found) > 1:
        ids = ", ".join(r.id for r in found)
        raise ValueError(f"base: {len(found)} runs are named {base} ({ids}); give its id")
    if not found:
        path = os.path.expanduser(base)
        if os.path.isfile(os.path.join(path, "run.json")):  # a run folder elsewhere
            return path
        raise ValueError(f"base: no run {base} in this workspace (give a run id or name)")
    run = found[0]
    if run.model != needed:
        raise ValueError(f"base: {run.id} is a {run.model or 'unknown'} run; {model} builds on an {needed} run")
    if run.status not in _BASE_DONE:
        raise ValueError(f"base: {run.id} is {run.status}, not finished; a base must have finished training")
    return run.id


def check_form(
    model: object,
    data: str,
    backend: object,
    epochs: str,
    settings: str,
    *,
    name: str = "",
    lr: str = "",
    batch_size: str = "",
    base: str = "",
    runs: Sequence[RunInfo] = (),
) -> NewRunRequest | str:
    """A NewRunRequest, or the first problem with the form as a sentence. `runs` are the
    workspace's runs, for the base."""
    if not isinstance(model, str) or model not in MODELS:
        return "choose a model"
    if not isinstance(backend, str) or backend not in BACKENDS:
        return "choose a backend"
    label = name.strip()
    if (problem := check_name(label)) is not None:
        return problem
    try:
        n = int(epochs.strip())
    except ValueError:
        return f"epochs: {epochs.strip() or 'nothing'} is not a whole number"
    if n < 1:
        return "epochs: at least 1"
    rate = check_lr(lr.strip())
    if isinstance(rate, str):
        return rate
    batch = check_batch_size(batch_size.strip())
    if isinstance(batch, str):
        return batch
    try:
        base_run = check_base(model, base.strip(), runs)
    except ValueError as exc:
        return str(exc)
    path = data.strip()
    if path and not os.path.exists(os.path.expanduser(path)):
        return f"data: {path} does not exist"
    items = settings.split()
    for item in items:
        if "=" not in item or item.startswith("="):
            return f"settings: {item!r} is not KEY=VALUE"
    return NewRunRequest(model, os.path.expanduser(path) if path else None, backend, n, items,
                         name=label or None, lr=rate, batch_size=batch, base=base_run)  # fmt: skip


class NewRunScreen(ModalScreen[NewRunRequest | None]):
    """The form behind `n`: model, backend, name, base, epochs, lr, batch size, data, settings.

    Each field is a compact widget in a box of its own with a line-drawn border (visible
    without colour) whose title is the field's name; the focused box turns heavy. Enter
    starts from any field; on a button it presses it, in an open list it picks the item."""

    DEFAULT_CSS = """
    NewRunScreen { align: center middle; }
    NewRunScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    NewRunScreen Grid { grid-size: 2; grid-columns: 1fr 1fr; grid-rows: 3; grid-gutter: 0 1; height: auto; }
    NewRunScreen .field {
        height: 3; border: round $border; border-title-color: $text-muted; padding: 0 1;
    }
    NewRunScreen .field:focus-within { border: heavy $primary; border-title-color: $text; }
    NewRunScreen .wide { column-span: 2; }
    NewRunScreen Button { margin: 0 2 0 0; }
    NewRunScreen #new-run-error { color: $error; height: auto; }
    NewRunScreen Horizontal { height: auto; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="new_run.cancel"),
        Binding("enter", "start", "Start", id="new_run.start", priority=True, show=False),
    ]

    def __init__(self, model: str | None = None, runs: Sequence[RunInfo] = ()) -> None:
        super().__init__()
        self.initial_model = model if model in MODELS else next(iter(MODELS))
        self.runs = list(runs)

    def compose(self) -> ComposeResult:
        def box(title: str, widget: Widget, wide: bool = False) -> Vertical:
            holder = Vertical(widget, classes="field wide" if wide else "field")
            holder.border_title = title
            return holder

        with Vertical():
            yield Static("New training run   (Enter starts from any field, Esc cancels)", markup=False)
            with Grid():
                yield box("model", Select([(m, m) for m in MODELS], value=self.initial_model, allow_blank=False,
                                          id="new-model", compact=True))  # fmt: skip
                yield box("backend", Select([(b, b) for b in BACKENDS], value="torch", allow_blank=False,
                                            id="new-backend", compact=True))  # fmt: skip
                yield box("name (optional)", Input(placeholder="a label for the run", id="new-name", compact=True))
                yield box(f"base ({', '.join(BASE_MODELS)} only)",
                          Input(placeholder="id or name of a trained lm-base run", id="new-base", compact=True))
                yield box("epochs", Input("10", id="new-epochs", type="integer", compact=True))
                yield box("lr (optional)", Input(placeholder="the model's default", id="new-lr", compact=True))
                yield box("batch size (optional)",
                          Input(placeholder="the model's default", id="new-batch-size", compact=True))
                yield box("data (optional)",
                          Input(placeholder="file or folder; else demo data", id="new-data", compact=True))
                yield box("settings (optional, KEY=VALUE ..., as --set)",
                          Input(placeholder="e.g. log_every=5 prior_samples=4096", id="new-settings", compact=True),
                          wide=True)  # fmt: skip
            yield Static("", id="new-run-error", markup=False)
            with Horizontal():
                yield Button("Start", variant="primary", id="new-start", compact=True)
                yield Button("Cancel", id="new-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#new-model", Select).focus()

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value

    def _submit(self) -> None:
        result = check_form(
            self.query_one("#new-model", Select).value,
            self._value("new-data"),
            self.query_one("#new-backend", Select).value,
            self._value("new-epochs"),
            self._value("new-settings"),
            name=self._value("new-name"),
            lr=self._value("new-lr"),
            batch_size=self._value("new-batch-size"),
            base=self._value("new-base"),
            runs=self.runs,
        )
        if isinstance(result, str):
            self.query_one("#new-run-error", Static).update(plain_lines(result))
            field_id = _FIELD_OF.get(result.split(":", 1)[0])
            if field_id is not None:
                self.query_one(f"#{field_id}").focus()  # the field to mend
            return
        self.dismiss(result)

    def action_start(self) -> None:
        if isinstance(self.focused, (Button, OptionList)):
            raise SkipAction()  # a button presses itself; an open Select list picks its item
        self._submit()

    @on(Button.Pressed, "#new-start")
    def _start_pressed(self) -> None:
        self._submit()

    @on(Button.Pressed, "#new-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
