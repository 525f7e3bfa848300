"""The one watchfiles watcher over the workspace, turned into typed messages.

watchfiles' default debounce (1.6 s) is ten times too slow for a live chart: we
group changes for at most DEBOUNCE_MS and yield as soon as STEP_MS pass quietly.
Subscribers are widgets; `post_message` is safe from any thread or task.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from textual.message import Message
from textual.widget import Widget
from watchfiles import Change, DefaultFilter, awatch

from trainledger.console.messages import (
    CaptureChanged,
    PortsChanged,
    RegistryChanged,
    RunFilesChanged,
    RunsChanged,
)
from trainledger.engines.workspace import STATE_DIR, WorkspaceChange, classify_change

DEBOUNCE_MS = 50
STEP_MS = 10


class _Filter(DefaultFilter):
    def __init__(self) -> None:
        super().__init__(ignore_dirs=(*DefaultFilter.ignore_dirs, STATE_DIR))

    def __call__(self, change: Change, path: str) -> bool:
        return not path.endswith(".tmp") and super().__call__(change, path)


def messages_for(changes: Iterable[WorkspaceChange]) -> list[Message]:
    """Collapse one batch of classified changes into the fewest messages."""
    per_run: dict[str, set[str]] = defaultdict(set)
    out: list[Message] = []
    flags: set[str] = set()
    for change in changes:
        if change.kind in ("metrics", "events", "run") and change.run_id:
            per_run[change.run_id].add(change.kind)
        else:
            flags.add(change.kind)
    if "runs" in flags:
        out.append(RunsChanged())
    for run_id, kinds in sorted(per_run.items()):
        out.append(RunFilesChanged(run_id, frozenset(kinds)))
    if "capture" in flags:
        out.append(CaptureChanged())
    if "registry" in flags:
        out.append(RegistryChanged())
    if "ports" in flags:
        out.append(PortsChanged())
    return out


class WorkspaceWatcher:
    """Watch `root` and post messages to every subscribed widget."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._subscribers: list[Widget] = []
        self._stop = asyncio.Event()

    def subscribe(self, widget: Widget) -> None:
        if widget not in self._subscribers:
            self._subscribers.append(widget)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Watch until stopped; meant to run as an async Textual worker."""
        async for batch in awatch(
            self.root,
            watch_filter=_Filter(),
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=self._stop,
            rust_timeout=500,
            recursive=True,
        ):
            changes = [c for _, p in batch if (c := classify_change(self.root, p))]
            for message in messages_for(changes):
                for widget in self._subscribers:
                    # A fresh message object per subscriber: a message is handled once.
                    widget.post_message(_copy(message))


def _copy(message: Message) -> Message:
    if isinstance(message, RunFilesChanged):
        return RunFilesChanged(message.run_id, message.kinds)
    return type(message)()
