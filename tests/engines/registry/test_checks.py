"""The deploy checks on real runs: file checks (no torch) and the load-and-probe with the kind's code."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from trainledger.engines.registry import probe, sanity
from trainledger.engines.registry.source import candidate_from_run
from trainledger.engines.registry.types import Candidate, SourceFile
from trainledger.engines.workspace import Workspace, init_workspace


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("checks") / "ws")
    cmd = [sys.executable, "-m", "trainledger.console.cli", "train", "lvm-gru", "--epochs", "2",
           "--run-id", "r1", "--workspace", str(ws.root)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return ws


def _by_name(checks: list) -> dict:  # type: ignore[type-arg]
    return {c.name: c for c in checks}


def _with_weights(c: Candidate, path: Path) -> Candidate:
    return replace(c, files=(SourceFile("model.safetensors", path, None),))


def test_a_good_run_passes_every_check(trained: Workspace) -> None:
    c = candidate_from_run(trained, "r1")
    checks = sanity.file_checks(c) + probe.load_and_probe(trained, c)
    assert all(ch.ok and not ch.skipped for ch in checks), checks
    assert {"files", "format", "size", "sha256", "weights", "loads", "probe"} <= set(_by_name(checks))


def test_a_changed_byte_fails_the_sha256_check(trained: Workspace, tmp_path: Path) -> None:
    c = candidate_from_run(trained, "r1")
    copy = tmp_path / "m.safetensors"
    data = bytearray(c.files[0].path.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    checks = _by_name(sanity.file_checks(replace(c, files=(replace(c.files[0], path=copy),))))
    assert not checks["sha256"].ok


def test_nan_weights_and_foreign_tensors_fail(trained: Workspace, tmp_path: Path) -> None:
    c = candidate_from_run(trained, "r1")
    tensors = load_file(str(c.files[0].path))
    nan = {k: v.copy() for k, v in tensors.items()}
    first = next(k for k, v in nan.items() if v.dtype.kind == "f")
    nan[first].flat[0] = np.nan
    save_file(nan, str(tmp_path / "nan.safetensors"))
    bad = _with_weights(c, tmp_path / "nan.safetensors")
    assert not _by_name(sanity.file_checks(bad))["weights"].ok
    assert not _by_name(probe.load_and_probe(trained, bad))["probe"].ok
    save_file({"other": np.ones(4, np.float32)}, str(tmp_path / "wrong.safetensors"))
    assert not _by_name(probe.load_and_probe(trained, _with_weights(c, tmp_path / "wrong.safetensors")))["loads"].ok


def test_formats_sizes_and_fifos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.pt").write_bytes(b"\x80\x04pickle")
    pickled = Candidate(kind="lvm-gru", files=(SourceFile("model.pt", tmp_path / "model.pt"),), source="t")
    assert not _by_name(sanity.file_checks(pickled))["format"].ok
    save_file({"w": np.ones((64, 64), np.float32)}, str(tmp_path / "a.safetensors"))
    files = (SourceFile("a.safetensors", tmp_path / "a.safetensors"),)
    small = Candidate(kind="lora-adapters", files=files, source="t")
    size = _by_name(sanity.file_checks(small))["size"]
    assert not size.ok and "1,048,576" in size.detail  # seed 004's 1 MB floor for adapter folders
    monkeypatch.setitem(sanity.SIZE_RANGES, "lora-adapters", (1, 1 << 30))
    assert _by_name(sanity.file_checks(small))["size"].ok
    (tmp_path / "not.safetensors").write_bytes(b"\xff" * 2048)
    junk = Candidate(kind=None, files=(SourceFile("not.safetensors", tmp_path / "not.safetensors"),), source="t")
    assert not _by_name(sanity.file_checks(junk))["weights"].ok
    os.mkfifo(tmp_path / "fifo.safetensors")
    fifo = Candidate(kind=None, files=(SourceFile("fifo.safetensors", tmp_path / "fifo.safetensors"),), source="t")
    assert not _by_name(sanity.file_checks(fifo))["files"].ok  # refused at once, not waited on


def test_folders_and_mlx_runs_are_skipped_not_failed(trained: Workspace, tmp_path: Path) -> None:
    folder = Candidate(kind=None, files=(), source="t")
    assert all(c.skipped and c.ok for c in probe.load_and_probe(trained, folder))
    mlx = replace(candidate_from_run(trained, "r1"), backend="mlx")
    assert all(c.skipped for c in probe.load_and_probe(trained, mlx))
