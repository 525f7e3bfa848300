"""The checks `trainledger train` makes before anything is created: every number, id and
path of the command line and every `--set` value is tested here, so a bad one is one line
naming the value and what is allowed (exit 2) instead of a traceback or a run folder that
fails at its first step.

Split from cli.py, which keeps the flow of a run; this module imports no torch.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

# exit statuses of `trainledger train` (docs/operations.md, "Exit codes")
EXIT_OK = 0  # finished, also after an early stop
EXIT_FAILED = 1  # the trainer raised; run.json says failed and why
EXIT_USAGE = 2  # a bad argument; nothing was created
EXIT_STOPPED = 3  # stopped on request (SIGTERM, SIGINT, the parent exited); run.json says stopped
EXIT_INTERRUPTED = 130  # a second Ctrl-C: stopped at once, without a last checkpoint

# the models that run on --backend mlx (mlx_models.MLX_MODELS; named here so that
# the error paths need not import mlx)
MLX_MODELS = ("lvm-gru", "ternary-vae", "san", "lora-lm")
BASE_MODELS = ("lora-lm",)  # the models that take --base


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


Rule = tuple[Callable[[Any], bool], str]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def int_at_least(lo: int) -> Rule:
    return (lambda v: _is_int(v) and v >= lo), f"an integer >= {lo}"


def number_above(lo: float) -> Rule:
    return (lambda v: _is_num(v) and v > lo), f"a finite number > {lo:g}"


def number_at_least(lo: float) -> Rule:
    return (lambda v: _is_num(v) and v >= lo), f"a finite number >= {lo:g}"


FRACTION: Rule = (lambda v: _is_num(v) and 0 < v < 1), "a number between 0 and 1 (exclusive)"
BOOL: Rule = (lambda v: isinstance(v, bool)), "true or false"
SEED: Rule = (lambda v: _is_int(v) and 0 <= v < 2**63), "an integer from 0 to 2^63-1"
ANY_INT_OR_NULL: Rule = (lambda v: v is None or _is_int(v)), "an integer (negative or null: never)"
NAMES: Rule = (
    lambda v: (isinstance(v, str) and bool(v.strip()))
    or (isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)),
    "names as \"a,b\" or a JSON list of strings",
)  # fmt: skip
CHECKPOINT_TAG: Rule = (lambda v: v in ("best", "last")), "best or last"

POSITIVE, NON_NEGATIVE = int_at_least(1), int_at_least(0)

# LoopConfig's fields, as flags or --set keys
LOOP_RULES: dict[str, Rule] = {
    "epochs": POSITIVE,
    "batch_size": POSITIVE,
    "lr": number_above(0),
    "seed": SEED,
    "patience": NON_NEGATIVE,
    "log_every": POSITIVE,
    "pace": number_at_least(0),
    "threads": POSITIVE,
    "eval_at_start": BOOL,
    "balance_every": NON_NEGATIVE,
    "dominance_factor": number_above(1),
    "last_every": number_at_least(0),
}
_LVM = {"mse_weight": number_at_least(0), "infonce_weight": number_at_least(0), "val_fraction": FRACTION}
# each model's own --set keys (unknown keys are the builders' to refuse, naming the known ones)
MODEL_RULES: dict[str, dict[str, Rule]] = {
    "ternary-vae": {
        "hidden": POSITIVE, "latent_dim": POSITIVE, "free_bits": number_at_least(0),
        "beta_warmup_epochs": NON_NEGATIVE, "beta_a": number_at_least(0), "beta_b": number_at_least(0),
        "phase_epoch": ANY_INT_OR_NULL, "phase_lr_scale": number_above(0), "val_fraction": FRACTION,
        "prior_samples": POSITIVE, "sample_batch": POSITIVE,
    },
    "san": {"val_fraction": FRACTION},
    "lvm-amn": _LVM, "lvm-gru": _LVM, "lvm-lstm": _LVM, "lvm-transformer": _LVM,
    "vocab": {"k": int_at_least(2), "normalize": BOOL},
    "lm-base": {"vocab": int_at_least(257), "d_model": POSITIVE, "n_layers": POSITIVE, "n_heads": POSITIVE,
                "context": int_at_least(2), "mlp_ratio": POSITIVE},
    "lora-lm": {"rank": POSITIVE, "alpha": number_above(0), "targets": NAMES, "grad_accum": POSITIVE,
                "max_seq": int_at_least(2), "base_checkpoint": CHECKPOINT_TAG},
}  # fmt: skip


def _shown(value: Any) -> str:
    import msgspec

    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, ValueError, OverflowError):
        return repr(value)


def check_value(label: str, value: Any, rule: Rule) -> None:
    test, allowed = rule
    if not test(value):
        sep = "" if label.endswith("=") else " "
        raise CliError(f"{label}{sep}{_shown(value)}: expected {allowed}")


def check_flags(args: argparse.Namespace) -> None:
    """The numbers and ids of the command line, before a workspace is even looked up."""
    from trainledger.engines.workspace import InvalidId, validate_id

    for name, rule in LOOP_RULES.items():
        value = getattr(args, name, None)
        if value is not None:
            check_value(f"--{name.replace('_', '-')}", value, rule)
    nproc, resume, run_id, data = (getattr(args, k, None) for k in ("nproc", "resume", "run_id", "data"))
    if nproc is not None:
        check_value("--nproc", nproc, POSITIVE)
    for flag, value in (("--resume", resume), ("--run-id", run_id)):
        if value is not None:
            try:
                validate_id(value, "run id")
            except InvalidId as exc:
                raise CliError(f"{flag} {value}: {exc}") from None
    name = getattr(args, "name", None)
    if name is not None:
        from trainledger.engines.runmeta import InvalidMeta, validate_name

        try:
            validate_name(name)
        except InvalidMeta as exc:
            raise CliError(f"--name: {exc}") from None
    if resume and run_id and run_id != resume:
        raise CliError(f"--run-id {run_id}: --resume continues run {resume} in its own folder")
    if data is not None:
        check_data_path(Path(data).expanduser())
    model, base = getattr(args, "model", None), getattr(args, "base", None)
    if model and base is not None and model not in BASE_MODELS:
        raise CliError(f"--base {base}: {model} takes no base run (only {', '.join(BASE_MODELS)})")


def check_data_path(path: Path) -> None:
    """--data must be a regular file or a folder; stat() never blocks on a FIFO."""
    from trainledger.engines.safeio import describe_kind

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CliError(f"--data {path}: no such file or folder") from None
    except OSError as exc:
        raise CliError(f"--data {path}: cannot be read ({exc.strerror})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise CliError(f"--data {path}: expected a dataset file or folder; found {describe_kind(mode)}")


def check_settings(model: str, settings: dict[str, Any]) -> None:
    """`--set` values of the loop and of `model` (types and ranges)."""
    rules = {**LOOP_RULES, **MODEL_RULES.get(model, {})}
    for key, value in settings.items():
        if key in rules:
            check_value(f"--set {key}=", value, rules[key])


def check_base(ws: Any, model: str, base: str | None) -> Path | None:
    """The run folder --base names: a run id of `ws`, or a path to a run folder."""
    if base is None:
        return None
    if model not in BASE_MODELS:
        raise CliError(f"--base {base}: {model} takes no base run (only {', '.join(BASE_MODELS)})")
    from trainledger.engines.workspace import RUN_FILE, InvalidId, validate_id

    try:
        run_dir = ws.run_dir(validate_id(base, "run id"))
    except InvalidId:
        run_dir = None
    if run_dir is not None and (run_dir / RUN_FILE).is_file():
        return run_dir
    path = Path(base).expanduser()
    if path.is_dir() and (path / RUN_FILE).is_file():
        return path.resolve()
    named = _by_name(ws, "--base", base)
    if named is not None and (ws.run_dir(named) / RUN_FILE).is_file():
        return ws.run_dir(named)
    raise CliError(f"--base {base}: expected a run id of {ws.root} or a run folder (with {RUN_FILE}); found neither")


def _by_name(ws: Any, flag: str, value: str) -> str | None:
    """The id of the one run of `ws` named `value`; None if no run has that name; CliError when
    several do (listing their ids)."""
    from trainledger.engines.workspace import list_runs

    ids = [r.id for r in list_runs(ws, check_pid=False) if r.name == value]
    if len(ids) > 1:
        raise CliError(f"{flag} {_safe(value)}: {len(ids)} runs are named so ({', '.join(ids)}); give the run id")
    return ids[0] if ids else None


def _safe(value: str) -> str:
    from trainledger.engines.safetext import clean

    return clean(value)


def resolve_resume(args: argparse.Namespace) -> None:
    """--resume NAME: the run id of the one run named so, in the workspace if it exists already.

    Runs before check_flags and creates nothing: with no workspace yet (or a run id that is
    there) the value is left as it is for the usual checks. A name several runs share, or a
    value that is neither an id nor a name of an existing workspace's runs, is a CliError.
    """
    resume = getattr(args, "resume", None)
    if not resume:
        return
    from trainledger.engines.workspace import InvalidId, NotAWorkspace, resolve_workspace, validate_id

    try:
        ws, _ = resolve_workspace(getattr(args, "workspace", None), create_explicit=False, create_default=False)
    except (NotAWorkspace, NotADirectoryError, OSError, ValueError):
        return
    try:
        valid = validate_id(resume, "run id") == resume
    except InvalidId:
        valid = False
    if valid and ws.run_dir(resume).is_dir():
        return
    named = _by_name(ws, "--resume", resume)
    if named is not None:
        args.resume = named
    elif not valid:
        raise CliError(f"--resume {_safe(resume)}: no run with that id or name in {_safe(str(ws.root))}")


def read_run(ws: Any, run_id: str) -> dict[str, Any]:
    """run.json of the run --resume names."""
    import msgspec

    from trainledger.engines.safeio import NotRegularFile, read_regular
    from trainledger.engines.workspace import RUN_FILE

    path = ws.run_dir(run_id) / RUN_FILE
    try:
        info = msgspec.json.decode(read_regular(path, 16 << 20))
    except FileNotFoundError:
        raise CliError(f"--resume {run_id}: no such run in {ws.root}") from None
    except (msgspec.DecodeError, NotRegularFile, OSError) as exc:
        raise CliError(f"--resume {run_id}: run.json unreadable: {exc}") from None
    if not isinstance(info, dict):
        raise CliError(f"--resume {run_id}: run.json is not an object")
    return info


def check_resume(run_id: str, previous: dict[str, Any], backend: str) -> None:
    """--resume continues torch runs only, on torch, until the MLX loop can resume."""
    if previous.get("backend") == "mlx" or backend == "mlx":
        raise CliError(f"--resume {run_id}: resuming an MLX run is not supported yet (it was trained with "
                       f"--backend {previous.get('backend') or 'torch'}); start a new run")  # fmt: skip


def check_mlx(model: str) -> None:
    """--backend mlx: only the models of mlx_models.MLX_MODELS, one process."""
    if model not in MLX_MODELS:
        raise CliError(f"--backend mlx is not yet supported for {model}; use --backend torch "
                       f"(on mlx: {', '.join(MLX_MODELS)})")  # fmt: skip
