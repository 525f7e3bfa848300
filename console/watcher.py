"""The one watchfiles watcher over the workspace, turned into typed messages.

watchfiles' default debounce (1.6 s) is ten times too slow for a live chart: we
group changes for at most DEBOUNCE_MS and yield as soon as STEP_MS pass quietly.
Subscribers are widgets (or callables, in tests) and name the message types they want;
each change goes only to those, as a fresh copy. A subscriber or a batch that raises is
logged and said once, and the watching goes on: a dead watcher would freeze every pane.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Iterable, Union

from textual.widget import Widget
from watchfiles import Change, DefaultFilter, awatch

from trainledger.console.messages import (
    CaptureChanged,
    ChangeMessage,
    PortsChanged,
    RegistryChanged,
    ReportsChanged,
    RunFilesChanged,
    RunsChanged,
)
from trainledger.engines.workspace import REGISTRY, RUNS, STATE_DIR, WorkspaceChange, classify_change

DEBOUNCE_MS = 50
STEP_MS = 10
RETRY_S = 1.0  # after the watch itself failed (inotify limits, a vanished root)

log = logging.getLogger("trainledger.console.watcher")
Subscriber = Union[Widget, Callable[[ChangeMessage], object]]


class _Filter(DefaultFilter):
    def __init__(self) -> None:
        super().__init__(ignore_dirs=(*DefaultFilter.ignore_dirs, STATE_DIR))

    def __call__(self, change: Change, path: str) -> bool:
        return not path.endswith(".tmp") and super().__call__(change, path)


def messages_for(changes: Iterable[WorkspaceChange]) -> list[ChangeMessage]:
    """Collapse one batch of classified changes into the fewest messages."""
    per_run: dict[str, set[str]] = defaultdict(set)
    out: list[ChangeMessage] = []
    flags: set[str] = set()
    models: set[str | None] = set()
    for change in changes:
        if change.kind in ("metrics", "events", "run") and change.run_id:
            per_run[change.run_id].add(change.kind)
        elif change.kind == "registry":
            models.add(change.name)
        else:
            flags.add(change.kind)
    if "runs" in flags:
        out.append(RunsChanged())
    for run_id, kinds in sorted(per_run.items()):
        out.append(RunFilesChanged(run_id, frozenset(kinds)))
    if "capture" in flags:
        out.append(CaptureChanged())
    for model in sorted(models, key=lambda m: (m is None, m or "")):
        out.append(RegistryChanged(model))
    if "ports" in flags:
        out.append(PortsChanged())
    return out


def report_messages(root: Path, paths: Iterable[str]) -> list[ChangeMessage]:
    """A stored report written (runs/<id>/report.json, registry/reports/<model>/<version>.json):
    one ReportsChanged per subject. The workspace's own classification ignores these files."""
    subjects: set[str] = set()
    for path in paths:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            continue
        if len(parts) == 3 and parts[0] == RUNS and parts[2] == "report.json":
            subjects.add(parts[1])
        elif len(parts) == 4 and parts[:2] == (REGISTRY, "reports") and parts[3].endswith(".json"):
            subjects.add(f"{parts[2]}@{parts[3][: -len('.json')]}")
    return [ReportsChanged(s) for s in sorted(subjects)]


class WorkspaceWatcher:
    """Watch `root` and post each change to the subscribers of its message type."""

    def __init__(self, root: Path, on_error: Callable[[str], object] | None = None) -> None:
        self.root = root
        self.on_error = on_error  # told once, the first time something fails
        self.errors = 0
        self._subscribers: list[tuple[Subscriber, tuple[type[ChangeMessage], ...]]] = []
        self._stop = asyncio.Event()

    def subscribe(self, target: Subscriber, *types: type[ChangeMessage]) -> None:
        """Deliver messages of `types` (every change message if none) to `target`."""
        wanted = types or (ChangeMessage,)
        for i, (known, _) in enumerate(self._subscribers):
            if known is target:
                self._subscribers[i] = (target, wanted)
                return
        self._subscribers.append((target, wanted))

    def unsubscribe(self, target: Subscriber) -> None:
        """Deliver nothing more to `target` (a screen that closed)."""
        self._subscribers = [(t, w) for t, w in self._subscribers if t is not target]

    def stop(self) -> None:
        self._stop.set()

    def dispatch(self, messages: Iterable[ChangeMessage]) -> None:
        """Each message to the subscribers of its type, a fresh copy each."""
        for message in messages:
            for target, wanted in self._subscribers:
                if not isinstance(message, wanted):
                    continue
                try:
                    if isinstance(target, Widget):
                        target.post_message(message.copy())
                    else:
                        target(message.copy())
                except Exception as exc:  # noqa: BLE001 - one subscriber must not stop the rest
                    self._failed(f"delivering {type(message).__name__} to {target!r}", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        log.exception("watcher: %s failed", what, exc_info=exc)
        if self.errors == 1 and self.on_error is not None:
            self.on_error(f"{what} failed ({type(exc).__name__}: {exc}); still watching")

    async def run(self) -> None:
        """Watch until stopped; meant to run as an async Textual worker. Never dies of an error."""
        while not self._stop.is_set():
            try:
                async for batch in awatch(
                    self.root,
                    watch_filter=_Filter(),
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=self._stop,
                    rust_timeout=500,
                    recursive=True,
                ):
                    try:
                        changes = [c for _, p in batch if (c := classify_change(self.root, p))]
                        self.dispatch(messages_for(changes))
                        self.dispatch(report_messages(self.root, (p for _, p in batch)))
                    except Exception as exc:  # noqa: BLE001 - the next batch may be fine
                        self._failed("handling a batch of changes", exc)
                return  # awatch ends only when stopped
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - watch again after a pause
                self._failed(f"watching {self.root}", exc)
                try:
                    await asyncio.wait_for(self._stop.wait(), RETRY_S)
                except TimeoutError:
                    pass
