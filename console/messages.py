"""Typed messages that carry workspace changes and engine results to the panes.

The watcher posts the change messages; pane workers post the result messages. Panes
react to messages and never poll the disk themselves.
"""

from __future__ import annotations

from textual.message import Message

from trainledger.engines.metrics.series import SeriesSnapshot
from trainledger.engines.workspace import RunInfo


class RunFilesChanged(Message):
    """metrics.jsonl, events.jsonl or run.json of one run changed on disk."""

    def __init__(self, run_id: str, kinds: frozenset[str]) -> None:
        super().__init__()
        self.run_id = run_id
        self.kinds = kinds


class RunsChanged(Message):
    """A run folder appeared or disappeared."""


class CaptureChanged(Message):
    """Something under san-training/ changed."""


class RegistryChanged(Message):
    """Something under registry/ changed."""


class PortsChanged(Message):
    """The ports file changed."""


class RunsListed(Message):
    """A worker read every run.json of the workspace."""

    def __init__(self, runs: list[RunInfo]) -> None:
        super().__init__()
        self.runs = runs


class SeriesRefreshed(Message):
    """A worker read the new rows of one run; `snapshot` is safe to render."""

    def __init__(self, run_id: str, snapshot: SeriesSnapshot, new_rows: int, reset: bool) -> None:
        super().__init__()
        self.run_id = run_id
        self.snapshot = snapshot
        self.new_rows = new_rows
        self.reset = reset
