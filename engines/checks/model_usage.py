"""How much of its capacity a model uses (needs_torch): vocabulary (seed 001), active_latent_dims (seed 002).

Both load the model a port serves (model_checks._load) and recompute the figure from its
outputs, so they check the model's files rather than what training logged (the logged figure,
where there is one, is put beside it in the details):
- vocabulary (`vocab`): every feature row of the data the run trained on (`--data` overrides)
  through the served quantizer; the tokens used of K and the entropy of their counts in bits
  against the log2 K ceiling. Seed 001's good vocabulary was 64/64 tokens at 5.67 of 6 bits;
  its broken one put everything on 1 token.
- active_latent_dims (`ternary-vae`): the posterior mean of every one of the 3^9 ternary
  operations; a dimension is active when its variance across them exceeds ACTIVE_VAR (0.01,
  as training counts it). Seed 002's collapse was variance 0.000 on every dimension.
"""

from __future__ import annotations

import math
from typing import Any

from trainledger.engines.checks.base import CheckContext, CheckResult, check
from trainledger.engines.checks.files import FileProblem, RunLogs, number
from trainledger.engines.checks.lvm_checks import data_path
from trainledger.engines.checks.model_checks import _load
from trainledger.engines.checks.model_load import rel

TOKENS_MIN_SHARE = 0.9  # fewer than 90 % of the K tokens in use fails
ENTROPY_MIN_SHARE = 0.75  # entropy below 75 % of log2 K fails (seed 001's 5.67 of 6 bits is 94.5 %)
LATENT_MIN_SHARE = 0.5  # fewer than half the latent dimensions active fails
ACTIVE_VAR = 0.01  # = engines/training/ternary_vae.ACTIVE_VAR (not imported: that module imports torch at once)
FEATURE_ROWS_MAX = 200_000  # rows of the data pushed through the quantizer (the first ones)
BATCH = 1024  # = serving.kinds.MAX_BATCH


def _logged(ctx: CheckContext, *keys: str) -> dict[str, float] | None:
    """The last metrics.jsonl row carrying all `keys`, those values only (None: no such row or no log)."""
    if ctx.subject.run_dir is None:
        return None
    try:
        rows = RunLogs(ctx.ws, ctx.subject).metrics()
    except FileProblem:
        return None
    for row in reversed(rows):
        values = {k: number(row.get(k)) for k in keys}
        if all(v is not None for v in values.values()):
            return {k: float(v) for k, v in values.items() if v is not None}
    return None


def entropy_bits(counts: list[int]) -> float:
    total = sum(counts)
    return -sum(n / total * math.log2(n / total) for n in counts if n) + 0.0 if total else 0.0


