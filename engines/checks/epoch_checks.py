"""best_vs_deployed_epoch: is what is deployed the run's best? (seed 002: best epoch 6, deployed 106).

- The best epoch and its value: run.json `summary.best`, else `checkpoints/best.json`, else
  the last `best` event, else the best validation row of metrics.jsonl (the primary metric
  in its direction; the earliest epoch wins a tie, as the trainer's bookkeeping does).
- The deployed epoch: a version's `epoch` (MODEL@VERSION), else the run's `last` checkpoint
  sidecar (`checkpoints/last.json`), which is what a run hands on when nothing picks the best.
- The deployed epoch's value: its validation row in metrics.jsonl (the last row carrying the
  primary metric at that epoch), else the version's recorded metrics.

Figure: {"best_epoch", "deployed_epoch"}. Passes when they are the same epoch, or when the
deployed value is within the tolerance of the best (`options["tol"]`, relative to |best|,
default 1 %). Fails when the deployed epoch's primary metric is worse than that. Skipped
when the deployed value cannot be found.
"""

from __future__ import annotations

from typing import Any

from trainledger.engines.checks.base import CheckContext, CheckResult, check
from trainledger.engines.checks.files import FileProblem, RunLogs, number, read_sidecar
from trainledger.engines.metrics.analysis import direction_for
from trainledger.engines.workspace import EVENTS_FILE, METRICS_FILE

NAME = "best_vs_deployed_epoch"
TOLERANCE = 0.01  # relative to |best value|


def _int(v: Any) -> int | None:
    f = number(v)
    return int(f) if f is not None and f == int(f) else None


def direction(run: dict[str, Any], metric: str) -> str:
    declared = {k: v.get("direction") for k, v in (run.get("metrics") or {}).items() if isinstance(v, dict)}
    return direction_for(metric, declared) or "min"


def val_rows(rows: list[dict[str, Any]], metric: str) -> dict[int, float]:
    """{integer epoch: the last value of `metric` logged at it}."""
    out: dict[int, float] = {}
    for row in rows:
        epoch, value = _int(row.get("epoch")), number(row.get(metric))
        if epoch is not None and value is not None:
            out[epoch] = value
    return out


def find_best(run: dict[str, Any], logs: RunLogs, metric: str, per_epoch: dict[int, float],
              sense: str) -> tuple[int | None, float | None, str]:  # fmt: skip
    best = (run.get("summary") or {}).get("best")
    if isinstance(best, dict) and _int(best.get("epoch")) is not None:
        return _int(best["epoch"]), number(best.get("value")), "run.json summary.best"
    side = read_sidecar(logs.run_dir / "checkpoints" / "best.json") if logs.run_dir else None
    if side and _int(side.get("epoch")) is not None:
        return _int(side["epoch"]), number((side.get("metrics") or {}).get(metric)), "checkpoints/best.json"
    events = logs.events("best")
    if events and _int(events[-1].get("epoch")) is not None:
        return _int(events[-1]["epoch"]), number(events[-1].get("value")), "events.jsonl best"
    candidates = [(e, v) for e, v in sorted(per_epoch.items()) if e > 0]
    if not candidates:
        return None, None, "none"
    pick = min(candidates, key=lambda ev: (ev[1] if sense == "min" else -ev[1], ev[0]))
    return pick[0], pick[1], "metrics.jsonl"


def deployed(ctx: CheckContext, logs: RunLogs) -> tuple[int | None, str]:
    version = ctx.subject.version
    if version is not None:
        return version.epoch, f"version {ctx.subject.label}"
    side = read_sidecar(logs.run_dir / "checkpoints" / "last.json") if logs.run_dir else None
    return (_int(side.get("epoch")) if side else None), "checkpoints/last.json"


@check(NAME)
def best_vs_deployed_epoch(ctx: CheckContext) -> CheckResult | None:
    """The run's best epoch against the deployed one, by the primary metric."""
    if ctx.subject.run_dir is None:
        return CheckResult(NAME, None, None, f"{ctx.subject.label} has no run folder to read the best epoch from")
    run = ctx.subject.run
    logs = RunLogs(ctx.ws, ctx.subject)
    metric = run.get("primary_metric") or ((run.get("summary") or {}).get("best") or {}).get("metric")
    if not isinstance(metric, str):
        return CheckResult(NAME, None, None, "run.json names no primary_metric")
    sense = direction(run, metric)
    try:
        per_epoch = val_rows(logs.metrics(), metric)
        best_epoch, best_value, best_from = find_best(run, logs, metric, per_epoch, sense)
    except FileProblem as exc:
        return CheckResult(NAME, False, None, str(exc))
    dep_epoch, dep_from = deployed(ctx, logs)
    ev = logs.evidence("run.json", METRICS_FILE, EVENTS_FILE, "checkpoints/best.json", "checkpoints/last.json")
    figure = {"best_epoch": best_epoch, "deployed_epoch": dep_epoch}
    details: dict[str, Any] = {**figure, "metric": metric, "direction": sense, "best_from": best_from,
                               "deployed_from": dep_from, "best_value": best_value}  # fmt: skip
    if best_epoch is None or dep_epoch is None:
        missing = "best" if best_epoch is None else "deployed"
        where = best_from if missing == "best" else dep_from
        return CheckResult(NAME, None, figure, f"no {missing} epoch recorded ({where})", details, ev)
    if best_epoch == dep_epoch:
        return CheckResult(NAME, True, figure, f"deployed epoch {dep_epoch} is the best by {metric}", details, ev)
    if best_value is None:
        best_value = per_epoch.get(best_epoch)
    dep_value = per_epoch.get(dep_epoch)
    if dep_value is None and ctx.subject.version is not None:
        dep_value = number(ctx.subject.version.metrics.get(metric))
    details.update(best_value=best_value, deployed_value=dep_value)
    if best_value is None or dep_value is None:
        return CheckResult(NAME, None, figure, f"best epoch {best_epoch}, deployed epoch {dep_epoch}: no {metric} "
                                               f"for {'the best' if best_value is None else 'the deployed'} epoch "
                                               f"to compare", details, ev)  # fmt: skip
    tol = number(ctx.options.get("tol"))
    tol = TOLERANCE if tol is None else tol
    worse_by = (dep_value - best_value) if sense == "min" else (best_value - dep_value)
    details.update(worse_by=worse_by, tolerance=tol)
    text = (f"deployed epoch {dep_epoch} ({metric} {dep_value:.4g}) vs best epoch {best_epoch} "
            f"({best_value:.4g})")  # fmt: skip
    if worse_by > tol * abs(best_value):
        return CheckResult(NAME, False, figure, f"{text}: worse by {worse_by:.4g}, over {tol:.0%}", details, ev)
    return CheckResult(NAME, True, figure, f"{text}: within {tol:.0%}", details, ev)

