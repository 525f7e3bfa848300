"""The LVM next-vector models: real (tiny) training runs on the generated demo set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.engines.conftest import jsonl
from trainledger.engines.training.datasets import DatasetError, write_npz
from trainledger.engines.training.loop import LoopConfig, StopFlag, Trainer
from trainledger.engines.training.lvm import LVMTask, generate, load
from trainledger.engines.training.models import TaskOptions, load_builder
from trainledger.engines.workspace import Workspace, read_run_info

pytestmark = pytest.mark.slow


def small(seed: int = 0) -> dict[str, np.ndarray]:
    return generate(seed, n_docs=30, doc_len=25, dim=32)


@pytest.mark.parametrize("model", ["lvm-amn", "lvm-gru", "lvm-lstm", "lvm-transformer"])
def test_each_architecture_trains_on_its_demo_set(ws: Workspace, model: str) -> None:
    task = load_builder(model)(TaskOptions(ws, seed=0))
    assert task.model_name == model and task.data_path is not None and task.data_path.exists()
    cfg = LoopConfig(epochs=2, batch_size=128, lr=3e-3, log_every=5, patience=0)
    result = Trainer(task, cfg, ws, run_id=model, stop=StopFlag()).run()
    assert result is not None and result.status == "finished" and result.epochs_done == 2
    info = read_run_info(result.run_dir)
    assert (info.status, info.model, info.primary_metric) == ("finished", model, "val/cosine")
    assert info.config["split"].startswith("by doc_ids") and info.config["loss"]["infonce_weight"] == 0.0
    vals = [r for r in jsonl(result.run_dir / "metrics.jsonl") if "val/loss" in r]
    assert len(vals) == 3  # the eval_at_start row and one per epoch
    assert vals[-1]["val/loss"] < 0.5 * vals[0]["val/loss"]
    assert vals[-1]["val/cosine"] > vals[0]["val/cosine"] and vals[-1]["val/cosine"] > 0.9
    assert (result.run_dir / "checkpoints" / "best.safetensors").exists()


def test_split_keeps_every_document_on_one_side() -> None:
    arrays = small()
    task = LVMTask("gru", arrays, seed=1)
    assert task.n_docs[0] > 0 and task.n_docs[1] > 0
    assert task.train.shape[0] + task.val.shape[0] == arrays["doc_ids"].shape[0]
    train_targets = {tuple(v) for v in task.train[:, -1].numpy().round(5).tolist()}
    assert not any(tuple(v) in train_targets for v in task.val[:, -1].numpy().round(5).tolist())


def test_infonce_term_is_weighted_and_returned_beside_mse() -> None:
    arrays = small()
    off = LVMTask("amn", arrays, seed=0)
    on = LVMTask("amn", arrays, seed=0, infonce_weight=0.5)
    torch.manual_seed(0)
    model = on.build_model()
    batch = on.train[:64]
    parts = on.loss(model, batch, on.schedule(0.0))
    assert set(parts) == {"loss", "term/mse", "term/infonce"}
    assert torch.allclose(parts["loss"], parts["term/mse"] + parts["term/infonce"])
    # the seed's dominance: InfoNCE's weighted term dwarfs MSE's on unit vectors
    assert parts["term/infonce"] > 10 * parts["term/mse"]
    plain = off.loss(model, batch, off.schedule(0.0))
    assert set(plain) == {"loss", "term/mse"} and torch.allclose(plain["term/mse"], parts["term/mse"])
    assert "val/infonce" in on.evaluate(model, on.schedule(0.0))


def test_infonce_weight_comes_from_options(ws: Workspace) -> None:
    task = load_builder("lvm-amn")(TaskOptions(ws, seed=0, extra={"infonce_weight": 0.05}))
    assert task.infonce_weight == 0.05 and task.config()["loss"]["infonce_weight"] == 0.05


def test_generated_dataset_is_deterministic(ws: Workspace, tmp_path: Path) -> None:
    a, b, c = small(3), small(3), small(4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["target_vectors"], c["target_vectors"])
    assert a["context_vectors"].shape == (30 * 20, 5, 32) and a["doc_ids"].shape == (600,)
    assert np.allclose(np.linalg.norm(a["target_vectors"], axis=1), 1.0, atol=1e-5)
    first = load_builder("lvm-gru")(TaskOptions(ws, seed=2)).data_path.read_bytes()
    again = load_builder("lvm-lstm")(TaskOptions(ws, seed=2)).data_path.read_bytes()
    assert first == again  # same seed, same bytes (and sha256)


def test_bad_npz_names_the_key(tmp_path: Path) -> None:
    arrays = small()
    missing = tmp_path / "missing.npz"
    write_npz(missing, {k: v for k, v in arrays.items() if k != "doc_ids"})
    with pytest.raises(DatasetError, match="'doc_ids'"):
        load(missing)
    shape = tmp_path / "shape.npz"
    write_npz(shape, {**arrays, "target_vectors": arrays["target_vectors"][:, :10]})
    with pytest.raises(DatasetError, match="'target_vectors'"):
        load(shape)
    nan = tmp_path / "nan.npz"
    ctx = arrays["context_vectors"].copy()
    ctx[3, 2, 1] = np.nan
    write_npz(nan, {**arrays, "context_vectors": ctx})
    with pytest.raises(DatasetError, match="'context_vectors' has 1 non-finite"):
        load(nan)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="garbage.npz"):
        load(garbage)


def test_user_npz_is_trained_on_and_recorded(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    np.savez(path, **small())
    task = load_builder("lvm-transformer")(TaskOptions(ws, data=path, seed=0))
    assert task.data_path == path and task.dim == 32 and task.config()["data_path"] == str(path)


def test_unknown_setting_is_refused(ws: Workspace) -> None:
    with pytest.raises(ValueError, match="lvm-gru has no setting 'k'; settings: infonce_weight"):
        load_builder("lvm-gru")(TaskOptions(ws, seed=0, extra={"k": 3, "set": {"k": 3}}))
