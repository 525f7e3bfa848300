"""The automatic-rollback policy: recorded serving figures in, pass, fail or inconclusive out.

A canary is rolled back by a machine only if the rule it follows can be read, tested and
quoted in the audit log. This module is that rule, as pure functions over frozen values: no
clock, no files, no serving. Seed 004's thresholds are the defaults (error rate > 15 %,
mean response time > 5,000 ms, memory > 6 GiB), judged per window with a minimum request
count; the verdict over a run of windows follows Argo Rollouts' analysis (`failureLimit`: fail
when more windows failed than that; `consecutiveErrorLimit`: fail when more measurements in a
row could not be taken). The serving code feeds it live windows; the tests feed it recorded
ones, and `Verdict.figures()` is what an automatic rollback stores as its evidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from trainledger.engines.registry.types import RegistryUsageError

GIB = 1024**3

# What a window is judged on, in the order a failure is reported when several fail at once.
THRESHOLD_NAMES: tuple[str, ...] = ("error_rate", "mean_latency_ms", "memory_bytes")

MeasurementOutcome = Literal["pass", "fail", "inconclusive", "error"]
VerdictOutcome = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Thresholds:
    """A model's rollback thresholds; the field names are the keys stored in the registry.

    A window fails when a figure is strictly above its limit (15.0 % exactly passes).
    `max_memory_gb` is in GiB (1024**3 bytes), as seed 004 measured it.
    """

    max_error_rate: float = 0.15  # a fraction, 0..1
    max_latency_ms: float = 5000.0  # mean response time over the window
    max_memory_gb: float = 6.0
    window_s: float = 30.0  # how long each window the feeder cuts is
    min_requests: int = 20  # fewer in a window: inconclusive
    failure_limit: int = 0  # Argo failureLimit: fail when failed windows > this
    consecutive_error_limit: int = 4  # Argo consecutiveErrorLimit: fail when errors in a row > this

    def __post_init__(self) -> None:
        self.validate()
        for f in fields(self):  # 5000 and 5000.0 are the same limit: stored as a float
            if f.name not in _INT_FIELDS:
                object.__setattr__(self, f.name, float(getattr(self, f.name)))

    @property
    def max_memory_bytes(self) -> int:
        """The memory limit in bytes (6 GiB: 6 * 1024**3)."""
        return int(self.max_memory_gb * GIB)

    @property
    def max_mean_latency_ms(self) -> float:
        """`max_latency_ms` under the name of the figure it bounds (a window's mean response time)."""
        return self.max_latency_ms

    def validate(self) -> None:
        """Raise RegistryUsageError naming the first bad field (wrong type, bool, negative, NaN)."""
        for f in fields(self):
            value = getattr(self, f.name)
            want_int = f.name in _INT_FIELDS
            if isinstance(value, bool) or not isinstance(value, int if want_int else (int, float)):
                kind = "a whole number" if want_int else "a number"
                raise RegistryUsageError(f"{f.name} must be {kind}, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise RegistryUsageError(f"{f.name} must be a finite number >= 0, not {value!r}")
        if self.max_error_rate > 1:
            raise RegistryUsageError(f"max_error_rate is a fraction from 0 to 1, not {self.max_error_rate!r}")
        if self.window_s == 0:
            raise RegistryUsageError("window_s must be above 0")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Thresholds:
        """Thresholds from a stored or typed-in dict: missing keys take the defaults."""
        if not isinstance(d, Mapping):
            raise RegistryUsageError(f"thresholds must be a mapping, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise RegistryUsageError(f"unknown threshold {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(d))


_INT_FIELDS = frozenset({"min_requests", "failure_limit", "consecutive_error_limit"})


@dataclass(frozen=True)
class Window:
    """The figures recorded over one window; `error` says why they could not be taken."""

    start: float
    end: float
    requests: int
    errors: int
    mean_latency_ms: float | None = None
    memory_bytes: int | None = None
    error: str | None = None

    @property
    def error_rate(self) -> float:
        """Failed requests over requests; 0 for a window without requests."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Measurement:
    """One window judged: for a fail, the first failing threshold with its observed value and limit."""

    outcome: MeasurementOutcome
    window: Window
    reason: str
    threshold: str | None = None
    observed: float | None = None
    limit: float | None = None
    failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The decision over a run of windows; `window` is the one that decided a fail."""

    outcome: VerdictOutcome
    reason: str
    measurements: tuple[Measurement, ...] = ()
    threshold: str | None = None  # a THRESHOLD_NAMES entry, or "consecutive_errors"
    observed: float | None = None
    limit: float | None = None
    window: Window | None = None
    failed_windows: int = 0
    consecutive_errors: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)  # what it was judged against

    def figures(self) -> dict[str, Any]:
        """A JSON-able account of the verdict, kept in the audit log of an automatic rollback."""
        w = self.window
        window = None if w is None else {
            "start": _number(w.start), "end": _number(w.end), "requests": _number(w.requests),
            "errors": _number(w.errors), "mean_latency_ms": _number(w.mean_latency_ms),
            "memory_bytes": _number(w.memory_bytes), "error": None if w.error is None else str(w.error),
        }  # fmt: skip
        return {
            "outcome": self.outcome, "reason": self.reason, "threshold": self.threshold,
            "observed": _number(self.observed), "limit": _number(self.limit), "window": window,
            "windows": len(self.measurements), "failed_windows": self.failed_windows,
            "consecutive_errors": self.consecutive_errors, "thresholds": self.thresholds.to_dict(),
        }  # fmt: skip


def _number(x: Any) -> float | int | None:
    """A figure as JSON: a finite int or float as is; NaN, infinities, bools and anything else as null."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x if math.isfinite(x) else None


def _bad_figures(w: Window) -> str | None:
    """Why a window's figures cannot be trusted (NaN, negative, more errors than requests), or None."""
    for name in ("start", "end", "mean_latency_ms"):
        value = getattr(w, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{name} is not a number: {value!r}"
        if value is not None and not math.isfinite(value):
            return f"{name} is {value}"
    for name in ("requests", "errors", "memory_bytes"):
        value = getattr(w, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name} is not a whole number: {value!r}"
    for name in ("requests", "errors", "mean_latency_ms", "memory_bytes"):
        value = getattr(w, name)
        if value is not None and value < 0:
            return f"{name} is negative: {value}"
    if w.end < w.start:
        return f"window ends ({w.end}) before it starts ({w.start})"
    if w.errors > w.requests:
        return f"{w.errors} errors out of {w.requests} requests"
    return None


def _over(w: Window) -> str:
    return f"over {w.duration_s:.3g} s ({w.requests} requests)"


def _describe(name: str, observed: float, limit: float) -> str:
    if name == "error_rate":
        return f"error rate {observed:.1%} > {limit:.1%}"
    if name == "mean_latency_ms":
        return f"mean response time {observed:g} ms > {limit:g} ms"
    return f"memory {observed / GIB:.2f} GiB > {limit / GIB:g} GiB"


def judge(thresholds: Thresholds, window: Window) -> Measurement:
    """One window against the thresholds. Figures that cannot be trusted are an error, never a pass."""
    if window.error is not None:
        return Measurement("error", window, f"could not be measured: {window.error}")
    bad = _bad_figures(window)
    if bad is not None:
        return Measurement("error", window, f"bad figures: {bad}")
    if window.requests < thresholds.min_requests:
        return Measurement("inconclusive", window, f"only {window.requests} requests in the window "
                                                   f"(needs {thresholds.min_requests})")  # fmt: skip
    checks: list[tuple[str, float | None, float]] = [
        ("error_rate", window.error_rate, thresholds.max_error_rate),
        ("mean_latency_ms", window.mean_latency_ms, thresholds.max_latency_ms),
        ("memory_bytes", window.memory_bytes, thresholds.max_memory_bytes),
    ]
    failing = [(name, seen, limit) for name, seen, limit in checks if seen is not None and seen > limit]
    if failing:
        name, seen, limit = failing[0]
        assert seen is not None
        return Measurement("fail", window, f"{_describe(name, seen, limit)} {_over(window)}", name, seen, limit,
                           tuple(n for n, _, _ in failing))  # fmt: skip
    seen_parts = [f"error rate {window.error_rate:.1%}"]
    if window.mean_latency_ms is not None:
        seen_parts.append(f"mean {window.mean_latency_ms:g} ms")
    if window.memory_bytes is not None:
        seen_parts.append(f"memory {window.memory_bytes / GIB:.2f} GiB")
    return Measurement("pass", window, f"within thresholds {_over(window)}: {', '.join(seen_parts)}")


def evaluate(thresholds: Thresholds, windows: Iterable[Window]) -> Verdict:
    """Judge windows oldest first and stop at the first fail.

    Fail when the failed windows exceed `failure_limit` (the window that tipped it decides), or
    when the measurement errors in a row exceed `consecutive_error_limit`. A measurement that was
    taken (pass or fail) resets the error run, as in Argo; an inconclusive window neither counts
    nor resets it. Otherwise the verdict is "pass" when the last window that was not inconclusive
    passed (so at least one did), else "inconclusive".
    """
    judged: list[Measurement] = []
    failed = errors_in_row = 0
    last: Measurement | None = None  # the last measurement that was not inconclusive

    def verdict(outcome: VerdictOutcome, reason: str, **decided: Any) -> Verdict:
        return Verdict(outcome, reason, tuple(judged), failed_windows=failed, consecutive_errors=errors_in_row,
                       thresholds=thresholds, **decided)  # fmt: skip

    for window in windows:
        m = judge(thresholds, window)
        judged.append(m)
        if m.outcome == "inconclusive":
            continue
        last = m
        if m.outcome == "error":
            errors_in_row += 1
            if errors_in_row > thresholds.consecutive_error_limit:
                text = window.error if window.error is not None else m.reason
                reason = (f"the measurement could not be taken {errors_in_row} times in a row "
                          f"(consecutive error limit {thresholds.consecutive_error_limit}); last: {text}")  # fmt: skip
                return verdict("fail", reason, threshold="consecutive_errors", observed=errors_in_row,
                               limit=thresholds.consecutive_error_limit, window=window)  # fmt: skip
            continue
        errors_in_row = 0
        if m.outcome == "fail":
            failed += 1
            if failed > thresholds.failure_limit:
                tally = ("first failed window (failure limit 0)" if thresholds.failure_limit == 0
                         else f"{failed} failed windows > failure limit {thresholds.failure_limit}")  # fmt: skip
                return verdict("fail", f"{m.reason}; {tally}", threshold=m.threshold, observed=m.observed,
                               limit=m.limit, window=window)  # fmt: skip
    if not judged:
        return verdict("inconclusive", "no windows measured yet")
    if last is None:
        return verdict("inconclusive", f"no window with enough requests yet; last: {judged[-1].reason}")
    if last.outcome == "pass":
        return verdict("pass", f"last measured window: {last.reason}")
    if last.outcome == "error":
        return verdict("inconclusive", f"the last measurement could not be taken ({errors_in_row} in a row, "
                                       f"limit {thresholds.consecutive_error_limit}): {last.reason}")  # fmt: skip
    return verdict("inconclusive", f"the last measured window failed ({failed} failed, failure limit "
                                   f"{thresholds.failure_limit}): {last.reason}")  # fmt: skip
