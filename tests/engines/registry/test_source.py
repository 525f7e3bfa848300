"""Candidates from real runs: best vs last, what the run recorded, forged sidecars, folders;
and the reproduction command remaking a run with the same settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainledger.engines.registry.repro import reproduction_command
from trainledger.engines.registry.source import candidate_from_path, candidate_from_run
from trainledger.engines.registry.types import RegistryError, RegistryUsageError
from trainledger.engines.workspace import Workspace, init_workspace


def _train(ws: Workspace, *args: str) -> None:
    cmd = [sys.executable, "-m", "trainledger.console.cli", "train", *args, "--workspace", str(ws.root)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("source") / "ws")
    _train(ws, "lvm-gru", "--epochs", "3", "--seed", "3", "--run-id", "r1", "--lr", "0.002")
    return ws


def test_best_checkpoint_says_its_epoch_and_what_the_run_recorded(trained: Workspace) -> None:
    c = candidate_from_run(trained, "r1")
    run = json.loads((trained.run_dir("r1") / "run.json").read_text())
    best = json.loads((trained.run_dir("r1") / "checkpoints" / "best.json").read_text())
    assert c.kind == "lvm-gru" and c.run_id == "r1" and c.checkpoint == "best"
    assert c.is_best is True and c.epoch == best["epoch"] and c.last_epoch == 3
    assert c.is_last == (best["epoch"] == 3)
    assert c.files[0].sha256 == best["sha256"] and c.files[0].path.name == best["file"]
    assert c.dataset_sha256 == run["data"]["sha256"] and c.dataset_path == run["data"]["path"]
    assert c.training_samples == run["config"]["n_train"]
    assert c.metrics == pytest.approx(best["metrics"])
    assert f"epoch {c.epoch} of 3" in c.source


def test_last_is_flagged_not_best_when_the_best_was_earlier(trained: Workspace, tmp_path: Path) -> None:
    folder = trained.run_dir("r1") / "checkpoints"
    ws = init_workspace(tmp_path / "ws")
    run_dir = ws.runs_dir / "r2" / "checkpoints"
    run_dir.mkdir(parents=True)
    (ws.run_dir("r2") / "run.json").write_text(json.dumps({"id": "r2", "model": "lvm-gru", "summary": {"epoch": 9}}))
    for tag, epoch, step in (("best", 6, 60), ("last", 9, 90)):
        side = json.loads((folder / f"{tag}.json").read_text())
        side.update(epoch=epoch, step=step)
        (run_dir / f"{tag}.json").write_text(json.dumps(side))
        (run_dir / side["file"]).write_bytes((folder / side["file"]).read_bytes())
    last = candidate_from_run(ws, "r2", "last")
    assert (last.is_best, last.is_last, last.epoch, last.last_epoch) == (False, True, 9, 9)
    best = candidate_from_run(ws, "r2")
    assert (best.is_best, best.is_last, best.epoch) == (True, False, 6)


def test_missing_runs_checkpoints_and_forged_sidecars_are_refused(trained: Workspace, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no run"):
        candidate_from_run(trained, "nope")
    with pytest.raises(RegistryUsageError):
        candidate_from_run(trained, "../etc")
    with pytest.raises(RegistryUsageError):
        candidate_from_run(trained, "r1", "middle")
    ws = init_workspace(tmp_path / "ws")
    (ws.runs_dir / "bare").mkdir(parents=True)
    (ws.run_dir("bare") / "run.json").write_text(json.dumps({"id": "bare", "model": "lvm-gru"}))
    with pytest.raises(RegistryError, match="checkpoints: none"):
        candidate_from_run(ws, "bare")
    (ws.run_dir("bare") / "checkpoints").mkdir()
    (ws.run_dir("bare") / "checkpoints" / "best.json").write_text(json.dumps({"file": "../../x", "sha256": "0" * 64}))
    with pytest.raises(RegistryError, match="names no checkpoint file"):
        candidate_from_run(ws, "bare")


def test_a_folder_candidate_lists_its_files_and_refuses_links_out(tmp_path: Path) -> None:
    folder = tmp_path / "adapters"
    (folder / "sub").mkdir(parents=True)
    (folder / "adapter.safetensors").write_bytes(b"x")
    (folder / "sub" / "config.json").write_text("{}")
    c = candidate_from_path(folder, kind="lora-lm")
    assert [f.name for f in c.files] == ["adapter.safetensors", "sub/config.json"] and c.kind == "lora-lm"
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", folder / "link.json")
    with pytest.raises(RegistryUsageError, match="link out"):
        candidate_from_path(folder)
    with pytest.raises(RegistryUsageError):
        candidate_from_path(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryUsageError, match="no files"):
        candidate_from_path(tmp_path / "empty")


def test_the_reproduction_command_remakes_the_run_with_its_settings(trained: Workspace) -> None:
    import shlex

    run = json.loads((trained.run_dir("r1") / "run.json").read_text())
    line = reproduction_command(run)
    assert line is not None and line.startswith("trainledger train lvm-gru ")
    args = shlex.split(line)[2:]
    _train(trained, *args, "--run-id", "again")
    again = json.loads((trained.run_dir("again") / "run.json").read_text())
    for key in ("seed", "epochs", "batch_size", "lr", "patience", "architecture", "data_path"):
        assert again["config"][key] == run["config"][key], key
    assert again["data"]["sha256"] == run["data"]["sha256"]


def test_no_command_for_a_run_that_does_not_say_how_it_was_made() -> None:
    assert reproduction_command({"id": "tb-x", "model": None}) is None
    assert reproduction_command({"model": "lvm-gru"}) is None
    line = reproduction_command({"model": "lora-lm", "backend": "mlx", "config": {"epochs": 1},
                                 "task_options": {"seed": 2, "base": "b1", "data": "/d x/p.jsonl",
                                                  "set": {"rank": 8}}})  # fmt: skip
    assert line == ("trainledger train lora-lm --seed 2 --epochs 1 --backend mlx --data '/d x/p.jsonl' "
                    "--base b1 --set rank=8")
