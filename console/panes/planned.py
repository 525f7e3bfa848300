"""A pane whose engine has not landed yet: an honest empty state (the Ports pane was one until
issue 12; console/panes/ports.py is the real one now).

Each pane says what it will show, which folder of the workspace feeds it, what is
there now (counted live through the watcher), and which command will fill it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static

from trainledger.console.messages import ChangeMessage, PortsChanged, RegistryChanged
from trainledger.console.text import clean


@dataclass(frozen=True)
class PaneSpec:
    title: str
    shows: str
    source: str  # relative to the workspace
    command: str
    note: str
    wants: tuple[type[ChangeMessage], ...] = ()  # the watcher's messages that change the count


VERSIONS = PaneSpec(
    "Versions",
    "each model's versions: active, canary and its traffic %, history, checksums, rollback targets",
    "registry",
    "trainledger registry deploy",
    "The registry engine is not part of this release yet.",
    (RegistryChanged,),
)



def count_entries(path: Path) -> int:
    """Files under a folder (one level), or ports listed in the ports file."""
    if path.is_file():
        try:
            import msgspec

            from trainledger.engines.safeio import read_regular

            data = msgspec.json.decode(read_regular(path, 16 << 20))  # a FIFO never blocks
            return len(data.get("ports", [])) if isinstance(data, dict) else 0
        except Exception:
            return 0
    try:
        return sum(1 for e in os.scandir(path) if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


class PlannedPane(Widget):
    WANTS: tuple[type[ChangeMessage], ...] = ()  # set per instance from its spec
    DEFAULT_CSS = """
    PlannedPane { height: 1fr; align: center middle; }
    PlannedPane Static.empty-state { width: auto; max-width: 76; height: auto; }
    """

    def __init__(self, spec: PaneSpec, root: Path, location: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.spec = spec
        self.WANTS = spec.wants  # per instance: Versions and Ports want different changes
        self.root = root
        self.location = location
        self.count = 0

    def compose(self) -> ComposeResult:
        yield Static(self._text(), classes="empty-state")

    def restyle(self) -> None:
        """Nothing holds theme colours baked in: the TCSS restyles it."""

    def summary(self) -> str:
        return f"{self.spec.title.lower()}: {self.count} {'entry' if self.count == 1 else 'entries'} (planned)"

    def on_mount(self) -> None:
        self.recount()

    def _text(self) -> Text:
        s = self.spec
        t = Text()
        t.append(f"{s.title}\n", style="bold")
        t.append(f"Shows {s.shows}.\n\n")
        t.append("Fed by  ", style="dim")
        t.append(clean(f"{self.location}/{s.source}") + "\n")
        t.append("Now     ", style="dim")
        t.append(f"{self.count} {'entries' if self.count != 1 else 'entry'}\n")
        t.append("Fill it ", style="dim")
        t.append(s.command, style="bold")
        t.append("  (not available yet)\n\n", style="dim")
        t.append(s.note, style="dim")
        return t

    def recount(self) -> None:
        path = self.root / self.spec.source

        def work() -> None:
            n = count_entries(path)
            self.app.call_from_thread(self._set_count, n)

        self.run_worker(work, thread=True, group="count", exclusive=True, exit_on_error=False)

    def _set_count(self, n: int) -> None:
        self.count = n
        self.query_one(Static).update(self._text())

    @on(RegistryChanged)
    @on(PortsChanged)
    def _changed(self) -> None:
        self.recount()
