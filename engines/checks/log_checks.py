"""Checks read from a run's logs (metrics.jsonl, events.jsonl, run.json), no model loaded.

- loss_dominance (seed 003: InfoNCE's gradient 32x MSE's, two runs lost): the trainer logs
  each loss term's gradient norm as `balance/<term>/grad_norm` every `balance_every` steps
  and writes a `loss_dominance` event when one norm is `dominance_factor` x another's.
  Figure: the largest ratio between two terms' norms seen in either. Fails at >= the
  factor (`options["factor"]`, else run.json config.dominance_factor, else 10).
- schedule_smoothness (seed 002: "beta-annealing max jump 0.006: smooth", then a beta-B
  step 0 -> 0.212 with the LR halved in the same epoch and the loss 0.82 -> 10.03): the
  largest change of `beta` (any logged `beta*` value) and of `lr` between train rows at
  most one epoch apart. Fails when beta moves more than the larger of 0.1 and a quarter of
  the run's largest beta in one epoch, or lr more than a quarter of the run's peak lr
  (`options["beta_jump"]`, `options["lr_jump"]` set those fractions). A declared `phase`
  event at that epoch is named in the reason: a designed jump is still a jump.
- coverage_logged (seed 002: "99.4 % coverage" was 86 % once outputs were hashed): the last
  validation row carrying both `coverage/sampling` and `coverage/hash`. Fails when the
  sampling figure exceeds the hash-validated one by more than 1 percentage point
  (`options["coverage_gap"]`); the ternary VAE's gap is also given as duplicate operations.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from trainledger.engines.checks.base import CheckContext, CheckResult, check
from trainledger.engines.checks.files import FileProblem, RunLogs, number
from trainledger.engines.workspace import EVENTS_FILE, METRICS_FILE

DOMINANCE_FACTOR = 10.0  # loop_parts.LoopConfig.dominance_factor's default
BETA_JUMP_FLOOR = 0.1  # beta is a loss weight of order 0-1: 0.1 in one epoch is a step, not a ramp
JUMP_FRACTION = 0.25  # of the run's largest beta / peak lr, per epoch
COVERAGE_GAP = 1.0  # percentage points
TERNARY_OPS = 3**9  # engines/training/ternary_vae.N_OPS (that module imports torch)
BALANCE = "balance/"
GRAD_NORM = "/grad_norm"


def _logs(ctx: CheckContext) -> RunLogs | None:
    return RunLogs(ctx.ws, ctx.subject) if ctx.subject.run_dir is not None else None


def _fail_read(name: str, exc: Exception) -> CheckResult:
    return CheckResult(name, False, None, str(exc))


# ----------------------------------------------------------------------------- loss_dominance
def row_norms(row: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in row.items():
        if key.startswith(BALANCE) and key.endswith(GRAD_NORM):
            v = number(value)
            if v is not None and v >= 0:
                out[key[len(BALANCE) : -len(GRAD_NORM)]] = v
    return out


def ratio_of(big: float, small: float) -> float:
    return big / small if small > 0 else (math.inf if big > 0 else 1.0)


@check("loss_dominance")
def loss_dominance(ctx: CheckContext) -> CheckResult | None:
    """The largest gradient-norm ratio between two loss terms, against the run's dominance factor."""
    logs = _logs(ctx)
    if logs is None:
        return None
    name = "loss_dominance"
    config = ctx.subject.run.get("config") or {}
    factor = number(ctx.options.get("factor")) or number(config.get("dominance_factor")) or DOMINANCE_FACTOR
    worst: dict[str, Any] | None = None
    checks = 0
    try:
        for row in logs.metrics():
            norms = row_norms(row)
            if len(norms) < 2:
                continue
            checks += 1
            big = max(norms, key=norms.__getitem__)
            small = min(norms, key=norms.__getitem__)
            r = ratio_of(norms[big], norms[small])
            if worst is None or r > worst["ratio"]:
                worst = {"ratio": r, "dominant": big, "dominated": small, "step": row.get("step"), "from": "metrics"}
        events = logs.events("loss_dominance")
    except FileProblem as exc:
        return _fail_read(name, exc)
    for e in events:
        r = number(e.get("ratio"))
        r = math.inf if e.get("ratio") is None else r
        if r is None:
            continue
        if worst is None or r > worst["ratio"]:
            worst = {"ratio": r, "dominant": e.get("dominant"), "dominated": e.get("dominated"),
                     "step": e.get("step"), "from": "events"}  # fmt: skip
    ev = logs.evidence(METRICS_FILE, EVENTS_FILE)
    if worst is None:  # one loss term (only the LVMs have several), or balance_every=0
        if not (ctx.subject.kind or "").startswith("lvm-"):
            return None
        return CheckResult(name, None, None, "no balance/<term>/grad_norm rows or loss_dominance events "
                                             "(fewer than two loss terms, or balance_every=0)", {}, ev)  # fmt: skip
    infinite = math.isinf(worst["ratio"])
    shown = "infinitely" if infinite else f"{worst['ratio']:.3g}x"
    figure = {"ratio": None if infinite else worst["ratio"], "dominant": worst["dominant"],
              "dominated": worst["dominated"]}  # fmt: skip
    details = {**figure, "infinite": infinite, "step": worst["step"], "factor": factor, "balance_checks": checks,
               "dominance_events": len(events), "seen_in": worst["from"]}  # fmt: skip
    text = f"{worst['dominant']} gradient {shown} {worst['dominated']}'s at step {worst['step']}"
    if worst["ratio"] >= factor:
        return CheckResult(name, False, figure, f"{text}: >= the {factor:g}x dominance factor", details, ev)
    return CheckResult(name, True, figure, f"largest: {text}, under {factor:g}x over {checks} balance checks",
                       details, ev)  # fmt: skip


