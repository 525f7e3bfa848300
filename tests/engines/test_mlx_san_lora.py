"""`--backend mlx` for `san` and `lora-lm`: parity with torch, and files either backend reads.

Parity (the same rule as test_mlx_backend.py): the same data, split and seed on both
backends, as two `python -m trainledger train` subprocesses side by side. Both must
learn (the final val/loss under LEARN_FACTOR of the step-0 one for san; simply lower for
lora-lm, whose few steps at lr 1e-3 move a frozen base only a little) and agree: the
final val/loss of each within PARITY_FACTOR of the other. LoRA starts from the very same
function on both backends (lora_B is zero), so its step-0 val/loss must match to 1e-4.

Interop: the MLX san checkpoint has the torch state_dict's names and shapes and loads
into the torch SAN; LoRA adapters written by either backend load into the other, which
then measures the same val/loss the writer reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainledger.engines.workspace import Workspace, init_workspace

mx = pytest.importorskip("mlx.core", reason="mlx is not installed")
torch = pytest.importorskip("torch")

PARITY_FACTOR = 2.0  # as in test_mlx_backend.py
LEARN_FACTOR = 0.5
RUN_FILES = ("run.json", "metrics.jsonl", "events.jsonl", "system.jsonl", "checkpoints/best.safetensors",
             "checkpoints/best.json", "checkpoints/last.safetensors", "checkpoints/last.json")  # fmt: skip


def train(*args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "trainledger", "train", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_all(
    procs: dict[str, subprocess.Popen[str]], timeout: float = 120
) -> dict[str, str]:
    outs = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, (name, out, err)
        assert "finished at step" in out, (name, out)
        outs[name] = out
    return outs


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def val_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in jsonl(run_dir / "metrics.jsonl") if "val/loss" in r]


def check_run_folder(run_dir: Path, backend: str) -> dict[str, Any]:
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), (backend, name)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["backend"] == backend and info["status"] == "finished"
    best = [
        e
        for e in jsonl(run_dir / "events.jsonl")
        if e.get("kind", e.get("type")) == "best"
    ]
    assert best, "no best event"
    return info


# ----------------------------------------------------------------------------- san
def test_mlx_san_checkpoint_has_the_torch_names_and_loads_into_torch(
    tmp_path: Path,
) -> None:
    import safetensors.numpy

    from trainledger.engines.training import san
    from trainledger.engines.training.mlx_backend import save_mlx_checkpoint
    from trainledger.engines.training.mlx_san import MLXSAN

    model = MLXSAN()
    mx.eval(model.parameters())
    save_mlx_checkpoint(
        tmp_path, "best", model, {"model": "san", "epoch": 1, "step": 1}
    )
    tensors = safetensors.numpy.load_file(tmp_path / "checkpoints" / "best.safetensors")
    torch_model = san.SAN()
    expected = {k: tuple(v.shape) for k, v in torch_model.state_dict().items()}
    assert {k: v.shape for k, v in tensors.items()} == expected
    torch_model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True
    )
    x = np.random.default_rng(0).standard_normal((5, 128)).astype(np.float32)
    ours, theirs = model(mx.array(x)), torch_model(torch.from_numpy(x))
    for key in san.HEADS:
        np.testing.assert_allclose(
            np.array(ours[key]), theirs[key].detach().numpy(), rtol=1e-4, atol=1e-5
        )


def test_mlx_san_loss_and_metrics_equal_torch_on_the_same_weights(
    tmp_path: Path,
) -> None:
    from trainledger.engines.training import san
    from trainledger.engines.training.loop import Schedule
    from trainledger.engines.training.mlx_san import MLXSAN, MLXSANTask

    san.generate(tmp_path / "data", seed=5, sessions=3, frames=80)
    task = san.SANTask(tmp_path / "data", seed=5)
    mlx_task = MLXSANTask(task)
    torch_model = san.SAN()
    model = MLXSAN()
    model.load_weights(
        [(k, mx.array(v.numpy())) for k, v in torch_model.state_dict().items()],
        strict=True,
    )
    ours, theirs = (
        mlx_task.evaluate(model),
        task.evaluate(torch_model, Schedule(phase="train")),
    )
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert mlx_task.config() == task.config()


def test_san_learns_on_both_backends_from_the_cli_and_they_agree(ws: Workspace) -> None:
    from trainledger.engines.training import san

    data = ws.root / "san-parity"
    san.generate(data, seed=2, sessions=4, frames=300)
    common = ["san", "--workspace", str(ws.root), "--data", str(data), "--epochs", "4", "--seed", "2",
              "--patience", "0"]  # fmt: skip
    wait_all(
        {
            b: train(*common, "--backend", b, "--run-id", f"san-{b}")
            for b in ("torch", "mlx")
        }
    )
    final, configs = {}, {}
    for backend in ("torch", "mlx"):
        run_dir = ws.run_dir(f"san-{backend}")
        info = check_run_folder(run_dir, backend)
        rows = val_rows(run_dir)
        assert rows[0]["step"] == 0 and len(rows) == 5
        assert {
            "val/gesture_acc",
            "val/camera_acc",
            "val/gesture_probs",
            "val/phrase",
        } <= set(rows[-1])
        assert rows[-1]["val/loss"] < LEARN_FACTOR * rows[0]["val/loss"], (
            backend,
            rows[0],
            rows[-1],
        )
        final[backend] = rows[-1]["val/loss"]
        configs[backend] = {
            k: info["config"][k]
            for k in ("file_report", "split", "val_sessions", "n_train")
        }
    assert configs["torch"] == configs["mlx"]
    assert max(final.values()) / min(final.values()) < PARITY_FACTOR, final


# ----------------------------------------------------------------------------- lora-lm
@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path]:
    """A tiny lm-base trained with torch, then lora-lm from it on both backends."""
    from trainledger.engines.training import datapool

    ws = init_workspace(tmp_path_factory.mktemp("lora") / "ws")
    pool = datapool.write_demo_pool(ws.root / "pool", n=120, seed=3)
    base = ["--workspace", str(ws.root), "--data", str(pool), "--seed", "1"]
    wait_all(
        {
            "base": train(
                "lm-base",
                *base,
                "--epochs",
                "3",
                "--run-id",
                "base",
                "--set",
                "context=64",
            )
        }
    )
    lora = [*base, "--base", "base", "--epochs", "2", "--lr", "1e-3", "--patience", "0"]
    wait_all(
        {
            b: train("lora-lm", *lora, "--backend", b, "--run-id", f"lora-{b}")
            for b in ("torch", "mlx")
        }
    )
    return ws, pool


def test_lora_learns_on_both_backends_from_the_cli_and_they_agree(
    lora_runs: tuple[Workspace, Path],
) -> None:
    import safetensors.numpy

    ws, _ = lora_runs
    rows = {b: val_rows(ws.run_dir(f"lora-{b}")) for b in ("torch", "mlx")}
    shapes = {}
    for backend in ("torch", "mlx"):
        run_dir = ws.run_dir(f"lora-{backend}")
        info = check_run_folder(run_dir, backend)
        assert info["config"]["grad_accum"] == 4 and info["config"]["lora"]["rank"] == 4
        assert info["config"]["lora"]["alpha"] == 8 and info["config"]["max_seq"] == 64
        r = rows[backend]
        assert {"val/loss", "val/perplexity"} <= set(r[-1])
        assert r[-1]["val/loss"] < r[0]["val/loss"], (backend, r)
        train_rows = [x for x in jsonl(run_dir / "metrics.jsonl") if "train/loss" in x]
        assert train_rows and train_rows[-1]["grad_accum"] == 4
        # the checkpoints and the artifact are adapters only, with the same names and shapes
        for name in (
            "checkpoints/best.safetensors",
            "checkpoints/last.safetensors",
            "adapters.safetensors",
        ):
            tensors = safetensors.numpy.load_file(run_dir / name)
            shapes.setdefault(name, []).append({k: v.shape for k, v in tensors.items()})
    for name, (torch_shapes, mlx_shapes) in shapes.items():
        assert torch_shapes == mlx_shapes, name
        assert len(mlx_shapes) == 16 and all(
            k.endswith((".lora_A", ".lora_B")) for k in mlx_shapes
        )
        assert mlx_shapes["blocks.0.attn.q_proj.lora_A"] == (4, 64)
    # the same base and lora_B = 0: both start from the very same model
    assert rows["mlx"][0]["val/loss"] == pytest.approx(
        rows["torch"][0]["val/loss"], abs=1e-4
    )
    final = [rows[b][-1]["val/loss"] for b in ("torch", "mlx")]
    assert max(final) / min(final) < PARITY_FACTOR, final


def test_lora_adapters_load_across_backends(lora_runs: tuple[Workspace, Path]) -> None:
    from trainledger.engines.training.lm import evaluate_lm
    from trainledger.engines.training.lora import load_adapters
    from trainledger.engines.training.mlx_lora import MLXLoraTask, adapter_items
    from trainledger.engines.training.models import TaskOptions

    ws, pool = lora_runs
    opts = TaskOptions(ws, data=pool, seed=1, extra={"base": "base", "set": {}})
    from trainledger.engines.training.lora import build

    task = build(opts)
    # MLX-trained adapters in the torch model: the torch val/loss is what the MLX run reported
    tensors, sidecar = load_adapters(ws.run_dir("lora-mlx"))
    assert sidecar["backend"] == "mlx"
    torch_model = task.build_model()
    missing, unexpected = torch_model.load_state_dict(tensors, strict=False)
    assert not missing and not unexpected
    assert evaluate_lm(torch_model, task.val_seqs)["val/loss"] == pytest.approx(
        sidecar["metrics"]["val/loss"], rel=1e-4
    )
    # torch-trained adapters in the MLX model: the same, the other way round
    tensors, sidecar = load_adapters(ws.run_dir("lora-torch"))
    mlx_task = MLXLoraTask(task)
    model = mlx_task.build_model()
    assert sorted(k for k, _ in adapter_items(model)) == sorted(tensors)
    model.load_weights(
        [(k, mx.array(v.numpy())) for k, v in tensors.items()], strict=False
    )
    assert mlx_task.evaluate(model)["val/loss"] == pytest.approx(
        sidecar["metrics"]["val/loss"], rel=1e-4
    )


def test_mlx_gradient_accumulation_equals_torchs(
    lora_runs: tuple[Workspace, Path],
) -> None:
    """One optimizer step's group (micro-batches of 2, the last one short): the MLX loss and
    adapter gradients equal the torch LoraTask's accumulated ones, on the same adapters."""
    from mlx import nn

    from trainledger.engines.training.lm import make_batch
    from trainledger.engines.training.lora import AccumGroup, build, load_adapters
    from trainledger.engines.training.mlx_lora import MLXLoraTask, pack, padded_width
    from trainledger.engines.training.models import TaskOptions

    ws, pool = lora_runs
    task = build(TaskOptions(ws, data=pool, seed=1, extra={"base": "base", "set": {}}))
    tensors, _ = load_adapters(ws.run_dir("lora-torch"))
    torch_model = task.build_model()
    torch_model.load_state_dict(tensors, strict=False)
    seqs = task.train_seqs[:7]  # grad_accum 4 micro-batches of 2, 2, 2 and 1 sequences
    group = AccumGroup([make_batch(seqs[i : i + 2]) for i in range(0, 7, 2)])
    theirs = task.loss(torch_model, group, task.schedule(0.0))["loss"]
    theirs.backward()
    torch_grads = {n: p.grad.numpy() for n, p in torch_model.named_parameters()}

    mlx_task = MLXLoraTask(task)
    model = mlx_task.build_model()
    model.load_weights(
        [(k, mx.array(v.numpy())) for k, v in tensors.items()], strict=False
    )
    mlx_task.micro = 2
    batch = mx.array(pack(seqs, 8, padded_width(seqs, mlx_task.max_seq)))
    loss, grads = nn.value_and_grad(model, lambda b: mlx_task.loss(model, b)["loss"])(
        batch
    )
    assert float(loss.item()) == pytest.approx(float(theirs.detach()), rel=1e-5)
    from mlx.utils import tree_flatten

    ours = dict(tree_flatten(grads))
    assert set(ours) == set(torch_grads)
    for name, grad in torch_grads.items():
        np.testing.assert_allclose(
            np.array(ours[name]), grad, rtol=1e-3, atol=1e-6, err_msg=name
        )
