"""lora-lm: LoRA adapters on the attention projections of a finished lm-base run.

The field note's 8 GB settings are the defaults: rank 4, alpha 8, targets q/k/v/o_proj,
batch 1 with gradient accumulation over 4 micro-batches, max sequence 512, lr 1e-4.

How the base stays frozen: every parameter of the base model is turned into a
non-persistent buffer, so the only parameters left are the adapters' lora_A / lora_B.
The optimizer cannot touch the base, and `model.state_dict()` holds only the adapters,
so the loop's own checkpoints (best/last) are adapter-only files too.

How gradient accumulation works inside the generic loop (one optimizer step per loop
step): each loop "batch" is an `AccumGroup` of `grad_accum` micro-batches. `loss()` runs
forward and backward on one micro-batch at a time (torch.autograd.grad, so only one
micro-batch's graph is alive), sums the gradients (each scaled by 1/len(group)), and
returns a surrogate loss whose value is the mean micro-batch loss and whose gradient is
exactly that sum; the loop's backward() then fills .grad with it and takes one step. The
last group of an epoch may hold fewer micro-batches; it is averaged over those.

The artifact: `adapters.safetensors` + `adapters.json` (base run, rank, alpha, targets,
sha256) in the run folder, rewritten whenever val/loss improves after some training (so
they match checkpoints/best), and by `finish()` if the loop calls it at the end.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors.torch import load as load_safetensors  # bytes -> tensors; never pickle
from torch import Tensor, nn

from trainledger.engines.training import datapool
from trainledger.engines.training.lm import (
    LM_DIRECTIONS,
    Batch,
    ByteLM,
    LMConfig,
    apply_settings,
    encode_all,
    evaluate_lm,
    lm_loss,
    load_pool,
    shuffled_batches,
)
from trainledger.engines.training.loop import Schedule, load_checkpoint
from trainledger.engines.workspace import Workspace, atomic_write_bytes, atomic_write_json, read_run_info

# ----------------------------------------------------------------------------- config
RANK = 4
ALPHA = 8.0
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
BATCH_SIZE = 1  # micro-batch (LoopConfig.batch_size)
GRAD_ACCUM = 4  # micro-batches per optimizer step
MAX_SEQ = 512  # capped at the base model's context
LR = 1e-4
BASE_CHECKPOINT = "best"
ADAPTERS_FILE = "adapters.safetensors"
ADAPTERS_SIDECAR = "adapters.json"
ADAPTERS_SCHEMA = "trainledger-lora-adapters/1"

# What the CLI should put in LoopConfig for this model when the user does not say.
LOOP_DEFAULTS = {"batch_size": BATCH_SIZE, "lr": LR}


@dataclass
class LoraConfig:
    rank: int = RANK
    alpha: float = ALPHA
    targets: tuple[str, ...] = TARGETS
    grad_accum: int = GRAD_ACCUM
    max_seq: int = MAX_SEQ
    base_checkpoint: str = BASE_CHECKPOINT


# ----------------------------------------------------------------------------- adapters
class LoRALinear(nn.Module):
    """base(x) + (alpha / rank) · B(A(x)); B starts at zero, so training starts at the base."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scaling = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


def freeze_as_buffers(model: nn.Module) -> None:
    """Turn every parameter into a non-persistent buffer: frozen, and out of state_dict()."""
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            del module._parameters[name]
            module.register_buffer(name, param.detach(), persistent=False)


