"""Claims recomputed from metrics.jsonl: best.<metric> and last.<metric> with their epoch and
step, epochs, best_epoch, and the logged figures seed 001 and 002 ask about (coverage.sampling,
coverage.hash for the ternary VAE; tokens.active, tokens.entropy_bits for the vocabulary).

The direction of a metric is run.json's declared one, else the name's (engines.metrics.
analysis.direction_for); a metric with neither has no best. Ties keep the earliest row, as
the trainer's bookkeeping does. Non-finite values (null, NaN) are never best or last.
"""

from __future__ import annotations

from typing import Any

from trainledger.engines.metrics.analysis import direction_for
from trainledger.engines.provenance.derive_files import Source, Unprovable, number
from trainledger.engines.provenance.model import Claim, Evidence
from trainledger.engines.workspace import METRICS_FILE

# vocabulary key -> the metric logged for it
LOGGED = {
    "coverage.sampling": "coverage/sampling",
    "coverage.hash": "coverage/hash",
    "tokens.active": "tokens/active",
    "tokens.entropy_bits": "tokens/entropy_bits",
}
_REPORTED_PREFIXES = ("val/", "coverage/", "tokens/", "latent/")


def declared(src: Source) -> dict[str, str]:
    metrics = src.run.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    return {k: v["direction"] for k, v in metrics.items()
            if isinstance(v, dict) and isinstance(v.get("direction"), str)}  # fmt: skip


def primary(src: Source) -> str:
    name = src.run.get("primary_metric")
    if not isinstance(name, str) or not name:
        raise Unprovable("run.json names no primary_metric")
    return name


def points(src: Source, metric: str) -> list[tuple[float, Any, Any]]:
    """(value, epoch, step) of every row carrying a finite `metric`, in file order."""
    out = []
    for row in src.metrics():
        value = number(row.get(metric))
        if value is not None:
            out.append((value, row.get("epoch"), row.get("step")))
    return out


def _where(epoch: Any, step: Any) -> str:
    e = number(epoch)
    s = number(step)
    parts = []
    if e is not None:
        parts.append(f"epoch {int(e) if e == int(e) else e:g}")
    if s is not None:
        parts.append(f"step {int(s) if s == int(s) else s:g}")
    return ", ".join(parts) or "no epoch or step"


def metrics_evidence(src: Source, how: str) -> Evidence:
    return src.evidence(src.need_run() / METRICS_FILE, how)


def best(src: Source, metric: str, key: str) -> tuple[Claim, Any]:
    """best.<metric>, and the epoch it was logged at."""
    direction = direction_for(metric, declared(src))
    if direction is None:
        raise Unprovable(f"{metric} has no direction (run.json declares none, its name says none): no best")
    pts = points(src, metric)
    if not pts:
        raise Unprovable(f"no finite {metric} in metrics.jsonl")
    pick = pts[0]
    for p in pts[1:]:
        if (p[0] < pick[0]) if direction == "min" else (p[0] > pick[0]):
            pick = p
    how = f"{direction} of {metric} over {len(pts)} rows of metrics.jsonl ({_where(pick[1], pick[2])})"
    return Claim(key, pick[0], (metrics_evidence(src, how),), label=f"best {metric}"), pick[1]


def last(src: Source, metric: str, key: str) -> Claim:
    pts = points(src, metric)
    if not pts:
        raise Unprovable(f"no finite {metric} in metrics.jsonl")
    value, epoch, step = pts[-1]
    how = f"last of {len(pts)} rows of metrics.jsonl carrying {metric} ({_where(epoch, step)})"
    return Claim(key, value, (metrics_evidence(src, how),), label=f"last {metric}")


def _int_epoch(value: Any) -> int | None:
    e = number(value)
    return int(e) if e is not None and e == int(e) and e >= 0 else None


def epochs(src: Source, key: str) -> Claim:
    name = primary(src)
    seen = [e for e in (_int_epoch(p[1]) for p in points(src, name)) if e is not None]
    if not seen:
        raise Unprovable(f"no validation row ({name}) with an epoch in metrics.jsonl")
    how = f"highest epoch of a row carrying {name} (the validation after each epoch) in metrics.jsonl"
    return Claim(key, max(seen), (metrics_evidence(src, how),), label="epochs trained")


def best_epoch(src: Source, key: str) -> Claim:
    name = primary(src)
    claim, epoch = best(src, name, key)
    value = _int_epoch(epoch)
    if value is None:
        raise Unprovable(f"the best {name} row of metrics.jsonl has no whole epoch")
    ev = claim.evidence[0]
    return Claim(key, value, (Evidence(ev.path, ev.sha256, f"epoch of the best primary metric: {ev.how}"),),
                 label="best epoch")  # fmt: skip


def logged(src: Source, key: str) -> Claim:
    """coverage.* / tokens.*: the logged figure at the deployed epoch (a version), else the last."""
    metric = LOGGED[key]
    pts = points(src, metric)
    if not pts:
        raise Unprovable(f"the run logs no {metric}")
    version = src.subject.version
    if version is not None and version.epoch is not None:
        at = [p for p in pts if _int_epoch(p[1]) == version.epoch]
        if not at:
            raise Unprovable(f"no {metric} row at the deployed epoch {version.epoch}")
        value, epoch, step = at[-1]
        how = f"{metric} of the row at the deployed epoch in metrics.jsonl ({_where(epoch, step)})"
    else:
        value, epoch, step = pts[-1]
        how = f"last {metric} in metrics.jsonl ({_where(epoch, step)})"
    if key == "tokens.active" and value == int(value):
        value = int(value)
    return Claim(key, value, (metrics_evidence(src, how),), label=key.replace(".", " "))


def reported_metrics(src: Source) -> list[str]:
    """The metrics a report lists best and last of: the primary one, train/loss, and every
    val/, coverage/, tokens/, latent/ metric with a direction, in the order first logged."""
    names: list[str] = []
    seen: set[str] = set()
    for row in src.metrics():
        for name, value in row.items():
            if name in seen or name in ("step", "epoch", "time") or number(value) is None:
                continue
            seen.add(name)
            names.append(name)
    try:
        first = primary(src)
    except Unprovable:
        first = None
    keep = [n for n in names if n == first or n == "train/loss" or n.startswith(_REPORTED_PREFIXES)]
    keep = [n for n in keep if direction_for(n, declared(src)) is not None or n == first]
    if first in keep:
        keep.remove(first)
        keep.insert(0, first)
    return keep
