"""Typed messages that carry workspace changes and engine results to the panes.

The watcher posts the change messages; pane workers post the result messages. Panes
react to messages and read no file on the UI thread. Two sources are not files the
watcher can see change: the Curves pane reads the last `system.jsonl` row of each running
run every 2 s, and the Capture pane's poller asks the capture server's `/stats` once a
second (engines.capture.live.Poller); both read in thread workers.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from trainledger.engines.metrics.series import RunSeries, SeriesSnapshot
from trainledger.engines.metrics.view import MetricView
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
    """A worker read every run.json of the workspace; `pending` is being read already."""

    def __init__(self, runs: list[RunInfo], pending: str | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.pending = pending


class SeriesRefreshed(Message):
    """A worker read the new rows of one run; `snapshot` is safe to render."""

    def __init__(
        self,
        run_id: str,
        snapshot: SeriesSnapshot,
        new_rows: int,
        reset: bool,
        views: dict[tuple[Any, ...], MetricView | None] | None = None,
        series: RunSeries | None = None,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.snapshot = snapshot
        self.new_rows = new_rows
        self.reset = reset
        self.views = views or {}  # metric views computed in the worker, by memo key
        self.series = series  # a series read elsewhere (the prefetch) for the pane to adopt


class SystemSampled(Message):
    """A worker read the last system.jsonl row of running runs (run id -> row)."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.rows = rows


class CaptureScanned(Message):
    """A worker scanned san-training/ (engines.capture.sessions); `snapshot` is immutable."""

    def __init__(self, snapshot: Any) -> None:
        super().__init__()
        self.snapshot = snapshot  # a CaptureSnapshot


class CaptureServerPolled(Message):
    """The capture server's poller read its state file and, if it runs, its /stats.

    Carries an `engines.capture.live.ServerPoll`: `state`, typed `stats` and `available`
    (False while the server engine cannot be imported).
    """

    def __init__(self, poll: Any) -> None:
        super().__init__()
        self.poll = poll
        self.state = poll.state  # engines.capture.process.ServerState or None
        self.stats = poll.stats  # engines.capture.live.ServerStats or None
        self.available = poll.available
