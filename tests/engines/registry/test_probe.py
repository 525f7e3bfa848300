"""Load-and-probe (probe.py) on real tiny runs: the kind's own code loads the weights strictly and
one training batch through them must give finite, non-flat output."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import safetensors.torch
import torch

from tests.engines.registry.test_sanity import checkpoint_candidate
from trainledger.engines.registry import probe
from trainledger.engines.registry.types import Candidate, Check, SourceFile
from trainledger.engines.workspace import Workspace, init_workspace


def train(ws: Workspace, *args: str) -> None:
    cmd = [sys.executable, "-m", "trainledger", "train", *args, "--workspace", str(ws.root)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("probe") / "ws")
    train(ws, "lvm-gru", "--epochs", "2", "--run-id", "r1")
    return ws


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def with_tensors(c: Candidate, tensors: dict[str, torch.Tensor], path: Path) -> Candidate:
    safetensors.torch.save_file(tensors, str(path))
    return replace(c, files=(SourceFile("model.safetensors", path),))


def tree(root: Path) -> dict[str, str]:
    """Every path under `root` and its content (a sha256; folders ""). The lvm builder rewrites its
    demo dataset with the same bytes, so the content is compared, not the mtime."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            for p in root.rglob("*")}  # fmt: skip


def test_a_good_run_loads_and_probes_and_writes_nothing(ws: Workspace) -> None:
    before = tree(ws.root)
    checks = probe.load_and_probe(ws, checkpoint_candidate(ws.run_dir("r1")))
    assert [c.name for c in checks] == ["loads", "probe"]
    assert all(c.ok and not c.skipped for c in checks), checks
    loads, probed = checks
    assert "parameters" in loads.detail and "(strict)" in loads.detail
    assert "output " in probed.detail and "std " in probed.detail
    assert tree(ws.root) == before  # the demo dataset is reused, nothing else is written


def test_a_candidate_from_source_passes_every_deploy_check(ws: Workspace) -> None:
    from trainledger.engines.registry import sanity
    from trainledger.engines.registry.source import candidate_from_run

    c = candidate_from_run(ws, "r1")
    checks = sanity.file_checks(c) + probe.load_and_probe(ws, c)
    assert [x.name for x in checks] == ["files", "format", "size", "sha256", "weights", "loads", "probe"]
    assert all(x.ok and not x.skipped for x in checks), checks


def test_a_nan_weight_fails_the_probe(ws: Workspace, tmp_path: Path) -> None:
    c = checkpoint_candidate(ws.run_dir("r1"))
    tensors = safetensors.torch.load_file(str(c.files[0].path))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.dim() == 2)
    tensors[name] = tensors[name].clone()
    tensors[name].fill_(float("nan"))
    checks = by_name(probe.load_and_probe(ws, with_tensors(c, tensors, tmp_path / "nan.safetensors")))
    assert checks["loads"].ok
    assert not checks["probe"].ok and "non-finite" in checks["probe"].detail


def zeroed(c: Candidate, path: Path) -> Candidate:
    zeros = {k: torch.zeros_like(v) for k, v in safetensors.torch.load_file(str(c.files[0].path)).items()}
    return with_tensors(c, zeros, path)


def test_a_zeroed_model_fails_the_probe(ws: Workspace, tmp_path: Path) -> None:
    """lvm-gru adds its output to the context's last frame, so a zeroed one still varies: it fails
    because every loaded value is 0 (a flat output is the lm-base case below)."""
    checks = by_name(
        probe.load_and_probe(ws, zeroed(checkpoint_candidate(ws.run_dir("r1")), tmp_path / "z.safetensors"))
    )
    assert checks["loads"].ok
    assert not checks["probe"].ok and "are 0" in checks["probe"].detail


def test_foreign_or_missing_tensors_do_not_load(ws: Workspace, tmp_path: Path) -> None:
    c = checkpoint_candidate(ws.run_dir("r1"))
    foreign = by_name(probe.load_and_probe(ws, with_tensors(c, {"other": torch.ones(4)}, tmp_path / "x.safetensors")))
    assert not foreign["loads"].ok and "other" in foreign["loads"].detail
    assert foreign["probe"].skipped and "did not load" in foreign["probe"].detail
    tensors = safetensors.torch.load_file(str(c.files[0].path))
    tensors.pop(next(iter(tensors)))
    assert not by_name(probe.load_and_probe(ws, with_tensors(c, tensors, tmp_path / "y.safetensors")))["loads"].ok


def test_a_fifo_or_a_missing_run_fails_without_blocking(ws: Workspace, tmp_path: Path) -> None:
    c = checkpoint_candidate(ws.run_dir("r1"))
    os.mkfifo(tmp_path / "fifo.safetensors")
    fifo = replace(c, files=(SourceFile("model.safetensors", tmp_path / "fifo.safetensors"),))
    result: list[list[Check]] = []
    worker = threading.Thread(target=lambda: result.append(probe.load_and_probe(ws, fifo)), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "load_and_probe blocked on a FIFO"
    assert not by_name(result[0])["loads"].ok
    assert not by_name(probe.load_and_probe(ws, replace(c, run_id="gone")))["loads"].ok


def test_folders_and_mlx_runs_are_skipped_not_failed(ws: Workspace, tmp_path: Path) -> None:
    folder = Candidate(kind=None, files=(SourceFile("a.safetensors", tmp_path / "a.safetensors"),), source="t")
    mlx = replace(checkpoint_candidate(ws.run_dir("r1")), backend="mlx")
    for c in (folder, mlx):
        checks = probe.load_and_probe(ws, c)
        assert [x.name for x in checks] == ["loads", "probe"]
        assert all(x.ok and x.skipped and x.detail for x in checks), checks


def test_lora_lm_probes_with_autograd_and_a_zeroed_lm_is_flat(ws: Workspace, tmp_path: Path) -> None:
    """lora-lm's loss takes its own gradients (torch.autograd.grad), so it runs with grad enabled."""
    train(ws, "lm-base", "--epochs", "1", "--run-id", "base")
    train(ws, "lora-lm", "--base", "base", "--epochs", "1", "--run-id", "lora")
    before = tree(ws.root)
    checks = by_name(probe.load_and_probe(ws, checkpoint_candidate(ws.run_dir("lora"), kind="lora-lm")))
    assert checks["loads"].ok and checks["probe"].ok, checks
    assert tree(ws.root) == before
    flat = by_name(probe.load_and_probe(ws, zeroed(checkpoint_candidate(ws.run_dir("base"), kind="lm-base"),
                                                   tmp_path / "z.safetensors")))  # fmt: skip
    assert flat["loads"].ok and not flat["probe"].ok and "(flat)" in flat["probe"].detail
