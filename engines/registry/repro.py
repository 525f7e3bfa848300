"""The `trainledger train ...` line that remakes a run, from its run.json alone.

Seed 000's rule for a promotion: attach the reproduction command. What the line holds:

- the model, `--seed`, and the loop settings that decide the weights, always, from `config`
  (what the run really used, the model's own defaults included): `--epochs`, `--batch-size`,
  `--lr`, `--patience`; `--log-every` always too, so the metric rows line up; `--pace` only
  when the run was paced (0 is the default); `--threads` when not 1 (the default; CPU float
  sums may differ with the thread count); `--nproc N` when the run had N > 1 ranks;
- `--backend` when it was not torch;
- `--data PATH` only when the user gave data (`task_options.data`): without it the model
  generates its demo dataset from the seed, byte for byte the same;
- `--base RUN` for a model built on a base run (lora-lm), as the run recorded it (an id of
  the same workspace, or an absolute folder path);
- `--set KEY=VALUE` for each model setting the run was started with (`task_options.set`),
  sorted, each VALUE as JSON unless it is a plain string the CLI reads back unchanged; and
  for the loop's settings without a flag of their own (eval_at_start, balance_every,
  dominance_factor, last_every) only where the run's value is not the loop's default.

Left out: `--workspace` and `--run-id` (the caller's to add), `--device` (auto picks the
same device where there is one), `--force` (regenerating the demo data gives the same bytes),
`--name`. A run started by `python -m trainledger.engines.training` (the console's and the
demo's trainers) has no task_options; its one model flag, `--phase-epoch N`, is read back
from run.json's argv as `--set phase_epoch=N`. Values are shell-quoted (shlex).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

# run.json config key -> flag, in the order printed (always, when the config has a number)
_LOOP_FLAGS = (
    ("epochs", "--epochs"),
    ("batch_size", "--batch-size"),
    ("lr", "--lr"),
    ("patience", "--patience"),
    ("log_every", "--log-every"),
)
# LoopConfig's settings that have no flag, with LoopConfig's defaults (loop_parts.py; a test
# keeps the two equal): a `--set` only when the run's value differs
LOOP_SET_DEFAULTS: dict[str, Any] = {
    "eval_at_start": True,
    "balance_every": 50,
    "dominance_factor": 10.0,
    "last_every": 30.0,
}


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return repr(value) if isinstance(value, float) else str(value)


def set_value(value: Any) -> str:
    """VALUE of `--set KEY=VALUE` that the train CLI decodes back to `value` (it reads JSON
    when the text parses as JSON, else takes the text as a string)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # a plain string: read back as itself
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _argv_phase_epoch(argv: Any) -> list[str]:
    """`--set phase_epoch=N` from a `python -m trainledger.engines.training` argv, if it has one."""
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return []
    value: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--phase-epoch" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--phase-epoch="):
            value = arg.split("=", 1)[1]
    try:
        epoch = int(value) if value is not None else None
    except ValueError:
        return []
    if epoch is None:
        return []
    return ["--set", f"phase_epoch={'null' if epoch < 0 else epoch}"]


def reproduction_command(run: dict[str, Any]) -> str | None:
    """The command line, or None when run.json does not say what is needed (an imported
    TensorBoard run has no model; a hand-written run has no config)."""
    model = run.get("model")
    config = run.get("config")
    if not isinstance(model, str) or not model or not isinstance(config, dict):
        return None
    has_options = isinstance(run.get("task_options"), dict)
    options = run["task_options"] if has_options else {}
    words = ["trainledger", "train", model]
    seed = _number(options.get("seed", config.get("seed")))
    if seed is not None:
        words += ["--seed", seed]
    for key, flag in _LOOP_FLAGS:
        text = _number(config.get(key))
        if text is not None:
            words += [flag, text]
    pace = _number(config.get("pace"))
    if pace is not None and float(config["pace"]) > 0:
        words += ["--pace", pace]
    threads = _number(config.get("threads"))
    if threads is not None and config["threads"] != 1:
        words += ["--threads", threads]
    world = config.get("world_size")
    if isinstance(world, int) and not isinstance(world, bool) and world > 1:
        words += ["--nproc", str(world)]
    backend = run.get("backend")
    if isinstance(backend, str) and backend != "torch":
        words += ["--backend", backend]
    if isinstance(options.get("data"), str):
        words += ["--data", options["data"]]
    if isinstance(options.get("base"), str):
        words += ["--base", options["base"]]
    settings = options.get("set") if isinstance(options.get("set"), dict) else {}
    for key in sorted(settings):
        words += ["--set", f"{key}={set_value(settings[key])}"]
    for key, default in LOOP_SET_DEFAULTS.items():
        if key in config and key not in settings and config[key] != default:
            words += ["--set", f"{key}={set_value(config[key])}"]
    if not has_options:
        words += _argv_phase_epoch(run.get("argv"))
    return shlex.join(words)