# ----------------------------------------------------------------------------- schedule_smoothness
def largest_jump(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """(jump, epoch, from, to): the largest change between two points at most 1 epoch apart.

    `points` are (epoch, value), sorted; two monotone deques keep the window's min and max.
    """
    lo: deque[int] = deque()
    hi: deque[int] = deque()
    best = (0.0, points[0][0] if points else 0.0, 0.0, 0.0)
    start = 0
    for j, (e, v) in enumerate(points):
        while points[start][0] < e - 1.0 - 1e-9:
            start += 1
        for dq in (lo, hi):
            while dq and dq[0] < start:
                dq.popleft()
        if lo and v - points[lo[0]][1] > best[0]:
            best = (v - points[lo[0]][1], e, points[lo[0]][1], v)
        if hi and points[hi[0]][1] - v > best[0]:
            best = (points[hi[0]][1] - v, e, points[hi[0]][1], v)
        while lo and points[lo[-1]][1] >= v:
            lo.pop()
        lo.append(j)
        while hi and points[hi[-1]][1] <= v:
            hi.pop()
        hi.append(j)
    return best


def schedule_series(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float, float]]] = {}
    for i, row in enumerate(rows):
        epoch = number(row.get("epoch"))
        if epoch is None:
            continue
        for key, value in row.items():
            if key == "lr" or key.startswith("beta"):
                v = number(value)
                if v is not None:
                    series.setdefault(key, []).append((epoch, number(row.get("step")) or i, v))
    return {k: [(e, v) for e, _, v in sorted(pts)] for k, pts in series.items()}