def add_lora(model: nn.Module, rank: int, alpha: float, targets: tuple[str, ...]) -> list[str]:
    """Freeze `model` and wrap each nn.Linear named in `targets`; returns the wrapped paths."""
    freeze_as_buffers(model)
    wrapped = []
    for path, module in list(model.named_modules()):
        for name, child in list(module.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(module, name, LoRALinear(child, rank, alpha))
                wrapped.append(f"{path}.{name}" if path else name)
    if not wrapped:
        raise ValueError(f"no nn.Linear named {', '.join(targets)} in the base model")
    return wrapped


def adapter_state(model: nn.Module) -> dict[str, Tensor]:
    """Only the adapter tensors (names ending lora_A / lora_B), detached, on the CPU."""
    return {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict(keep_vars=False).items()
        if k.endswith((".lora_A", ".lora_B"))
    }


def save_adapters(run_dir: Path, state: dict[str, Tensor], info: dict[str, Any]) -> dict[str, Any]:
    """Write adapters.safetensors, then its adapters.json sidecar, each atomically."""
    data = safetensors.torch.save(state, metadata={"schema": ADAPTERS_SCHEMA})
    atomic_write_bytes(run_dir / ADAPTERS_FILE, data)
    sidecar = {
        "schema": ADAPTERS_SCHEMA,
        "file": ADAPTERS_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "time": time.time(),
        **info,
    }
    atomic_write_json(run_dir / ADAPTERS_SIDECAR, sidecar)
    return sidecar


def load_adapters(run_dir: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The adapter tensors and sidecar; CheckpointError (a ValueError) if the sidecar names
    anything but a file of the run folder, or the sha256 does not match."""
    from trainledger.engines.training.checkpoints import read_sidecar, verified_bytes

    sidecar = read_sidecar(run_dir / ADAPTERS_SIDECAR)
    _, data = verified_bytes(run_dir, sidecar, run_dir / ADAPTERS_SIDECAR)
    return load_safetensors(data), sidecar


# ----------------------------------------------------------------------------- base run
def resolve_base(ws: Workspace, base: str | Path) -> Path:
    """The run folder of `base`: a run id of `ws`, or a run folder path."""
    path = Path(base)
    if (path / "run.json").is_file():
        return path
    run_dir = ws.run_dir(str(base))
    if not (run_dir / "run.json").is_file():
        raise FileNotFoundError(f"no base run {base!r} in {ws.root} (pass a run id or a run folder)")
    return run_dir


def load_base(run_dir: Path, tag: str = BASE_CHECKPOINT) -> tuple[ByteLM, dict[str, Any]]:
    """Rebuild the lm-base model from its run.json config and load its verified checkpoint."""
    info = read_run_info(run_dir, check_pid=False)
    if info.model != "lm-base":
        raise ValueError(f"{run_dir} is a {info.model or 'unknown'} run, not lm-base")
    if "model" not in info.config:
        raise ValueError(f"{run_dir}/run.json has no model config")
    tensors, sidecar = load_checkpoint(run_dir, tag)
    model = ByteLM(LMConfig(**info.config["model"]))
    model.load_state_dict(tensors)
    return model, {"run_id": info.id, "config": info.config, "checkpoint": sidecar}


# ----------------------------------------------------------------------------- task
@dataclass
class AccumGroup:
    """The micro-batches of one optimizer step; len() = sequences, for the loop's throughput."""

    micro: list[Batch]

    def __len__(self) -> int:
        return sum(len(b) for b in self.micro)


class LoraTask:
    """Trains LoRA adapters on a frozen lm-base model (see loop.Task and the module doc)."""

    model_name = "lora-lm"
    primary_metric = "val/loss"
    loop_defaults = LOOP_DEFAULTS  # seed 004's 8 GB settings unless the command line says otherwise
    directions = LM_DIRECTIONS

    def __init__(self, cfg: LoraConfig, ws: Workspace, base_dir: Path, pool: datapool.Pool, data_path: Path) -> None:
        self.cfg = cfg
        self.ws = ws
        self.base_dir = base_dir
        self.pool = pool
        self.data_path = data_path
        base, self.base_info = load_base(base_dir, cfg.base_checkpoint)
        self.base_cfg = base.cfg
        self.max_seq = min(cfg.max_seq, base.cfg.context)
        train, val = pool.split()
        if not train or not val:
            raise datapool.NotEnoughSamples(len(pool.samples), 2)
        self.train_seqs = encode_all(train, self.max_seq)
        self.val_seqs = encode_all(val, self.max_seq)
        self.instance = uuid.uuid4().hex  # finds this run's folder from inside evaluate()
        self.run_dir: Path | None = None
        self._steps_since_eval = 0
        self._best: float | None = None
        self._best_state: dict[str, Tensor] | None = None

    def config(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "base_run": self.base_info["run_id"],
            "base_checkpoint": {"tag": c.base_checkpoint, "sha256": self.base_info["checkpoint"]["sha256"]},
            "lora": {"rank": c.rank, "alpha": c.alpha, "targets": list(c.targets), "instance": self.instance},
            "grad_accum": c.grad_accum,
            "max_seq": self.max_seq,
            "model": asdict(self.base_cfg),
            "data_path": str(self.data_path),
            "data": self.pool.summary(),
            "n_train": len(self.train_seqs),
            "n_val": len(self.val_seqs),
            "tokenizer": "bytes+eos",
        }

    def build_model(self) -> ByteLM:
        model, _ = load_base(self.base_dir, self.cfg.base_checkpoint)
        add_lora(model, self.cfg.rank, self.cfg.alpha, self.cfg.targets)
        return model

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[AccumGroup]:
        micro = shuffled_batches(self.train_seqs, batch_size, generator)
        n = self.cfg.grad_accum
        return [AccumGroup(micro[i : i + n]) for i in range(0, len(micro), n)]

    def schedule(self, epoch: float) -> Schedule:
        return Schedule(phase="train", values={"grad_accum": float(self.cfg.grad_accum)},
                        description="constant learning rate")  # fmt: skip

    def loss(self, model: nn.Module, group: AccumGroup, schedule: Schedule) -> dict[str, Tensor]:
        params = [p for p in model.parameters() if p.requires_grad]
        grads = [torch.zeros_like(p) for p in params]
        losses = []
        for batch in group.micro:
            micro_loss = lm_loss(model, batch)
            for acc, g in zip(grads, torch.autograd.grad(micro_loss / len(group.micro), params)):
                acc += g
            losses.append(micro_loss.detach())
        surrogate = sum((p * g).sum() for p, g in zip(params, grads))
        self._steps_since_eval += 1
        # value: the mean micro-batch loss; gradient w.r.t. the adapters: the accumulated sum
        return {"loss": torch.stack(losses).mean() + (surrogate - surrogate.detach())}

    def evaluate(self, model: nn.Module, schedule: Schedule) -> dict[str, float]:
        metrics = evaluate_lm(model, self.val_seqs)
        if self._steps_since_eval and (self._best is None or metrics["val/loss"] < self._best):
            self._best = metrics["val/loss"]
            self._best_state = adapter_state(model)
            self._write(metrics)
        self._steps_since_eval = 0
        return metrics

    def finish(self, model: nn.Module, run_dir: Path) -> None:
        """For a loop end-of-run hook: write the best adapters (or the current ones) to run_dir."""
        self.run_dir = run_dir
        if self._best_state is None:
            self._best_state = adapter_state(model)
        self._write({"val/loss": self._best} if self._best is not None else {})

    # -- the artifact
    def _own_run_dir(self) -> Path | None:
        if self.run_dir is None:
            for run_id in self.ws.run_ids():
                info = read_run_info(self.ws.run_dir(run_id), check_pid=False)
                if info.model == self.model_name and info.config.get("lora", {}).get("instance") == self.instance:
                    self.run_dir = info.path
                    break
        return self.run_dir

    def _write(self, metrics: dict[str, float]) -> None:
        run_dir = self._own_run_dir()
        if run_dir is None or self._best_state is None:
            return
        c = self.cfg
        save_adapters(run_dir, self._best_state, {
            "base_run": self.base_info["run_id"],
            "base_checkpoint_sha256": self.base_info["checkpoint"]["sha256"],
            "rank": c.rank, "alpha": c.alpha, "targets": list(c.targets), "metrics": metrics,
        })  # fmt: skip


def build(opts: Any) -> LoraTask:
    """The lora-lm Task for `opts`: extra["base"] (required) names a finished lm-base run.

    Without opts.data it trains on the base run's data pool when that still exists, else
    on the demo pool. Refuses a pool below the threshold unless extra["force"].
    extra["set"] (`--set KEY=VALUE`) sets LoraConfig fields: rank, alpha, targets ("a,b"),
    grad_accum, max_seq, base_checkpoint. The micro-batch size and lr are LoopConfig's
    (LOOP_DEFAULTS: batch 1, lr 1e-4).
    """
    base = opts.extra.get("base")
    if not base:
        raise ValueError("lora-lm needs a base model: the run id or folder of a finished lm-base run")
    base_dir = resolve_base(opts.workspace, base)
    if opts.data is None:
        base_data = read_run_info(base_dir, check_pid=False).config.get("data_path")
        if base_data and Path(base_data).exists():
            opts = replace(opts, data=Path(base_data))
    cfg = apply_settings(LoraConfig(), opts.extra.get("set") or {}, "lora-lm")
    pool, path = load_pool(opts, "lora-lm")
    datapool.check_ready(len(pool.samples), force=bool(opts.extra.get("force")))
    return LoraTask(cfg, opts.workspace, base_dir, pool, path)
