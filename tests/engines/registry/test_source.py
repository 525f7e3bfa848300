"""Candidates from real runs: best vs last, what the run recorded, forged sidecars, folders.
(The reproduction command a candidate carries is tested by running it: test_repro.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainledger.engines.registry.source import candidate_from_path, candidate_from_run
from trainledger.engines.registry.types import RegistryError, RegistryUsageError
from trainledger.engines.workspace import Workspace, init_workspace


def _train(ws: Workspace, *args: str, module: str = "trainledger.console.cli") -> None:
    head = [sys.executable, "-m", module] + (["train"] if module == "trainledger.console.cli" else [])
    subprocess.run([*head, *args, "--workspace", str(ws.root)], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("source") / "ws")
    _train(ws, "lvm-gru", "--epochs", "3", "--seed", "3", "--run-id", "r1", "--lr", "0.002")
    # β jumps and the LR halves at epoch 1: val/loss is worse after it, so best (1) != last (2)
    _train(ws, "ternary-vae", "--epochs", "2", "--phase-epoch", "1", "--run-id", "vae",
           module="trainledger.engines.training")  # fmt: skip
    return ws


def _sidecar(ws: Workspace, run_id: str, tag: str) -> dict:  # type: ignore[type-arg]
    return json.loads((ws.run_dir(run_id) / "checkpoints" / f"{tag}.json").read_text())


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


def test_a_real_run_whose_best_was_not_its_last(trained: Workspace) -> None:
    best_side, last_side = _sidecar(trained, "vae", "best"), _sidecar(trained, "vae", "last")
    assert (best_side["epoch"], last_side["epoch"]) == (1, 2) and best_side["step"] < last_side["step"]
    best = candidate_from_run(trained, "vae")
    assert (best.is_best, best.is_last, best.epoch, best.last_epoch) == (True, False, 1, 2)
    assert best.step == best_side["step"]
    assert best.source == "run vae, checkpoint best (epoch 1 of 2)"
    assert best.files[0].path.name == "best.safetensors" and best.files[0].sha256 == best_side["sha256"]
    assert best.metrics == pytest.approx(best_side["metrics"]) and best.metrics
    last = candidate_from_run(trained, "vae", "last")
    assert (last.is_best, last.is_last, last.epoch, last.last_epoch) == (False, True, 2, 2)
    assert last.files[0].path.name == "last.safetensors" and last.files[0].sha256 == last_side["sha256"]
    assert last.source == "run vae, checkpoint last (epoch 2 of 2)"
    # no data file: generated in memory, so only its sha256; no task_options, yet a command
    assert best.dataset_path is None and best.dataset_sha256
    assert best.reproduce is not None and best.reproduce.endswith("--set phase_epoch=1")


def test_last_is_the_best_when_their_steps_agree(trained: Workspace) -> None:
    assert _sidecar(trained, "r1", "best")["step"] == _sidecar(trained, "r1", "last")["step"]
    last = candidate_from_run(trained, "r1", "last")
    assert (last.is_best, last.is_last, last.checkpoint) == (True, True, "last")
    assert last.reproduce is not None and last.reproduce.startswith("trainledger train lvm-gru --seed 3 ")


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


def test_a_lora_run_registers_its_adapter_checkpoint_and_names_its_base(trained: Workspace, tmp_path: Path) -> None:
    """A lora-lm checkpoint is the adapters alone (lora.py keeps the base out of state_dict): one
    file, the base named, not copied. The adapters files of the run folder are not added."""
    ws = init_workspace(tmp_path / "ws")
    folder = ws.runs_dir / "lora" / "checkpoints"
    folder.mkdir(parents=True)
    side = _sidecar(trained, "r1", "best")
    (folder / "best.json").write_text(json.dumps({**side, "model": "lora-lm"}))
    (folder / side["file"]).write_bytes((trained.run_dir("r1") / "checkpoints" / side["file"]).read_bytes())
    for name in ("adapters.safetensors", "adapters.json"):
        (ws.run_dir("lora") / name).write_text("{}")
    run = {"id": "lora", "model": "lora-lm", "backend": "torch", "status": "running",
           "config": {"epochs": 1, "n_train": 282}, "summary": {"epoch": side["epoch"]},
           "task_options": {"data": None, "seed": 0, "set": {"rank": 2}, "base": "base"},
           "data": {"path": "/w/datasets/lm-base/pool.jsonl", "sha256": "ab" * 32}}  # fmt: skip
    (ws.run_dir("lora") / "run.json").write_text(json.dumps(run))
    c = candidate_from_run(ws, "lora")
    assert [f.name for f in c.files] == ["model.safetensors"] and c.files[0].path == folder / side["file"]
    assert (c.kind, c.base_model, c.training_samples, c.backend) == ("lora-lm", "base", 282, "torch")
    assert (c.dataset_path, c.dataset_sha256) == ("/w/datasets/lm-base/pool.jsonl", "ab" * 32)
    assert c.reproduce is not None and "--base base --set rank=2" in c.reproduce
    assert c.source.endswith(", still running)")  # a running run's best so far is allowed


def test_unreadable_run_files_are_refusals(trained: Workspace, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    (ws.runs_dir / "norun").mkdir()
    with pytest.raises(RegistryError, match="no run.json"):
        candidate_from_run(ws, "norun")
    (ws.runs_dir / "fifo").mkdir()
    os.mkfifo(ws.run_dir("fifo") / "run.json")
    with pytest.raises(RegistryError, match="unreadable"):  # refused at once, not waited on
        candidate_from_run(ws, "fifo")
    (ws.runs_dir / "torn" / "checkpoints").mkdir(parents=True)
    (ws.run_dir("torn") / "run.json").write_text(json.dumps({"model": "lvm-gru"}))
    (ws.run_dir("torn") / "checkpoints" / "best.json").write_text("{not json")
    with pytest.raises(RegistryError, match="unreadable best checkpoint sidecar"):
        candidate_from_run(ws, "torn")
    imported = {"id": "tb", "model": None, "source": {"kind": "tensorboard"}}
    (ws.runs_dir / "tb").mkdir()
    (ws.run_dir("tb") / "run.json").write_text(json.dumps(imported))
    with pytest.raises(RegistryError, match="run tb has no best checkpoint"):
        candidate_from_run(ws, "tb")
    (ws.runs_dir / "onlybest" / "checkpoints").mkdir(parents=True)
    for name in ("run.json", "checkpoints/best.json", "checkpoints/best.safetensors"):
        (ws.run_dir("onlybest") / name).write_bytes((trained.run_dir("r1") / name).read_bytes())
    with pytest.raises(RegistryError, match=r"run onlybest has no last checkpoint \(its checkpoints: best\)"):
        candidate_from_run(ws, "onlybest", "last")
    assert candidate_from_run(ws, "onlybest").is_best is True


def test_folder_links_to_folders_and_hidden_files(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "w.npz").write_bytes(b"x")
    (folder / ".DS_Store").write_bytes(b"x")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    os.symlink(folder / "inner", folder / "again")  # inside: skipped, its files are listed once
    c = candidate_from_path(folder)
    assert [f.name for f in c.files] == ["inner/w.npz"] and c.kind is None and c.run_id is None
    assert all(f.sha256 is None for f in c.files) and c.source == str(folder.resolve())
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", folder / "out")
    with pytest.raises(RegistryUsageError, match="link out"):
        candidate_from_path(folder)
    (folder / "out").unlink()
    (folder / "bad name!.json").write_text("{}")
    with pytest.raises(RegistryUsageError, match="invalid file name"):
        candidate_from_path(folder)
    (folder / "bad name!.json").unlink()
    (folder / "model.safetensors").write_text("{}")
    with pytest.raises(RegistryUsageError, match="not a folder"):
        candidate_from_path(folder / "model.safetensors")
