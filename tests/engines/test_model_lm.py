"""lm-base and lora-lm: real (tiny) training runs on the demo data pool."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from trainledger.engines.training.lm import (
    ByteLM,
    LMConfig,
    build_base,
    evaluate_lm,
    lm_loss,
    make_batch,
)
from trainledger.engines.training.loop import (
    LoopConfig,
    StopFlag,
    Trainer,
    load_checkpoint,
)
from trainledger.engines.training.lora import (
    LOOP_DEFAULTS,
    TARGETS,
    AccumGroup,
    adapter_state,
    add_lora,
    build,
    load_adapters,
)
from trainledger.engines.training.models import TaskOptions
from trainledger.engines.workspace import Workspace, init_workspace, read_run_info

pytestmark = pytest.mark.slow


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def val_losses(run_dir: Path) -> list[float]:
    return [r["val/loss"] for r in jsonl(run_dir / "metrics.jsonl") if "val/loss" in r]


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return init_workspace(tmp_path_factory.mktemp("lm") / "ws")


@pytest.fixture(scope="module")
def base_run(ws: Workspace) -> Path:
    task = build_base(TaskOptions(ws))
    cfg = LoopConfig(epochs=2, batch_size=16, lr=3e-3, log_every=5)
    result = Trainer(task, cfg, ws, run_id="base", name="tiny base", stop=StopFlag()).run()
    assert result is not None and result.status == "finished" and result.epochs_done == 2
    return result.run_dir


def test_lm_base_trains_and_its_validation_loss_falls(base_run: Path) -> None:
    info = read_run_info(base_run)
    assert (info.status, info.model, info.primary_metric) == ("finished", "lm-base", "val/loss")
    assert info.directions == {"train/loss": "min", "val/loss": "min", "val/perplexity": "min"}
    assert info.config["model"]["d_model"] == 64 and info.config["n_val"] > 0
    rows = jsonl(base_run / "metrics.jsonl")
    vals = [r for r in rows if "val/loss" in r]
    assert [r["epoch"] for r in vals] == [0, 1, 2]
    assert vals[-1]["val/loss"] < vals[0]["val/loss"]
    assert vals[-1]["val/loss"] < math.log(257)  # better than uniform over the vocabulary
    for r in vals:
        assert r["val/perplexity"] == pytest.approx(math.exp(r["val/loss"]))
    assert any("train/loss" in r for r in rows)
    tensors, sidecar = load_checkpoint(base_run, "best")
    assert sidecar["epoch"] == 2
    assert {f"blocks.0.attn.{t}.weight" for t in TARGETS} <= tensors.keys()


def test_gradient_accumulation_matches_one_big_batch() -> None:
    torch.manual_seed(0)
    model = ByteLM(LMConfig(d_model=16, n_layers=1, n_heads=2, context=32))
    add_lora(model, rank=2, alpha=4.0, targets=TARGETS)
    for _name, p in model.named_parameters():  # nonzero B, so every adapter gets a gradient
        torch.nn.init.normal_(p, std=0.1)
    seqs = [list(b"abc") + [256], list(b"hello") + [256], list(b"x") + [256], list(b"zz top") + [256]]
    micro = [make_batch([s]) for s in seqs]

    from trainledger.engines.training.lora import LoraTask

    parts = LoraTask.loss(_Counter(), model, AccumGroup(micro), None)  # type: ignore[arg-type]
    parts["loss"].backward()
    accumulated = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    expected = sum(lm_loss(model, b) for b in micro) / len(micro)
    expected.backward()
    assert float(parts["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    for n, p in model.named_parameters():
        assert torch.allclose(accumulated[n], p.grad, atol=1e-6), n
    assert {n.rsplit(".", 1)[1] for n, _ in model.named_parameters()} == {"lora_A", "lora_B"}


class _Counter:
    _steps_since_eval = 0


def test_lora_trains_only_adapters_on_a_frozen_base(ws: Workspace, base_run: Path) -> None:
    base_ckpt = base_run / "checkpoints" / "best.safetensors"
    base_sha = file_sha(base_ckpt)
    base_tensors, _ = load_checkpoint(base_run, "best")
    base_best = min(val_losses(base_run))

    task = build(TaskOptions(ws, extra={"base": "base"}))
    assert task.max_seq == 128 and task.cfg.grad_accum == 4 and task.cfg.rank == 4 and task.cfg.alpha == 8
    built: list[torch.nn.Module] = []
    original = task.build_model
    task.build_model = lambda: built.append(original()) or built[-1]  # type: ignore[method-assign]
    cfg = LoopConfig(epochs=1, log_every=10, **LOOP_DEFAULTS)
    result = Trainer(task, cfg, ws, run_id="lora", stop=StopFlag()).run()
    assert result is not None and result.status == "finished"
    # gradient accumulation is real: one optimizer step per 4 micro-batches of 1
    assert result.step == math.ceil(len(task.train_seqs) / 4)

    model = built[0]
    for name, buf in model.named_buffers():  # the base: bit-identical to its checkpoint
        key = name.replace(".base.", ".")
        assert torch.equal(buf, base_tensors[key]), name
    assert {n.replace(".base.", ".") for n, _ in model.named_buffers()} == base_tensors.keys()
    assert file_sha(base_ckpt) == base_sha

    expected = {f"blocks.{i}.attn.{t}.{ab}" for i in range(2) for t in TARGETS for ab in ("lora_A", "lora_B")}
    adapters, sidecar = load_adapters(result.run_dir)
    assert adapters.keys() == expected
    assert sidecar["sha256"] == file_sha(result.run_dir / "adapters.safetensors")
    assert (sidecar["base_run"], sidecar["rank"], sidecar["alpha"]) == ("base", 4, 8.0)
    assert sidecar["targets"] == list(TARGETS)
    assert safetensors.torch.load_file(result.run_dir / "checkpoints" / "best.safetensors").keys() == expected
    assert adapter_state(model).keys() == expected
    assert any(float(v.abs().sum()) > 0 for k, v in adapters.items() if k.endswith("lora_B"))

    vals = val_losses(result.run_dir)
    assert vals[0] == pytest.approx(base_best)  # B starts at zero: the base's own loss
    assert min(vals[1:]) <= base_best
    info = read_run_info(result.run_dir)
    assert info.model == "lora-lm" and info.config["base_run"] == "base" and info.config["grad_accum"] == 4

    # the adapters alone, put on a fresh copy of the base, reproduce the recorded val loss
    fresh = ByteLM(LMConfig(**read_run_info(base_run).config["model"]))
    fresh.load_state_dict(base_tensors)
    add_lora(fresh, 4, 8.0, TARGETS)
    fresh.load_state_dict(adapters)
    assert evaluate_lm(fresh.eval(), task.val_seqs)["val/loss"] == pytest.approx(sidecar["metrics"]["val/loss"])


def test_lora_needs_a_finished_lm_base_run(ws: Workspace, base_run: Path) -> None:
    with pytest.raises(ValueError, match="base"):
        build(TaskOptions(ws))
    with pytest.raises(FileNotFoundError):
        build(TaskOptions(ws, extra={"base": "no-such-run"}))
    task = build(TaskOptions(ws, extra={"base": str(base_run), "set": {"rank": "2", "targets": "q_proj,v_proj"}}))
    assert task.cfg.rank == 2 and task.cfg.targets == ("q_proj", "v_proj")
    keys = adapter_state(task.build_model()).keys()
    assert {k.split(".")[3] for k in keys} == {"q_proj", "v_proj"}