@check("vocabulary", kinds=("vocab",), needs_torch=True)
def vocabulary(ctx: CheckContext) -> CheckResult:
    """Tokens used of K and their entropy against log2 K, over the training data; fails under 90 % / 75 %.

    Every feature row of the run's data (at most FEATURE_ROWS_MAX, `--data` to name another
    file) through the served quantizer (its own normalisation); figure = {active, k,
    entropy_bits, ceiling_bits}. Fails when active < 0.9 K or entropy_bits < 0.75 log2 K.
    """
    name = "vocabulary"
    path = data_path(ctx)
    if path is None:
        return CheckResult(name, None, None, "no data to assign: the run records none (give --data)")
    loaded = _load(ctx, name)
    if isinstance(loaded, CheckResult):
        return loaded
    predictor, evidence = loaded
    from trainledger.engines.training.datasets import DatasetError
    from trainledger.engines.training.vocab import load

    try:
        features = load(path)
    except (DatasetError, OSError) as exc:
        return CheckResult(name, False, None, f"the data cannot be read: {exc}", {}, (*evidence, rel(ctx.ws, path)))
    evidence = [*evidence, rel(ctx.ws, path)]
    rows = features[:FEATURE_ROWS_MAX]
    if features.shape[1] != predictor.dim:
        return CheckResult(name, False, None, f"the data has {features.shape[1]} dims per row, the vocabulary "
                           f"{predictor.dim}", {}, tuple(evidence))  # fmt: skip
    k = int(predictor.k)
    counts = [0] * k
    zero_rows = 0
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        if predictor.normalize:  # a zero vector has no direction: the port refuses it, so leave it out
            keep = (batch * batch).sum(axis=1) > 0
            zero_rows += int((~keep).sum())
            batch = batch[keep]
        if len(batch):
            for token in predictor.predict({"features": batch.tolist()})["tokens"]:
                counts[token] += 1
    active = sum(1 for n in counts if n)
    entropy = entropy_bits(counts)
    ceiling = math.log2(k) if k > 1 else 0.0
    figure = {"active": active, "k": k, "entropy_bits": round(entropy, 4), "ceiling_bits": round(ceiling, 4)}
    failures = []
    if active < TOKENS_MIN_SHARE * k:
        failures.append(f"{active} of {k} tokens used (< {TOKENS_MIN_SHARE:.0%})")
    if entropy < ENTROPY_MIN_SHARE * ceiling:
        failures.append(f"entropy {entropy:.2f} bits < {ENTROPY_MIN_SHARE:.0%} of log2 K = {ceiling:.2f}")
    assigned = sum(counts)
    said = (f"{active}/{k} tokens active, entropy {entropy:.2f} of {ceiling:.2f} bits over {assigned:,} rows"
            + (f" ({zero_rows} zero rows left out)" if zero_rows else ""))  # fmt: skip
    details: dict[str, Any] = {"counts": counts, "rows": assigned, "zero_rows": zero_rows,
                               "rows_in_data": int(features.shape[0]),
                               "thresholds": {"active": f">= {TOKENS_MIN_SHARE} K",
                                              "entropy_bits": f">= {ENTROPY_MIN_SHARE} log2 K"},
                               "logged": _logged(ctx, "tokens/active", "tokens/entropy_bits")}  # fmt: skip
    reason = "; ".join(failures) + f" ({said})" if failures else said
    return CheckResult(name, not failures, figure, reason, details, tuple(evidence))


@check("active_latent_dims", kinds=("ternary-vae",), needs_torch=True)
def active_latent_dims(ctx: CheckContext) -> CheckResult:
    """Latent dimensions whose posterior mean varies (> 0.01) across all 3^9 operations; fails under half.

    The served encoder's mean for every ternary operation; per dimension the variance across
    them; figure = {active, dims, min_var, max_var}. Fails when fewer than LATENT_MIN_SHARE of
    the dimensions are active (posterior collapse).
    """
    import itertools

    import numpy as np

    name = "active_latent_dims"
    loaded = _load(ctx, name)
    if isinstance(loaded, CheckResult):
        return loaded
    predictor, evidence = loaded
    digits = predictor.input_shape["op"][0]
    ops = [list(op) for op in itertools.product((-1, 0, 1), repeat=digits)]
    means = []
    for start in range(0, len(ops), BATCH):
        means.extend(predictor.predict({"ops": ops[start : start + BATCH]})["latents"])
    var = np.asarray(means, dtype=np.float64).var(axis=0)
    dims = int(var.shape[0])
    active = int((var > ACTIVE_VAR).sum())
    figure = {"active": active, "dims": dims, "min_var": round(float(var.min()), 6),
              "max_var": round(float(var.max()), 6)}  # fmt: skip
    ok = active >= LATENT_MIN_SHARE * dims
    said = (f"{active}/{dims} latent dims active (variance > {ACTIVE_VAR:g}) over {len(ops):,} operations; "
            f"variance {figure['min_var']:.3g}-{figure['max_var']:.3g}")  # fmt: skip
    reason = said if ok else f"posterior collapse: {said} (< {LATENT_MIN_SHARE:.0%} active)"
    details = {"variance_by_dim": [round(float(v), 6) for v in var], "operations": len(ops),
               "threshold": ACTIVE_VAR, "min_share": LATENT_MIN_SHARE,
               "logged": _logged(ctx, "latent/active_dims")}  # fmt: skip
    return CheckResult(name, ok, figure, reason, details, tuple(evidence))
