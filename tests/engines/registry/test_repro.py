"""The reproduction command (repro.py): run as written, it remakes the run, settings and weights.

Real tiny runs by the real trainer: an lvm-gru run with a task --set and a loop --set, and a
ternary-vae run started the way the console and the demo start theirs (no task_options)."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from trainledger.engines.registry.repro import LOOP_SET_DEFAULTS, reproduction_command, set_value
from trainledger.engines.workspace import Workspace, init_workspace


def train(ws: Workspace, *args: str, module: str = "trainledger.console.cli") -> None:
    head = [sys.executable, "-m", module] + (["train"] if module == "trainledger.console.cli" else [])
    subprocess.run([*head, *args, "--workspace", str(ws.root)], check=True, capture_output=True, timeout=120)


def run_json(ws: Workspace, run_id: str) -> dict[str, Any]:
    return json.loads((ws.run_dir(run_id) / "run.json").read_text())


def remake(ws: Workspace, run_id: str, new_id: str) -> tuple[str, dict[str, Any]]:
    """The original's reproduction line, run as written plus --workspace and --run-id."""
    line = reproduction_command(run_json(ws, run_id))
    assert line is not None
    words = shlex.split(line)
    assert words[:2] == ["trainledger", "train"]
    train(ws, *words[2:], "--run-id", new_id)
    return line, run_json(ws, new_id)


def same_weights(ws: Workspace, a: str, b: str) -> bool:
    x, y = (load_file(str(ws.run_dir(r) / "checkpoints" / "best.safetensors")) for r in (a, b))
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("repro") / "ws")
    train(ws, "lvm-gru", "--epochs", "2", "--seed", "3", "--lr", "0.002", "--batch-size", "32",
          "--set", "infonce_weight=0.25", "--set", "balance_every=7", "--run-id", "r1")  # fmt: skip
    # as engines/demo.py starts its trainers: python -m trainledger.engines.training, --phase-epoch
    train(ws, "ternary-vae", "--epochs", "1", "--phase-epoch", "3", "--run-id", "vae",
          module="trainledger.engines.training")  # fmt: skip
    return ws


def test_the_command_remakes_an_lvm_run(ws: Workspace) -> None:
    line, again = remake(ws, "r1", "r2")
    assert line.startswith("trainledger train lvm-gru --seed 3 --epochs 2 --batch-size 32 --lr 0.002 ")
    assert "--data" not in line  # demo data: regenerated from the seed
    assert "--set infonce_weight=0.25" in line and "--set balance_every=7" in line
    original = run_json(ws, "r1")
    for key in ("seed", "epochs", "batch_size", "lr", "patience", "log_every", "balance_every", "architecture",
                "loss", "data_path", "n_train"):  # fmt: skip
        assert again["config"][key] == original["config"][key], key
    assert again["task_options"]["set"] == original["task_options"]["set"] == {"infonce_weight": 0.25}
    assert again["data"]["sha256"] == original["data"]["sha256"]
    assert same_weights(ws, "r1", "r2")  # one thread on the CPU: the very same tensors
    assert reproduction_command(again) == line


def test_the_command_remakes_a_console_started_run(ws: Workspace) -> None:
    original = run_json(ws, "vae")
    assert "task_options" not in original  # what the console's and the demo's trainers write
    line, again = remake(ws, "vae", "vae2")
    assert line.endswith(" --set phase_epoch=3")
    for key in ("seed", "epochs", "batch_size", "lr", "patience", "phase_epoch", "beta_schedule", "model"):
        assert again["config"][key] == original["config"][key], key
    assert same_weights(ws, "vae", "vae2")


def test_no_command_for_a_run_that_does_not_say_how_it_was_made() -> None:
    assert reproduction_command({"id": "tb-x", "model": None}) is None  # an imported TensorBoard run
    assert reproduction_command({"id": "tb-x", "source": {"kind": "tensorboard"}, "config": {}}) is None
    assert reproduction_command({"model": "lvm-gru"}) is None  # no config
    assert reproduction_command({"model": "", "config": {"epochs": 1}}) is None


def test_flags_for_data_base_backend_and_settings() -> None:
    run = {"model": "lora-lm", "backend": "mlx",
           "config": {"epochs": 1, "lr": 1e-4, "pace": 0.0, "threads": 1, "eval_at_start": True},
           "task_options": {"seed": 2, "base": "/runs dir/b1", "data": "/d x/p.jsonl", "force": True,
                            "set": {"rank": 8, "targets": ["q_proj", "v_proj"]}}}  # fmt: skip
    assert reproduction_command(run) == (
        "trainledger train lora-lm --seed 2 --epochs 1 --lr 0.0001 --backend mlx --data '/d x/p.jsonl' "
        "--base '/runs dir/b1' --set rank=8 --set 'targets=[\"q_proj\",\"v_proj\"]'"
    )
    paced = {"model": "san", "config": {"seed": 0, "pace": 12.5, "threads": 4, "world_size": 2,
                                        "eval_at_start": False, "last_every": 30.0}}  # fmt: skip
    assert reproduction_command(paced) == (
        "trainledger train san --seed 0 --pace 12.5 --threads 4 --nproc 2 --set eval_at_start=false"
    )


def test_set_values_read_back_as_the_run_had_them() -> None:
    from trainledger.engines.training.cli import parse_settings  # no torch: the CLI's own parser

    values = {"plain": "q_proj,v_proj", "number_text": "3", "true_text": "true", "null_text": "null",
              "spaced": "a b", "n": 3, "x": 0.5, "flag": False, "none": None, "names": ["a", "b"],
              "nested": {"k": [1, 2]}}  # fmt: skip
    items = [f"{key}={set_value(value)}" for key, value in values.items()]
    assert parse_settings(shlex.split(shlex.join(items))) == values
    assert set_value("q_proj,v_proj") == "q_proj,v_proj"  # a plain string stays readable
    assert set_value("3") == '"3"'


def test_the_loop_defaults_it_compares_against_are_the_loops() -> None:
    from trainledger.engines.training.loop_parts import LoopConfig

    defaults = {f.name: f.default for f in dataclasses.fields(LoopConfig)}
    flagged = {"epochs", "batch_size", "lr", "seed", "patience", "log_every", "pace", "threads"}
    assert set(defaults) - flagged == set(LOOP_SET_DEFAULTS)
    assert {k: defaults[k] for k in LOOP_SET_DEFAULTS} == LOOP_SET_DEFAULTS


def test_the_argv_of_a_console_run_gives_its_phase_epoch() -> None:
    base = {"model": "ternary-vae", "config": {"epochs": 2}}
    never = {**base, "argv": ["/x/__main__.py", "ternary-vae", "--phase-epoch=-1"]}
    assert reproduction_command(never) == "trainledger train ternary-vae --epochs 2 --set phase_epoch=null"
    odd = {**base, "argv": ["/x/__main__.py", "--phase-epoch", "soon"]}
    assert reproduction_command(odd) == "trainledger train ternary-vae --epochs 2"
    # a run of `trainledger train` has task_options: its settings come from there, not argv
    cli = {**base, "task_options": {"set": {}}, "argv": ["trainledger", "train", "--phase-epoch", "4"]}
    assert reproduction_command(cli) == "trainledger train ternary-vae --epochs 2"
