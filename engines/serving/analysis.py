"""The analysis loop of a port server: judge the canary (or a freshly promoted version during its
bake) window by window with the registry's policy, and decide abort, rollback, the next canary
step or the promotion at 100 %.

Pure bookkeeping, no I/O: the server feeds it what the registry says (`follow`) and its own
per-version tallies (`tick`, a few times a second) and carries out the Decision it returns
through the registry. Windows are cut every `window_s` of the model's policy (default 30 s);
the first failed window fails the verdict (policy.evaluate, Argo's failureLimit 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from trainledger.engines.registry.policy import Thresholds, Window, evaluate, judge
from trainledger.engines.registry.types import AuditEntry, ModelState, RegistryUsageError
from trainledger.engines.serving.metrics import Tally

BAKE_S = 600.0  # a promoted version is watched this long (the default bake period)
KEEP_WINDOWS = 20  # shown by /health


@dataclass(frozen=True)
class Decision:
    action: str  # "abort" | "rollback" | "step" | "promote"
    version: str
    reason: str
    figures: dict[str, Any] | None = None
    traffic: int | None = None  # "step": the next share
    plan: dict[str, Any] | None = None  # "step": the plan to keep


@dataclass
class Analysis:
    bake_s: float = BAKE_S
    subject: str | None = None  # "canary" | "bake" | None
    version: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    plan: dict[str, Any] | None = None
    step_at: float | None = None  # when the current canary step began
    bake_until: float | None = None
    windows: list[Window] = field(default_factory=list)
    shown: list[dict[str, Any]] = field(default_factory=list)
    policy_error: str | None = None
    _base: tuple[int, int, float] | None = None
    _window_start: float = 0.0
    _decided: set[tuple[str, str, int]] = field(default_factory=set)

    def follow(self, state: ModelState | None, entries: list[AuditEntry], now: float) -> None:
        """Pick what to watch from the registry's state and its newest audit entries (newest first)."""
        subject = version = None
        plan = step_at = bake_until = None
        if state is not None:
            try:
                self.thresholds = Thresholds.from_dict(state.policy or {})
                self.policy_error = None
            except RegistryUsageError as exc:  # a bad stored policy: judge by the defaults, say so
                self.thresholds, self.policy_error = Thresholds(), str(exc)
            if state.canary:
                subject, version = "canary", state.canary
                entry = next((e for e in entries if e.action == "canary"), None)
                if entry is not None and entry.to_version == state.canary:
                    step_at = entry.time
                    got = entry.details.get("plan") if isinstance(entry.details, dict) else None
                    plan = got if _plan_ok(got) else None
            elif state.active:
                moved = next((e for e in entries if e.action in ("promote", "rollback")), None)
                if (moved is not None and moved.action == "promote" and moved.to_version == state.active
                        and now < moved.time + self.bake_s):  # fmt: skip
                    subject, version, bake_until = "bake", state.active, moved.time + self.bake_s
        if (subject, version) != (self.subject, self.version):
            self.windows, self.shown, self._base = [], [], None
        self.subject, self.version, self.plan, self.step_at, self.bake_until = (
            subject, version, plan, step_at, bake_until)  # fmt: skip

    def drop(self) -> None:
        """Stop watching (after an abort or rollback was decided)."""
        self.subject = self.version = self.plan = self.step_at = self.bake_until = None
        self.windows, self._base = [], None

    def tick(self, now: float, tally_of: Callable[[str], Tally], rss: int | None) -> Decision | None:
        if self.subject is None or self.version is None:
            return None
        if self.subject == "bake" and self.bake_until is not None and now >= self.bake_until:
            self.drop()
            return None
        t = tally_of(self.version)
        if self._base is None:
            self._base, self._window_start = (t.requests, t.errors, t.latency_s), now
            return None
        decision = None
        if now - self._window_start >= self.thresholds.window_s:
            decision = self._cut(now, t, rss)
        if decision is None and self.subject == "canary":
            decision = self._step(now)
        return decision

    def _cut(self, now: float, t: Tally, rss: int | None) -> Decision | None:
        req0, err0, lat0 = self._base or (0, 0, 0.0)
        n, errors = t.requests - req0, t.errors - err0
        mean = (t.latency_s - lat0) * 1000.0 / n if n else None
        w = Window(self._window_start, now, n, errors, mean, rss)
        self._base, self._window_start = (t.requests, t.errors, t.latency_s), now
        self.windows.append(w)
        m = judge(self.thresholds, w)
        self.shown.append({"start": w.start, "end": w.end, "requests": n, "errors": errors,
                           "mean_latency_ms": mean, "memory_bytes": rss, "outcome": m.outcome,
                           "reason": m.reason})  # fmt: skip
        del self.shown[:-KEEP_WINDOWS]
        verdict = evaluate(self.thresholds, self.windows)
        if verdict.outcome != "fail" or self.version is None:
            return None
        figures = verdict.figures()
        figures["subject"] = self.subject
        what = "canary" if self.subject == "canary" else "bake after promote"
        reason = f"automatic ({what}): {verdict.reason}"  # names the threshold, the figure, the window, n
        action = "abort" if self.subject == "canary" else "rollback"
        decision = Decision(action, self.version, reason, figures)
        self.drop()
        return decision

    def _step(self, now: float) -> Decision | None:
        plan, version = self.plan, self.version
        if plan is None or self.step_at is None or version is None:
            return None
        if now < self.step_at + float(plan["interval_s"]):
            return None
        since = [w for w in self.windows if w.start >= self.step_at - 1e-6]
        verdict = evaluate(self.thresholds, since)
        if verdict.outcome != "pass":
            return None  # too little traffic yet: hold the step
        i = int(plan.get("step", 0)) + 1
        steps = plan["steps"]
        if i >= len(steps):
            return None  # the last step below 100 holds until an operator promotes
        key = (version, "step", i)
        if key in self._decided:
            return None  # asked already; the registry's next read moves the step on
        self._decided.add(key)
        traffic = int(steps[i])
        reason = (f"automatic canary step {i + 1} of {len(steps)}: {steps[i - 1]} % passed "
                  f"{len(since)} windows ({verdict.reason})")  # fmt: skip
        if traffic >= 100:
            return Decision("promote", version, reason.replace("canary step", "promotion at step"))
        return Decision("step", version, reason, traffic=traffic, plan={**plan, "step": i})

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subject": self.subject, "version": self.version,
                               "window_s": self.thresholds.window_s, "bake_until": self.bake_until,
                               "windows": list(self.shown)}  # fmt: skip
        if self.policy_error:
            out["policy_error"] = self.policy_error
        return out

    def describe_plan(self) -> dict[str, Any] | None:
        if self.plan is None or self.step_at is None:
            return None
        return {"steps": list(self.plan["steps"]), "interval_s": float(self.plan["interval_s"]),
                "step": int(self.plan.get("step", 0)), "next_at": self.step_at + float(self.plan["interval_s"])}


def _plan_ok(plan: Any) -> bool:
    if not isinstance(plan, dict):
        return False
    steps, interval, step = plan.get("steps"), plan.get("interval_s"), plan.get("step", 0)
    return (isinstance(steps, list) and bool(steps) and all(isinstance(s, int) and 1 <= s <= 100 for s in steps)
            and isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0
            and isinstance(step, int) and 0 <= step < len(steps))  # fmt: skip
