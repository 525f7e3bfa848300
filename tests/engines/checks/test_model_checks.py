"""The model checks on runs made by the real trainer (tiny), loaded as a port loads them.

One workspace per module:
- `tv`: the ternary VAE, 1 epoch; `zeroed`: a copy of it whose best checkpoint has every
  weight set to 0 (written with safetensors.numpy, its sidecar's sha256/bytes updated so it
  loads): the latent mean is the same for every input.
- `san`: SAN on its demo capture, 1 epoch.
- `lm`: lm-base, 1 epoch, d_model 16, 1 layer (its greedy text is whatever it is).
- `vq`: the vocabulary, 2 epochs on its demo features; `vqdead`: a copy with every centroid
  zeroed (L2-normalised features are then equally far from all: everything is token 0).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainledger.engines.checks.model_checks import text_failures, text_figures
from trainledger.engines.checks.runner import run_checks
from trainledger.engines.provenance.subject import resolve
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow


def train(root: Path, run_id: str, model: str, *args: str) -> None:
    from trainledger.engines.training.cli import main

    assert main([model, "--workspace", str(root), "--run-id", run_id, *args]) == 0


def zero_checkpoint(run_dir: Path) -> None:
    from safetensors.numpy import load_file, save_file

    weights, sidecar = run_dir / "checkpoints/best.safetensors", run_dir / "checkpoints/best.json"
    save_file({k: np.zeros_like(v) for k, v in load_file(str(weights)).items()}, str(weights))
    data = weights.read_bytes()
    meta = json.loads(sidecar.read_text())
    meta.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    sidecar.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("model_checks") / "ws"
    init_workspace(root)
    train(root, "tv", "ternary-vae", "--epochs", "1", "--batch-size", "512", "--set", "prior_samples=2048")
    train(root, "san", "san", "--epochs", "1")
    train(root, "lm", "lm-base", "--epochs", "1", "--set", "d_model=16", "--set", "n_layers=1")
    train(root, "vq", "vocab", "--epochs", "2")
    for src, dst in (("tv", "zeroed"), ("vq", "vqdead")):
        shutil.copytree(root / "runs" / src, root / "runs" / dst)
        run = json.loads((root / "runs" / dst / "run.json").read_text())
        run["run_id"] = dst
        (root / "runs" / dst / "run.json").write_text(json.dumps(run))
        zero_checkpoint(root / "runs" / dst)
    return Workspace(root)


def one(ws: Workspace, subject: str, name: str):
    [result] = run_checks(ws, resolve(ws, subject), only=name)
    return result


def test_a_trained_run_has_varying_outputs_and_a_latency(ws: Workspace) -> None:
    flat = one(ws, "tv", "non_flat_output")
    assert flat.ok is True, flat.reason
    assert flat.figure >= 1e-6 and "latent" in flat.details["std_by_head"]
    assert "runs/tv/checkpoints/best.safetensors" in flat.evidence
    lat = one(ws, "tv", "latency")
    assert lat.ok is True
    assert 0 < lat.figure["p50_ms"] <= lat.figure["p95_ms"] <= lat.figure["p99_ms"]
    assert "no threshold" in lat.reason


def test_zeroed_weights_are_flat(ws: Workspace) -> None:
    result = one(ws, "zeroed", "non_flat_output")
    assert result.ok is False, result.reason
    assert result.figure < 1e-6 and "flat" in result.reason


def test_a_checkpoint_that_differs_from_its_sidecar_fails_to_load(ws: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(ws.root, root)
    sidecar = root / "runs/tv/checkpoints/best.json"
    meta = json.loads(sidecar.read_text())
    meta["sha256"] = "0" * 64
    sidecar.write_text(json.dumps(meta))
    result = one(Workspace(root), "tv", "non_flat_output")
    assert result.ok is False and "sha256" in result.reason
    (root / "runs/tv/checkpoints/best.safetensors").unlink()
    assert one(Workspace(root), "tv", "latency").ok is None


def test_text_figures() -> None:
    looping = text_figures(["the cat sat the cat sat the cat sat the cat sat", "no no no no no no"])
    assert looping["bigram_repetition"] > 0.25 and looping["repetition_rate"] >= 0.05
    assert text_failures(looping)
    varied = text_figures(["The quick brown fox jumps over the lazy dog near a river bank.",
                           "Seven wizards quietly judged my box of exotic jams, then left."])  # fmt: skip
    assert varied["repetition_rate"] == 0.0 and varied["bigram_repetition"] == 0.0
    assert varied["entropy_bits"] > 2.8
    assert text_failures(varied) == []
    assert text_figures(["aaaa aaaa"])["entropy_bits"] < 2.8  # one character: 0 bits
    assert text_figures([]) == {"repetition_rate": 0.0, "bigram_repetition": 0.0, "entropy_bits": 0.0}


def test_generated_text_on_a_tiny_lm(ws: Workspace) -> None:
    result = one(ws, "lm", "generated_text")
    assert result.ok in (True, False)
    assert set(result.figure) == {"repetition_rate", "bigram_repetition", "entropy_bits"}
    assert len(result.details["samples"]) == 8
    assert result.ok == (text_failures(result.figure) == [])
    assert one(ws, "lm", "non_flat_output").ok is True
    skipped = one(ws, "tv", "generated_text")
    assert skipped.ok is None and "lm-base" in skipped.reason


def test_san_load_count_and_mix_factor(ws: Workspace) -> None:
    count = one(ws, "san", "load_count")
    assert count.ok is True, count.reason
    assert count.figure == count.details["total_params"] > 0
    mix = one(ws, "san", "mix_factor")
    assert mix.ok is True, mix.reason
    assert mix.figure["0.0"] == 0.0 and mix.figure["1.0"] > mix.figure["0.5"] > 0
    assert one(ws, "san", "non_flat_output").ok is True
    assert one(ws, "tv", "mix_factor").ok is None  # not a SAN: skipped when asked by name


def test_vocabulary_recounts_the_tokens_over_the_training_data(ws: Workspace) -> None:
    result = one(ws, "vq", "vocabulary")
    assert result.ok is True, result.reason
    fig = result.figure
    assert fig["k"] == 64 and fig["active"] >= 0.9 * 64 and fig["ceiling_bits"] == 6.0
    assert 0.75 * 6 <= fig["entropy_bits"] <= 6.0
    assert sum(result.details["counts"]) == result.details["rows"] == 8000
    logged = result.details["logged"]  # what training logged on its validation rows, beside it
    assert logged is not None and logged["tokens/active"] >= 1
    assert any(e.endswith("vocab-demo-seed0.npz") for e in result.evidence)
    assert "runs/vq/checkpoints/best.safetensors" in result.evidence


def test_a_collapsed_vocabulary_fails_on_tokens_and_entropy(ws: Workspace) -> None:
    result = one(ws, "vqdead", "vocabulary")
    assert result.ok is False, result.reason
    assert result.figure["active"] == 1 and result.figure["entropy_bits"] == 0.0
    assert "1 of 64 tokens used" in result.reason and "entropy 0.00 bits" in result.reason


def test_vocabulary_with_data_of_the_wrong_width_fails(ws: Workspace, tmp_path: Path) -> None:
    np.savez(tmp_path / "narrow.npz", features=np.ones((10, 3), dtype=np.float32))
    [result] = run_checks(ws, resolve(ws, "vq"), only="vocabulary", options={"data": str(tmp_path / "narrow.npz")})
    assert result.ok is False and "3 dims" in result.reason


def test_active_latent_dims(ws: Workspace) -> None:
    trained = one(ws, "tv", "active_latent_dims")
    assert trained.ok in (True, False)  # one epoch: whatever it learnt, but counted over every operation
    assert trained.figure["dims"] == 16 and trained.details["operations"] == 3**9
    var = trained.details["variance_by_dim"]
    assert trained.figure["active"] == sum(1 for v in var if v > 0.01)
    assert trained.ok == (trained.figure["active"] >= 8)
    collapsed = one(ws, "zeroed", "active_latent_dims")
    assert collapsed.ok is False and collapsed.figure["active"] == 0
    assert collapsed.figure["max_var"] == 0.0 and "posterior collapse" in collapsed.reason
    assert one(ws, "vq", "active_latent_dims").ok is None  # not a VAE: skipped when asked by name
