"""The log and data checks on runs made by the real trainer (tiny: 1-2 epochs, seconds in all).

One workspace per module, never changed by a test:
- `dom`: lvm-amn with InfoNCE on at full weight and MSE at 0.05 (seed 003's failed attempts):
  the trainer logs grad norms and loss_dominance events; `bal` weighs them within 10x.
- `phase`: the ternary VAE with its β/LR phase change after epoch 1 (seed 002 in miniature):
  best epoch 1, last epoch 2 with a higher val/loss; β jumps to 0.6 and the LR halves; its
  coverage is counted in batches of 256, so the sampling figure counts duplicates.
- `smooth`: the ternary VAE without the phase change, coverage counted in one batch.
- `lm`: lm-base on its demo pool of 300 samples.
Versions `tvae@last` and `tvae@best` are `phase`'s checkpoints deployed to the registry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainledger.engines.checks.runner import run_checks
from trainledger.engines.provenance.subject import resolve
from trainledger.engines.training import datapool
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow

TINY_TERNARY = ["--epochs", "2", "--batch-size", "512", "--set", "prior_samples=2048"]
LVM = ["--epochs", "1", "--set", "balance_every=5", "--set", "log_every=5"]


def train(root: Path, run_id: str, model: str, *args: str) -> None:
    from trainledger.engines.training.cli import main

    assert main([model, "--workspace", str(root), "--run-id", run_id, *args]) == 0


def deploy(root: Path, model: str, run_id: str, checkpoint: str, version: str) -> None:
    from trainledger.engines.registry.cli import main

    assert main(["deploy", model, "--run", run_id, "--checkpoint", checkpoint, "--version", version,
                 "--no-probe", "--reason", "test", "--workspace", str(root)]) == 0  # fmt: skip


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("checks") / "ws"
    init_workspace(root)
    train(root, "dom", "lvm-amn", *LVM, "--set", "infonce_weight=1.0", "--set", "mse_weight=0.05")
    train(root, "bal", "lvm-amn", *LVM, "--set", "infonce_weight=0.1", "--set", "mse_weight=1.0")
    train(root, "phase", "ternary-vae", *TINY_TERNARY, "--set", "phase_epoch=1", "--set", "sample_batch=256")
    train(root, "smooth", "ternary-vae", *TINY_TERNARY, "--set", "phase_epoch=-1", "--set", "sample_batch=4096")
    train(root, "lm", "lm-base", "--epochs", "1", "--set", "d_model=16", "--set", "n_layers=1")
    deploy(root, "tvae", "phase", "last", "last")
    deploy(root, "tvae", "phase", "best", "best")
    return Workspace(root)


def one(ws: Workspace, subject: str, name: str, **options: object):
    results = run_checks(ws, resolve(ws, subject), only=name, options=options)
    assert len(results) == 1 and results[0].name == name
    return results[0]


# --------------------------------------------------------------------------- loss_dominance
def test_loss_dominance_fails_when_one_term_dominates(ws: Workspace) -> None:
    r = one(ws, "dom", "loss_dominance")
    assert r.ok is False
    assert r.figure["dominant"] == "infonce" and r.figure["dominated"] == "mse"
    assert r.figure["ratio"] >= 10
    assert r.details["dominance_events"] >= 1  # the trainer's own events were read
    assert "10x dominance factor" in r.reason
    assert r.evidence == ("runs/dom/metrics.jsonl", "runs/dom/events.jsonl")


def test_loss_dominance_passes_balanced_terms_and_honours_a_factor(ws: Workspace) -> None:
    r = one(ws, "bal", "loss_dominance")
    assert r.ok is True and 1 <= r.figure["ratio"] < 10
    assert r.details["balance_checks"] == 10  # 50 steps, a check every 5
    # the same logs against a stricter factor fail: the verdict rests on the figure
    strict = one(ws, "bal", "loss_dominance", factor=r.figure["ratio"] * 0.9)
    assert strict.ok is False


def test_loss_dominance_skips_a_one_term_lvm_and_leaves_other_kinds_out(ws: Workspace) -> None:
    assert all(r.name != "loss_dominance" for r in run_checks(ws, resolve(ws, "phase")))
    r = one(ws, "phase", "loss_dominance")  # asked for by name: said why
    assert r.ok is None


# --------------------------------------------------------------------------- schedule_smoothness
def test_schedule_smoothness_fails_on_the_phase_jump(ws: Workspace) -> None:
    r = one(ws, "phase", "schedule_smoothness")
    assert r.ok is False
    assert r.figure["beta"] == pytest.approx(0.6, abs=0.01)
    assert r.figure["lr"] == pytest.approx(0.5)
    assert r.details["beta"]["phase_event"].startswith("β-B warm-up")
    assert "declared phase" in r.reason


def test_schedule_smoothness_passes_a_warm_up(ws: Workspace) -> None:
    r = one(ws, "smooth", "schedule_smoothness")
    assert r.ok is True
    assert 0 < r.figure["beta"] < 0.01 and r.figure["lr"] == 0


# --------------------------------------------------------------------------- best_vs_deployed_epoch
def test_best_vs_deployed_fails_when_the_last_epoch_is_deployed(ws: Workspace) -> None:
    for subject in ("phase", "tvae@last"):  # the run's last checkpoint; the version made from it
        r = one(ws, subject, "best_vs_deployed_epoch")
        assert r.ok is False, subject
        assert r.figure == {"best_epoch": 1, "deployed_epoch": 2}
        assert r.details["deployed_value"] > r.details["best_value"]
    assert one(ws, "tvae@last", "best_vs_deployed_epoch").details["deployed_from"] == "version tvae@last"


def test_best_vs_deployed_passes_the_best(ws: Workspace) -> None:
    r = one(ws, "tvae@best", "best_vs_deployed_epoch")
    assert r.ok is True and r.figure == {"best_epoch": 1, "deployed_epoch": 1}
    assert one(ws, "smooth", "best_vs_deployed_epoch").ok is True  # its last epoch is its best
    # a tolerance as wide as the gap accepts the last epoch
    assert one(ws, "phase", "best_vs_deployed_epoch", tol=10.0).ok is True


# --------------------------------------------------------------------------- coverage_logged
def test_coverage_logged_fails_when_sampling_counts_duplicates(ws: Workspace) -> None:
    r = one(ws, "phase", "coverage_logged")
    assert r.ok is False
    assert r.figure["sampling"] > r.figure["hash"] + 1
    assert r.details["duplicates"] == round(r.figure["gap"] / 100 * 3**9)
    good = one(ws, "smooth", "coverage_logged")
    assert good.ok is True and good.figure["gap"] == 0


# --------------------------------------------------------------------------- lvm_dataset
def test_lvm_dataset_passes_the_trainers_own_data(ws: Workspace) -> None:
    r = one(ws, "dom", "lvm_dataset")
    assert r.ok is True, r.reason
    assert r.figure == {"examples": 4000, "incoherent_rows": 0}
    assert r.details["dim"] == 64 and r.details["docs"] == 80
    assert r.evidence == ("datasets/lvm/lvm-demo-seed0.npz",)
    assert one(ws, "phase", "lvm_dataset").ok is None  # not an LVM run


# --------------------------------------------------------------------------- data_pool
def test_data_pool_passes_the_demo_pool_and_matches_the_trainers_split(ws: Workspace) -> None:
    r = one(ws, "lm", "data_pool")
    assert r.ok is True, r.reason
    config = json.loads((ws.run_dir("lm") / "run.json").read_text())["config"]
    assert (r.details["train"], r.details["val"]) == (config["n_train"], config["n_val"])
    assert r.figure == 300 == config["data"]["n_samples"]


def test_data_pool_fails_when_the_pool_changed_since_the_run(ws: Workspace, tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    shutil.copyfile(ws.root / "datasets" / "lm-base" / "pool.jsonl", pool)
    with pool.open("a") as f:
        for i in range(40):
            f.write(json.dumps({"instruction": "Count.", "input": f"{i} + 1?", "output": str(i + 1)}) + "\n")
    r = one(ws, "lm", "data_pool", data=str(pool))
    assert r.ok is False and "the run split" in r.reason
    assert r.figure == 340 == len(datapool.read_pool(pool).samples)
