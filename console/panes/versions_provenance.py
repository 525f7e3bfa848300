"""The Versions pane's provenance: each version's stored report verified, its marker, and the
promote that must be typed past stale or contradicted claims or failing checks.

A mixin of VersionsPane. After each registry read (and when a report file is written) one
thread worker looks for registry/reports/<model>/<version>.json of every version, the chosen
one first, and verifies the ones it finds (console/provenance.py, torch-free); results come
back in batches and relabel only the lines that changed. A newer read cancels the older
worker. `P` verifies the target afresh before it asks: a version whose claims are stale or
contradicted, or whose stored checks fail, must be typed to be promoted, the confirmation
says which claims and checks, and the audit entry records them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.worker import get_current_worker

from trainledger.console import provenance
from trainledger.console.messages import ReportsChanged
from trainledger.console.provenance import Assessment
from trainledger.console.screens.confirm import Confirmation
from trainledger.console.styles import theme_style
from trainledger.console.widgets import report_render

if TYPE_CHECKING:
    from trainledger.console.panes.versions import VersionsPane

    _Base = VersionsPane
else:
    _Base = object

Key = tuple[str, str | None]
BATCH_S = 0.2  # results are posted at least this often while a worker goes through the versions


class Assessed(Message):
    """Verdicts on some versions' stored reports; `fresh` answers one asked for by a promote."""

    def __init__(self, results: dict[Key, Assessment], fresh: bool = False) -> None:
        super().__init__()
        self.results, self.fresh = results, fresh


def provenance_ask(ask: Confirmation, version: str, a: Assessment) -> Confirmation:
    """The promote confirmation, typed to be confirmed and saying why, when `a` stands against it."""
    lines = a.why()
    if not lines:
        return ask
    said = "\n".join(["provenance: the stored report says this should not go live unchecked", *lines])
    return replace(ask, type_to_confirm=version, details=f"{ask.details}\n{said}" if ask.details else said)


class VersionsProvenance(_Base):
    """Mixed into VersionsPane: the stored reports' verification of its versions."""

    provenance: dict[Key, Assessment]
    plook: report_render.Look

    def _init_provenance(self) -> None:
        self.provenance = {}
        self.plook = report_render.Look()
        self.assessed = 0  # batches answered (tests wait on it)
        self._prov_waiting: dict[Key, list[Callable[[Assessment], None]]] = {}

    def _provenance_look(self) -> report_render.Look:
        return report_render.look_from({v: theme_style(self.app, v) for v in ("success", "warning", "error")})

    def mark(self, key: Key) -> Any:
        return report_render.version_mark(self.provenance.get(key), self.plook, self.has_class("-wide"))

    def provenance_text(self, key: Key) -> Any:
        return report_render.version_section(self.provenance.get(key), self.plook, f"{key[0]}@{key[1]}")

    def request_assess(self) -> None:
        """Every version's report, the chosen one first (after each registry read)."""
        keys = [k for k in self.versions]
        first = self.cursor_key()
        if first in self.versions:
            keys.remove(first)
            keys.insert(0, first)  # type: ignore[arg-type]
        if keys:
            self._assess(keys)

    @work(thread=True, group="versions-provenance", exclusive=True, exit_on_error=False,
          description="verify the versions' stored reports")  # fmt: skip
    def _assess(self, keys: list[Key]) -> None:
        worker = get_current_worker()
        batch: dict[Key, Assessment] = {}
        posted = time.monotonic()
        try:
            for key in keys:
                if worker.is_cancelled:
                    return
                batch[key] = provenance.assess_version(self.workspace, key[0], key[1] or "")
                if time.monotonic() - posted > BATCH_S:
                    self.post_message(Assessed(batch))
                    batch, posted = {}, time.monotonic()
        finally:
            if not worker.is_cancelled:
                self.post_message(Assessed(batch))

    def assessed_then(self, key: Key, then: Callable[[Assessment], None]) -> None:
        """Verify `key`'s report now (its files may have changed since the last look), then `then`.
        A version known to have no report is taken as known: a report written since is seen by
        the watcher (ReportsChanged), which verifies it again."""
        known = self.provenance.get(key)
        if known is not None and known.report is None and known.error is None:
            then(known)
            return
        self._prov_waiting.setdefault(key, []).append(then)
        if len(self._prov_waiting[key]) == 1:
            self._assess_one(key)

    @work(thread=True, group="versions-provenance-one", exit_on_error=False, description="verify a version's report")
    def _assess_one(self, key: Key) -> None:
        a = Assessment(f"{key[0]}@{key[1]}", error="not verified")
        try:
            a = provenance.assess_version(self.workspace, key[0], key[1] or "")
        finally:
            self.post_message(Assessed({key: a}, fresh=True))

    # (named handlers: this mixin is no MessagePump, so Textual would not collect @on here)
    def on_assessed(self, message: Assessed) -> None:
        self.assessed += 1
        wide = self.has_class("-wide")
        changes = []
        for key, a in message.results.items():
            before = self.provenance.get(key)
            self.provenance[key] = a
            node = self._lines.get(key)
            if node is not None and key in self.versions and (before is None or before.state != a.state):
                changes.append((node, self._label(key, wide)))
        self.set_labels(changes)
        if set(message.results) & {self.cursor_key()}:
            self._render_detail()
        if message.fresh:
            for key, a in message.results.items():
                for then in self._prov_waiting.pop(key, []):
                    then(a)

    def on_reports_changed(self, message: ReportsChanged) -> None:
        model, _, version = message.subject.partition("@")
        if version and (model, version) in self.versions:
            self.provenance.pop((model, version), None)  # known no more: verified again, in a worker
            self.assessed_then((model, version), lambda _: None)
