"""`trainledger train --backend mlx`: the MLX loop's run folder, and parity with torch.

Parity: `lvm-gru` is trained on the same generated dataset (same seed, same split) for
the same epochs on both backends, as two subprocesses side by side. Both must learn:
the final val/loss under half the initial one (the step-0 validation row). And they
must agree: the final val/loss of each within PARITY_FACTOR of the other. The two
backends start from different random inits (each library's own), so only a loose
agreement is asked for; on this data both land within a few percent of each other.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainledger.engines.workspace import Workspace

try:  # MLX is absent on some platforms (no wheel): then there is nothing to test here
    import mlx.core  # noqa: F401

    HAVE_MLX = True
except ImportError:  # pragma: no cover - depends on the platform
    HAVE_MLX = False

needs_mlx = pytest.mark.skipif(not HAVE_MLX, reason="mlx is not installed (import mlx.core failed)")

PARITY_FACTOR = 2.0  # the final val/loss of each backend within 2x of the other's
LEARN_FACTOR = 0.5  # final val/loss below half the initial one
EPOCHS = "2"


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainledger", "train", *args]


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def val_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in jsonl(run_dir / "metrics.jsonl") if "val/loss" in r]


@needs_mlx
def test_lvm_gru_learns_on_both_backends_and_they_agree(ws: Workspace) -> None:
    common = ["lvm-gru", "--workspace", str(ws.root), "--epochs", EPOCHS, "--seed", "3", "--patience", "0"]
    # generate the dataset once, so both runs read the same file
    from trainledger.engines.training.datasets import write_npz
    from trainledger.engines.training.lvm import generate

    data = ws.root / "lvm-parity.npz"
    write_npz(data, generate(3))
    procs = {
        backend: subprocess.Popen(train_cmd(*common, "--data", str(data), "--backend", backend, "--run-id", backend),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for backend in ("torch", "mlx")
    }
    outs = {b: p.communicate(timeout=120) for b, p in procs.items()}
    for backend, p in procs.items():
        assert p.returncode == 0, (backend, outs[backend][1])
        assert "finished at step" in outs[backend][0]

    final: dict[str, float] = {}
    for backend in procs:
        run_dir = ws.run_dir(backend)
        rows = val_rows(run_dir)
        assert rows[0]["step"] == 0 and len(rows) == int(EPOCHS) + 1
        initial, last = rows[0]["val/loss"], rows[-1]["val/loss"]
        assert last < LEARN_FACTOR * initial, (backend, initial, last)
        assert rows[-1]["val/cosine"] > rows[0]["val/cosine"]
        final[backend] = last
        info = json.loads((run_dir / "run.json").read_text())
        assert info["backend"] == backend and info["status"] == "finished"
        assert info["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    ratio = max(final.values()) / min(final.values())
    assert ratio < PARITY_FACTOR, final

    # the MLX run folder: the same shape as a torch run's
    run_dir = ws.run_dir("mlx")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["model"] == "lvm-gru" and info["primary_metric"] == "val/cosine"
    assert info["versions"]["mlx"] and info["device"] in ("cpu", "gpu")
    assert info["summary"]["best"]["metric"] == "val/cosine"
    train = [r for r in jsonl(run_dir / "metrics.jsonl") if "train/loss" in r]
    assert train and all({"train/term/mse", "samples_per_s", "steps_per_s", "lr"} <= set(r) for r in train)
    events = jsonl(run_dir / "events.jsonl")
    assert [e["kind"] for e in events].count("best") >= 1
    import safetensors.numpy

    for tag in ("best", "last"):
        sidecar = json.loads((run_dir / "checkpoints" / f"{tag}.json").read_text())
        blob = (run_dir / "checkpoints" / sidecar["file"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == sidecar["sha256"] and sidecar["bytes"] == len(blob)
        tensors = safetensors.numpy.load(blob)
        assert {"rnn.Wx", "rnn.Wh", "out.weight", "out.bias"} <= set(tensors)
    assert json.loads((run_dir / "checkpoints" / "best.json").read_text())["epoch"] >= 1


@needs_mlx
def test_cli_mlx_model_list_matches_the_mlx_builders() -> None:
    from trainledger.engines.training import cli
    from trainledger.engines.training.mlx_models import MLX_MODELS

    assert set(cli.MLX_MODELS) == set(MLX_MODELS)


def test_mlx_errors_are_one_line(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    from trainledger.engines.training import cli

    assert cli.main(["lvm-lstm", "--backend", "mlx", "--workspace", str(ws.root)]) == 2
    assert "--backend mlx is not yet supported for lvm-lstm" in capsys.readouterr().err
    (ws.run_dir("old")).mkdir(parents=True)
    (ws.run_dir("old") / "run.json").write_text(json.dumps({"model": "lvm-gru", "status": "finished"}))
    assert cli.main(["--resume", "old", "--backend", "mlx", "--workspace", str(ws.root)]) == 2
    assert "--resume old: resuming an MLX run is not supported yet" in capsys.readouterr().err


@needs_mlx
def test_ternary_vae_trains_on_mlx(ws: Workspace) -> None:
    from trainledger.engines.training import cli

    args = ["ternary-vae", "--backend", "mlx", "--epochs", "2", "--workspace", str(ws.root), "--run-id", "tv",
            "--patience", "0", "--set", "prior_samples=2048"]  # fmt: skip
    assert cli.main(args) == 0
    run_dir = ws.run_dir("tv")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["backend"] == "mlx" and info["model"] == "ternary-vae" and info["status"] == "finished"
    rows = val_rows(run_dir)
    assert rows[0]["step"] == 0 and len(rows) == 3
    assert rows[-1]["val/loss"] < rows[0]["val/loss"]
    assert "coverage/hash" in rows[-1] and rows[-1]["val/recon_acc"] > rows[0]["val/recon_acc"]

    # --resume of an MLX run: refused until the MLX loop can resume, on either backend, and the
    # run folder is left as it was (it used to load the MLX checkpoint into torch and crash)
    before = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    for backend in ("torch", "mlx"):
        out = subprocess.run(train_cmd("--resume", "tv", "--epochs", "3", "--backend", backend, "--workspace",
                                       str(ws.root)), capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert "--resume tv: resuming an MLX run is not supported yet" in out.stderr and "Traceback" not in out.stderr
    assert {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()} == before
