"""The shape of a check's result, and the table of checks that `trainledger check` runs.

A check is a function `(ctx: CheckContext) -> CheckResult | None`, registered with `@check(
name, kinds=...)`: None means "does not apply to this subject" (left out of the output), a
result with `ok=None` means it applies but could not be run here (`reason` says why; not a
failure). Checks never raise for a bad file: a bad file is a failed check that says what was
seen (an exception escaping a check is reported by the runner as a failed check too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainledger.engines.provenance.subject import Subject
from trainledger.engines.workspace import Workspace


@dataclass(frozen=True)
class CheckResult:
    name: str  # the registered name ("non_flat_output", "field_preservation", ...)
    ok: bool | None  # True pass, False fail, None could not be run (skipped)
    figure: Any  # the number (or small object) the verdict rests on, JSON-able
    reason: str  # one line: the figure against its threshold, or why it was skipped
    details: dict[str, Any] = field(default_factory=dict)  # JSON-able; per-head figures, line numbers, ...
    evidence: tuple[str, ...] = ()  # files it read (workspace-relative where inside)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "figure": self.figure, "reason": self.reason,
                "details": self.details, "evidence": list(self.evidence)}  # fmt: skip

    @property
    def state(self) -> str:
        return "pass" if self.ok else "skipped" if self.ok is None else "fail"


@dataclass(frozen=True)
class CheckContext:
    ws: Workspace
    subject: Subject
    options: dict[str, Any] = field(default_factory=dict)  # from the CLI: artifact=, fields=, ...


CheckFn = Callable[[CheckContext], "CheckResult | None"]


@dataclass(frozen=True)
class Registered:
    name: str
    fn: CheckFn
    kinds: tuple[str, ...] | None  # None = every kind
    needs_torch: bool
    doc: str


CHECKS: dict[str, Registered] = {}


def check(name: str, *, kinds: tuple[str, ...] | None = None,
          needs_torch: bool = False) -> Callable[[CheckFn], CheckFn]:  # fmt: skip
    """Register a check. `needs_torch`: it loads the model (only the `check` CLI, never the console)."""

    def wrap(fn: CheckFn) -> CheckFn:
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        CHECKS[name] = Registered(name, fn, kinds, needs_torch, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return wrap
