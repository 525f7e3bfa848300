"""The gesture vocabulary: minibatch k-means of L2-normalised features, through the loop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.engines.conftest import jsonl
from trainledger.engines.training.datasets import DatasetError
from trainledger.engines.training.loop import LoopConfig, StopFlag, Trainer
from trainledger.engines.training.models import TaskOptions, load_builder
from trainledger.engines.training.vocab import (
    Quantizer,
    VocabTask,
    entropy_bits,
    generate,
    load,
)
from trainledger.engines.workspace import Workspace, read_run_info

pytestmark = pytest.mark.slow


def test_vocab_trains_to_a_full_vocabulary(ws: Workspace) -> None:
    task = load_builder("vocab")(TaskOptions(ws, seed=0))
    assert task.data_path is not None and task.data_path.exists() and task.k == 64
    cfg = LoopConfig(epochs=3, batch_size=256, lr=1e-2, log_every=5, patience=0)
    result = Trainer(task, cfg, ws, run_id="vocab", stop=StopFlag()).run()
    assert result is not None and result.status == "finished" and result.epochs_done == 3
    info = read_run_info(result.run_dir)
    assert (info.status, info.model, info.primary_metric) == ("finished", "vocab", "val/inertia")
    assert info.config["normalization"] == "l2" and info.config["k"] == 64
    vals = [r for r in jsonl(result.run_dir / "metrics.jsonl") if "val/inertia" in r]
    assert len(vals) == 4
    assert vals[-1]["val/inertia"] < 0.6 * vals[0]["val/inertia"]
    assert vals[-1]["tokens/active"] >= 60 and 5.5 < vals[-1]["tokens/entropy_bits"] <= 6.0
    assert any("train/loss" in r for r in jsonl(result.run_dir / "metrics.jsonl"))
    assert (result.run_dir / "checkpoints" / "best.safetensors").exists()


def test_k_from_options_and_entropy_ceiling(ws: Workspace) -> None:
    task = load_builder("vocab")(TaskOptions(ws, seed=0, extra={"k": 16}))
    assert task.k == 16 and task.config()["entropy_ceiling_bits"] == 4.0
    assert entropy_bits(torch.arange(64), 64) == pytest.approx(math.log2(64))
    assert entropy_bits(torch.zeros(10, dtype=torch.long), 64) == 0.0


def test_dead_centroids_are_reseeded() -> None:
    task = VocabTask(generate(0, n=2000)["features"], seed=0, k=8)
    far = torch.full((8, 32), 10.0)  # every centroid far away; only one will win vectors
    far[0] = 0.0
    model = Quantizer(far)
    batches = task.train_batches(64, torch.Generator().manual_seed(0))
    for batch in batches[:20]:  # the 20th step re-seeds
        task.loss(model, batch, task.schedule(0.0))
    assert task.reseeded == 7
    assert (model.centroids[1:].norm(dim=1) < 1.5).all()  # moved onto (unit) data vectors


def test_generated_dataset_is_deterministic(ws: Workspace) -> None:
    a, b, c = generate(5), generate(5), generate(6)
    assert a["features"].shape == (8000, 32) and np.array_equal(a["features"], b["features"])
    assert not np.array_equal(a["features"], c["features"])
    first = load_builder("vocab")(TaskOptions(ws, seed=1)).data_path.read_bytes()
    assert load_builder("vocab")(TaskOptions(ws, seed=1)).data_path.read_bytes() == first


def test_npy_and_bad_files(tmp_path: Path, ws: Workspace) -> None:
    feats = generate(0, n=500)["features"]
    npy = tmp_path / "f.npy"
    np.save(npy, feats)
    assert load(npy).shape == (500, 32)
    task = load_builder("vocab")(TaskOptions(ws, data=npy, seed=0, extra={"k": 8}))
    assert task.data_path == npy and task.train.shape[0] + task.val.shape[0] == 500
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, feats=feats)
    with pytest.raises(DatasetError, match="missing key 'features'"):
        load(wrong)
    nan = tmp_path / "nan.npy"
    feats[0, 0] = np.inf
    np.save(nan, feats)
    with pytest.raises(DatasetError, match="'features' has 1 non-finite"):
        load(nan)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros(10, dtype=np.float32))
    with pytest.raises(DatasetError, match=r"\[N, dim\]"):
        load(flat)
    with pytest.raises(DatasetError, match="need at least"):
        VocabTask(generate(0, n=50)["features"], seed=0, k=64)
