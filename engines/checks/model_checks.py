"""The checks that load the model (needs_torch): non_flat_output, latency, generated_text.

Each loads the subject's model as a port does (model_load.load_subject: a run's verified
checkpoints/best.safetensors, a version's re-hashed registry artifacts) and feeds it a fixed,
seeded set of inputs (model_load.batch_body). A model that cannot be loaded is a failed check
saying why; one whose files are absent is skipped. `text_figures` is a pure function.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from trainledger.engines.checks.base import CheckContext, CheckResult, check
from trainledger.engines.checks.model_load import KINDS, NotLoadable, load_subject, output_heads, single_bodies

FLAT_STD = 1e-6  # a head whose std across the fixed inputs is below this is flat
WARMUP = 50
TIMED = 200
LM_TIMED = 50  # an lm call is a full forward pass per byte
REPETITION_MAX = 0.05  # seed 004: repetition rate < 5 %
BIGRAM_MAX = 0.25  # seed 003: bigram repetition <= 25 %
ENTROPY_MIN = 2.8  # seed 003: entropy >= 2.8 (bits per character)
TEXT_PROMPTS = ("The ", "Once upon a time", "In the beginning", "We trained the model", "Hello, ",
                "The results show", "It was a", "Today ")  # fmt: skip
TEXT_TOKENS = 64
LM_KINDS = ("lm-base", "lora-lm")


def _load(ctx: CheckContext, name: str) -> tuple[Any, list[str]] | CheckResult:
    try:
        return load_subject(ctx.ws, ctx.subject)
    except NotLoadable as exc:
        return CheckResult(name, None if exc.missing else False, None, f"the model cannot be loaded: {exc}")


@check("non_flat_output", kinds=KINDS, needs_torch=True)
def non_flat_output(ctx: CheckContext) -> CheckResult:
    """Outputs vary across a fixed seeded set of inputs: the smallest per-head std; flat below 1e-6.

    Per head (lvm: the vector; san: each head; ternary-vae: the latent mean; vocab: the squared
    distance to the nearest centroid; lm: the next-byte logits), the std across the inputs of
    each output value, averaged over the head's values. figure = the smallest head's; fails when
    it is below FLAT_STD (a model that answers the same whatever it is asked).
    """
    loaded = _load(ctx, "non_flat_output")
    if isinstance(loaded, CheckResult):
        return loaded
    predictor, evidence = loaded
    heads = output_heads(predictor)
    stds = {key: float(values.std(axis=0).mean()) for key, values in heads.items()}
    worst = min(stds, key=lambda k: stds[k])
    figure = stds[worst]
    n = next(iter(heads.values())).shape[0]
    ok = figure >= FLAT_STD
    verdict = "varies" if ok else "is flat"
    reason = f"{worst} {verdict}: std {figure:.3g} across {n} fixed inputs ({'>=' if ok else '<'} {FLAT_STD:g})"
    return CheckResult("non_flat_output", ok, figure, reason,
                       {"std_by_head": stds, "inputs": n, "threshold": FLAT_STD}, tuple(evidence))  # fmt: skip


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return sorted_ms[rank - 1]


@check("latency", kinds=KINDS, needs_torch=True)
def latency(ctx: CheckContext) -> CheckResult:
    """p50/p95/p99 ms of single predictions after a warm-up; a figure only (no threshold).

    `predict` with one example (an lm: one prompt, max_tokens 1), WARMUP calls first, then TIMED
    calls (LM_TIMED for an lm) timed with perf_counter; nearest-rank percentiles. In-process:
    no HTTP, so it is the model's cost, not a port's.
    """
    loaded = _load(ctx, "latency")
    if isinstance(loaded, CheckResult):
        return loaded
    predictor, evidence = loaded
    timed = LM_TIMED if predictor.kind in LM_KINDS else TIMED
    bodies = single_bodies(predictor, WARMUP + timed)
    for body in bodies[:WARMUP]:
        predictor.predict(body)
    ms = []
    for body in bodies[WARMUP:]:
        start = time.perf_counter()
        predictor.predict(body)
        ms.append((time.perf_counter() - start) * 1000.0)
    ms.sort()
    figure = {"p50_ms": round(percentile(ms, 50), 4), "p95_ms": round(percentile(ms, 95), 4),
              "p99_ms": round(percentile(ms, 99), 4)}  # fmt: skip
    reason = (f"p50 {figure['p50_ms']:.3f} ms, p95 {figure['p95_ms']:.3f} ms, p99 {figure['p99_ms']:.3f} ms "
              f"over {timed} single predictions after {WARMUP} warm-up (no threshold)")  # fmt: skip
    return CheckResult("latency", True, figure, reason,
                       {"calls": timed, "warmup": WARMUP, "max_ms": round(ms[-1], 4)}, tuple(evidence))  # fmt: skip


# ----------------------------------------------------------------------------- generated text
def text_figures(texts: Sequence[str]) -> dict[str, float]:
    """Figures of generated texts (pooled over all of them), as seeds 003/004 name them.

    Tokens are each text's whitespace-separated words, lowercased; no token pair crosses two texts.
    - repetition_rate (seed 004, "repetition rate < 5 %"): of the tokens that have a token before
      them in their text, the share equal to that token ("the the"): the stutter of a decoder
      stuck on one token. 0.0 with no such tokens.
    - bigram_repetition (seed 003, "bigram repetition <= 25 %"): of each text's word bigrams, the
      share that repeat a bigram seen earlier in the same text, (bigrams - distinct) / bigrams,
      summed over texts. 0.0 with no bigrams.
    - entropy_bits (seed 003, "entropy >= 2.8"): the Shannon entropy, in bits, of the characters
      of all the texts together (whitespace included): -sum p(c) log2 p(c). 0.0 for no text.
    """
    repeats = pairs = bigrams = distinct = 0
    chars: Counter[str] = Counter()
    for text in texts:
        chars.update(text)
        words = text.lower().split()
        pairs += max(0, len(words) - 1)
        repeats += sum(1 for a, b in zip(words, words[1:]) if a == b)
        grams = list(zip(words, words[1:]))
        bigrams += len(grams)
        distinct += len(set(grams))
    total = sum(chars.values())
    entropy = -sum(n / total * math.log2(n / total) for n in chars.values()) if total else 0.0
    return {"repetition_rate": repeats / pairs if pairs else 0.0,
            "bigram_repetition": (bigrams - distinct) / bigrams if bigrams else 0.0,
            "entropy_bits": entropy + 0.0}  # fmt: skip


def text_failures(figures: dict[str, float]) -> list[str]:
    """What in `figures` is past its threshold, in words ([] when none)."""
    out = []
    if figures["repetition_rate"] >= REPETITION_MAX:
        out.append(f"repetition rate {figures['repetition_rate']:.1%} >= {REPETITION_MAX:.0%}")
    if figures["bigram_repetition"] > BIGRAM_MAX:
        out.append(f"bigram repetition {figures['bigram_repetition']:.1%} > {BIGRAM_MAX:.0%}")
    if figures["entropy_bits"] < ENTROPY_MIN:
        out.append(f"entropy {figures['entropy_bits']:.2f} bits < {ENTROPY_MIN}")
    return out


@check("generated_text", kinds=LM_KINDS, needs_torch=True)
def generated_text(ctx: CheckContext) -> CheckResult:
    """Greedy texts for fixed prompts: repetition < 5 %, bigram repetition <= 25 %, entropy >= 2.8 bits.

    The served model's greedy continuation (max_tokens TEXT_TOKENS) of each of TEXT_PROMPTS;
    figure = text_figures of the continuations (prompts left out). Fails when any figure is past
    its threshold (seed 004: repetition_rate >= 5 %; seed 003: bigram_repetition > 25 %,
    entropy_bits < 2.8).
    """
    loaded = _load(ctx, "generated_text")
    if isinstance(loaded, CheckResult):
        return loaded
    predictor, evidence = loaded
    out = predictor.predict({"prompts": list(TEXT_PROMPTS), "max_tokens": TEXT_TOKENS})
    texts = out["texts"]
    figures = text_figures(texts)
    failures = text_failures(figures)
    shown = ", ".join(f"{k} {v:.3g}" for k, v in figures.items())
    reason = ("; ".join(failures) if failures else "within the thresholds") + f" ({shown}; {len(texts)} prompts)"
    details = {"samples": [{"prompt": p, "text": t[:200]} for p, t in zip(TEXT_PROMPTS, texts)],
               "thresholds": {"repetition_rate": f"< {REPETITION_MAX}", "bigram_repetition": f"<= {BIGRAM_MAX}",
                              "entropy_bits": f">= {ENTROPY_MIN}"}}  # fmt: skip
    return CheckResult("generated_text", not failures, figures, reason, details, tuple(evidence))
