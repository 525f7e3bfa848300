"""`H` in the Versions pane: a model's whole history, the audit log with what was live after each entry.

MLflow users have asked since 2019 which version was live when (mlflow#2169); lazygit's
reflog shows that an action you can see is one you dare take. This screen shows who did
what, when, from which version to which, why, and the active and canary versions each
entry left, newest first. It holds records the pane already read; it reads nothing itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from trainledger.console.widgets.versions_render import Look, history_text
from trainledger.engines.registry.types import AuditEntry, ModelState


class VersionHistory(ModalScreen[None]):
    DEFAULT_CSS = """
    VersionHistory { align: center middle; }
    VersionHistory > VerticalScroll {
        width: 96%; max-width: 150; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    VersionHistory #history-hint { color: $text-muted; }
    """
    AUTO_FOCUS = "VerticalScroll"  # what has the focus when it opens (not the first focusable)
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,H,q", "close", "Close history", id="history.close"),
    ]

    def __init__(self, model: ModelState, audit: Sequence[AuditEntry], look: Look) -> None:
        super().__init__()
        self.model = model
        self.audit = list(audit)
        self.look = look

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Esc, H or q closes · ↑ ↓ PgUp PgDn scroll", id="history-hint", markup=False)
            yield Static(history_text(self.model, self.audit, self.look), id="history-text")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