@check("schedule_smoothness")
def schedule_smoothness(ctx: CheckContext) -> CheckResult | None:
    """The largest jump of beta or lr within one epoch, against a quarter of its peak."""
    logs = _logs(ctx)
    if logs is None:
        return None
    name = "schedule_smoothness"
    try:
        series = schedule_series(logs.metrics())
        phases = logs.events("phase")
    except FileProblem as exc:
        return _fail_read(name, exc)
    ev = logs.evidence(METRICS_FILE, EVENTS_FILE)
    if not series:
        return CheckResult(name, None, None, "no train rows with lr or beta and an epoch", {}, ev)
    fraction = {"beta": number(ctx.options.get("beta_jump")) or JUMP_FRACTION,
                "lr": number(ctx.options.get("lr_jump")) or JUMP_FRACTION}  # fmt: skip
    figure: dict[str, float] = {}
    details: dict[str, Any] = {}
    failures: list[str] = []
    declared: list[str] = []
    for key, points in sorted(series.items()):
        jump, epoch, before, after = largest_jump(points)
        peak = max(abs(v) for _, v in points)
        if key == "lr":
            limit = fraction["lr"] * peak
            figure[key] = jump / peak if peak > 0 else 0.0
            shown = (f"lr {before:.3g} -> {after:.3g} ({figure[key]:.0%} of its peak {peak:.3g}; "
                     f"limit {fraction['lr']:.0%})")  # fmt: skip
        else:
            limit = max(BETA_JUMP_FLOOR, fraction["beta"] * peak)
            figure[key] = jump
            shown = f"{key} {before:.3g} -> {after:.3g} (jump {jump:.3g}; limit {limit:.3g})"
        near = [p for p in phases if (pe := number(p.get("epoch"))) is not None and abs(pe - epoch) <= 1.0]
        details[key] = {"jump": jump, "epoch": epoch, "from": before, "to": after, "peak": peak, "limit": limit,
                        "rows": len(points), "phase_event": near[0].get("message") if near else None}  # fmt: skip
        if jump > limit:
            failures.append(f"{shown} within one epoch, at epoch {epoch:.3g}")
            if near and near[0].get("message") not in declared:
                declared.append(str(near[0].get("message")))
    if failures:
        phase = f" (declared phase: {'; '.join(declared)})" if declared else ""
        return CheckResult(name, False, figure, "; ".join(failures) + phase, details, ev)
    said = ", ".join(f"{k} {details[k]['jump']:.3g} (limit {details[k]['limit']:.3g})" for k in sorted(details))
    return CheckResult(name, True, figure, f"largest change within one epoch: {said}", details, ev)


# ----------------------------------------------------------------------------- coverage_logged
@check("coverage_logged")
def coverage_logged(ctx: CheckContext) -> CheckResult | None:
    """The logged sampling coverage against the hash-validated coverage (seed 002's 99.4 % vs 86 %)."""
    logs = _logs(ctx)
    if logs is None:
        return None
    name = "coverage_logged"
    try:
        rows = [r for r in logs.metrics() if number(r.get("coverage/sampling")) is not None
                and number(r.get("coverage/hash")) is not None]  # fmt: skip
    except FileProblem as exc:
        return _fail_read(name, exc)
    if not rows:
        return None if ctx.subject.kind != "ternary-vae" else CheckResult(
            name, None, None, "no rows with both coverage/sampling and coverage/hash", {}, logs.evidence(METRICS_FILE))
    last = rows[-1]
    sampling, hashed = float(last["coverage/sampling"]), float(last["coverage/hash"])
    gap = sampling - hashed
    limit = number(ctx.options.get("coverage_gap")) or COVERAGE_GAP
    figure = {"sampling": sampling, "hash": hashed, "gap": gap}
    details: dict[str, Any] = {**figure, "step": last.get("step"), "epoch": last.get("epoch"), "limit": limit,
                               "largest_gap": max(float(r["coverage/sampling"]) - float(r["coverage/hash"])
                                                  for r in rows)}  # fmt: skip
    dup = ""
    if ctx.subject.kind == "ternary-vae":
        details["duplicates"] = round(gap / 100 * TERNARY_OPS)
        dup = f", ~{details['duplicates']:,} duplicate operations"
    text = (f"sampling {sampling:.2f} % vs hash-validated {hashed:.2f} % at step {last.get('step')} "
            f"(gap {gap:.2f} points{dup})")  # fmt: skip
    ok = gap <= limit
    return CheckResult(name, ok, figure, f"{text}; {'within' if ok else 'over'} {limit:g} points", details,
                       logs.evidence(METRICS_FILE))  # fmt: skip
