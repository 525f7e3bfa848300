"""The `trainledger train ...` line that remakes a run, from its run.json alone.

Seed 000's rule for a promotion: attach the reproduction command. The line names the model,
the seed and every loop setting the run used (from `config`), the data only when the user
gave it (without `--data` the model regenerates its demo data from the seed), the base run of
a LoRA run and each `--set` the run was started with. Values are shell-quoted.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

# run.json config key -> flag, in the order printed
_LOOP_FLAGS = (
    ("epochs", "--epochs"),
    ("batch_size", "--batch-size"),
    ("lr", "--lr"),
    ("patience", "--patience"),
    ("log_every", "--log-every"),
)


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return repr(value) if isinstance(value, float) else str(value)


def reproduction_command(run: dict[str, Any]) -> str | None:
    """The command line, or None when run.json does not say what is needed (an imported
    TensorBoard run has no model; a hand-written run has no config)."""
    model = run.get("model")
    config = run.get("config")
    if not isinstance(model, str) or not model or not isinstance(config, dict):
        return None
    options = run.get("task_options") if isinstance(run.get("task_options"), dict) else {}
    words = ["trainledger", "train", model]
    seed = options.get("seed", config.get("seed"))
    if _number(seed) is not None:
        words += ["--seed", _number(seed)]  # type: ignore[list-item]
    for key, flag in _LOOP_FLAGS:
        text = _number(config.get(key))
        if text is not None:
            words += [flag, text]
    pace = _number(config.get("pace"))
    if pace is not None and float(config["pace"]) > 0:
        words += ["--pace", pace]
    backend = run.get("backend")
    if isinstance(backend, str) and backend != "torch":
        words += ["--backend", backend]
    if isinstance(options.get("data"), str):
        words += ["--data", options["data"]]
    if isinstance(options.get("base"), str):
        words += ["--base", options["base"]]
    settings = options.get("set")
    if isinstance(settings, dict):
        for key in sorted(settings):
            value = settings[key]
            text = value if isinstance(value, str) else json.dumps(value)
            words += ["--set", f"{key}={text}"]
    return shlex.join(words)
