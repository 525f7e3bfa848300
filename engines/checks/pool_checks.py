"""data_pool: a training data pool of instruction and chat JSON Lines (seed 004), line by line.

Which pool: `options["data"]`, else run.json `task_options.data`, else `config.data_path`
(the demo pool an lm-base run generated). It applies to `lm-base` and `lora-lm` runs, to
any run whose data is a `.jsonl` file or a folder, and to any subject given `--data`.

The formats, the rejection reasons, the duplicate rule and the split are the trainer's own
(engines/training/datapool.py: parse_sample, split_samples); this check only reads the
files itself, bounded and regular files only, so that it can name every bad line.

- Each non-blank line must parse as JSON and be a valid sample; every bad line is a
  problem naming its file and line number and the reason (`not JSON`, `missing output`,
  `bad role`, `empty content`, ...). Exact duplicates are counted, not failed.
- The deterministic 90/10 split (sha256 of each rendered text) is recomputed; when the
  run's config recorded `n_train`/`n_val`, they must match (else the pool changed since).
- Ready to train: at least `options["threshold"]` valid samples (default 100, datapool.READY_THRESHOLD).

Figure: the number of valid samples. Fails on any bad line, a split that differs from the
run's, or a pool below the threshold.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from trainledger.engines.checks.base import CheckContext, CheckResult, check
from trainledger.engines.checks.files import JSONL_LIMIT, FileProblem, evidence, iter_lines, parse_line, user_path
from trainledger.engines.training import datapool

NAME = "data_pool"
POOL_KINDS = ("lm-base", "lora-lm")
PROBLEMS_KEPT = 20  # bad lines listed in details (all are counted)
MAX_FILES = 10_000


def pool_path(ctx: CheckContext) -> Path | None:
    run, opts = ctx.subject.run, ctx.options
    text = opts.get("data") or (run.get("task_options") or {}).get("data") or (run.get("config") or {}).get("data_path")
    if not text:
        return None
    path = user_path(ctx.ws, str(text))
    explicit = bool(opts.get("data")) or ctx.subject.kind in POOL_KINDS
    if explicit or path.suffix.lower() == ".jsonl" or (path.is_dir() and any(path.rglob("*.jsonl"))):
        return path
    return None


def scan(ws: Any, path: Path) -> dict[str, Any]:
    """Every line of the pool judged: samples, rejects by reason, the bad lines with where."""
    try:
        files = datapool.pool_files(path)
    except FileNotFoundError:
        raise FileProblem(f"{path.name}: no such file or folder") from None
    if len(files) > MAX_FILES:
        raise FileProblem(f"{path.name}: more than {MAX_FILES} .jsonl files")
    samples: list[datapool.Sample] = []
    rejects: Counter[str] = Counter()
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    left = JSONL_LIMIT  # bytes for the whole pool, not per file
    for file in files:
        name = evidence(ws, file)
        for lineno, line in iter_lines(file, left):
            left -= len(line)
            if not line.strip():
                continue
            try:
                parsed: Any = datapool.parse_sample(parse_line(line))
            except ValueError as exc:
                parsed = "not JSON" if "JSON" in str(exc) else str(exc)
            if not isinstance(parsed, str):
                fmt, text = parsed
                if text in seen:
                    parsed = "duplicate"
                else:
                    seen.add(text)
                    samples.append(datapool.Sample(text=text, format=fmt, source=f"{name}:{lineno}"))
                    continue
            rejects[parsed] += 1
            if parsed != "duplicate" and len(problems) < PROBLEMS_KEPT:
                problems.append({"file": name, "line": lineno, "reason": parsed})
    return {"files": [evidence(ws, f) for f in files], "samples": samples, "rejects": rejects, "problems": problems}


@check(NAME)
def data_pool(ctx: CheckContext) -> CheckResult | None:
    """Instruction/chat JSONL pool: every line valid (with line numbers), the 90/10 split, >= 100 samples."""
    path = pool_path(ctx)
    if path is None:
        if ctx.subject.kind in POOL_KINDS:
            return CheckResult(NAME, None, None, "no data pool recorded (task_options.data / config.data_path)")
        return None
    ev = (evidence(ctx.ws, path),)
    try:
        threshold = int(ctx.options.get("threshold", datapool.READY_THRESHOLD))
        pool = scan(ctx.ws, path)
    except (FileProblem, ValueError, OSError) as exc:
        return CheckResult(NAME, False, None, str(exc), {"data": ev[0]}, ev)
    samples, rejects, problems = pool["samples"], pool["rejects"], pool["problems"]
    train, val = datapool.split_samples(samples, datapool.VAL_FRACTION)
    n = len(samples)
    bad = sum(c for r, c in rejects.items() if r != "duplicate")
    config = ctx.subject.run.get("config") or {}
    recorded = (config.get("n_train"), config.get("n_val"))
    details: dict[str, Any] = {
        "data": ev[0], "files": pool["files"][:50], "n_files": len(pool["files"]), "samples": n,
        "formats": dict(Counter(s.format for s in samples)), "rejects": dict(sorted(rejects.items())),
        "bad_lines": bad, "problems": problems, "train": len(train), "val": len(val),
        "val_fraction": datapool.VAL_FRACTION, "threshold": threshold, "ready": datapool.ready_to_train(n, threshold),
    }  # fmt: skip
    ev = tuple(pool["files"][:50]) or ev
    failures = []
    if bad:
        p = problems[0]
        failures.append(f"{bad:,} bad line{'s' if bad != 1 else ''}; first {p['file']}:{p['line']}: {p['reason']}")
    if all(isinstance(v, int) for v in recorded) and recorded != (len(train), len(val)):
        details["recorded_split"] = list(recorded)
        failures.append(f"the run split {recorded[0]}/{recorded[1]}; the pool now splits {len(train)}/{len(val)}")
    if not datapool.ready_to_train(n, threshold):
        failures.append(f"{n:,} valid samples, below the ready-to-train threshold of {threshold}")
    if failures:
        return CheckResult(NAME, False, n, "; ".join(failures), details, ev)
    dup = rejects.get("duplicate", 0)
    extra = f", {dup:,} duplicates skipped" if dup else ""
    return CheckResult(NAME, True, n, f"{n:,} valid samples (>= {threshold}), split {len(train)}/{len(val)} "
                                      f"train/val by sha256{extra}", details, ev)  # fmt: skip
