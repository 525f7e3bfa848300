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


class ChangeMessage(Message, bubble=False):
    """A workspace change from the watcher: immutable, and copied for each subscriber.

    A Textual message is handled once, so the watcher posts a fresh copy to every pane that
    subscribed to the message's type. The fields are the constructor's keyword arguments,
    which is all `copy` needs: a new change message with fields needs no copying code.
    """

    def __init_subclass__(cls, bubble: bool | None = False, **kwargs: Any) -> None:
        super().__init_subclass__(bubble=bubble, **kwargs)  # a change goes to its subscriber only

    def __init__(self, **fields: Any) -> None:
        super().__init__()
        object.__setattr__(self, "_fields", fields)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_fields", ()):
            raise AttributeError(f"{type(self).__name__}.{name} cannot be changed")
        super().__setattr__(name, value)

    def copy(self) -> ChangeMessage:
        return type(self)(**self._fields)


class RunFilesChanged(ChangeMessage):
    """metrics.jsonl, events.jsonl or run.json of one run changed on disk."""

    run_id: str
    kinds: frozenset[str]

    def __init__(self, run_id: str, kinds: frozenset[str]) -> None:
        super().__init__(run_id=run_id, kinds=kinds)


class RunsChanged(ChangeMessage):
    """A run folder appeared or disappeared."""


class CaptureChanged(ChangeMessage):
    """Something under san-training/ changed."""


class RegistryChanged(ChangeMessage):
    """Something under registry/ changed: `model` names the model folder (None: the top)."""

    model: str | None

    def __init__(self, model: str | None = None) -> None:
        super().__init__(model=model)


class ReportsChanged(ChangeMessage):
    """A stored report was written: `subject` is the run id or `MODEL@VERSION` it is about."""

    subject: str

    def __init__(self, subject: str) -> None:
        super().__init__(subject=subject)


class PortsChanged(ChangeMessage):
    """The ports file changed; `port` is the port it concerns when that is known."""

    port: int | None

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port=port)


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
        error: str | None = None,
    ) -> None:
        super().__init__()
        self.error = error  # why the read failed ("ValueError: ..."); the old snapshot stays
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

    def __init__(self, snapshot: Any, error: str | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot  # a CaptureSnapshot, or None when the scan failed
        self.error = error


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
