"""`trainledger train lora-lm --base RUN --backend mlx`: seed 004's LoRA fine-tune on MLX.

Seed 004 trains its adapters with MLX; this is that path, interchangeable with the torch
one (lora.py). The torch LoraTask stays the one place that resolves the base run, reads
and validates the data pool, splits it 90/10 and records the config, so both backends
train on the same sequences and run.json says the same things. This module adds:

- MLXByteLM: lm.ByteLM in MLX, with the same parameter names (tok_emb, blocks.N.attn.
  q_proj ..., blocks.N.mlp.0, ln_f, head), so the base run's torch checkpoint loads by name;
- MLXLoRALinear: base(x) + (alpha / rank) · x Aᵀ Bᵀ, with lora_A / lora_B shaped as in
  torch, B zero at the start, so training starts exactly at the base model;
- MLXLoraLM: the frozen model whose parameters() are the adapters only, so the MLX
  loop's checkpoints (best/last) hold only adapters, named as the torch run names them;
- MLXLoraTask: gradient accumulation without a hook in the loop: one loop batch is the
  grad_accum micro-batches of one optimizer step, stacked; the loss is the mean of the
  micro-batches' mean token losses, which has the same value and gradient as torch's
  accumulation (each micro-batch's gradient / len(group), summed).

The artifact is the torch path's: adapters.safetensors + adapters.json, written with
lora.save_adapters whenever val/loss improves after some training, so an adapter from
either backend loads into the other. This module imports mlx at import time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx import nn
from mlx.utils import tree_flatten, tree_unflatten

from trainledger.engines.training.lm import EOS, EVAL_BATCH, IGNORE, LMConfig

PAD_TO = 32  # batch widths are rounded up to this, so the compiled step sees few shapes
ADAPTER_SUFFIXES = ("lora_A", "lora_B")


# ----------------------------------------------------------------------------- model
class MLXAttention(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        B, T, C = x.shape
        hd = C // self.n_heads

        def heads(t: mx.array) -> mx.array:
            return t.reshape(B, T, self.n_heads, hd).transpose(0, 2, 1, 3)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        out = mx.fast.scaled_dot_product_attention(
            q, k, v, scale=1.0 / math.sqrt(hd), mask="causal"
        )
        return self.o_proj(out.transpose(0, 2, 1, 3).reshape(B, T, C))


class MLXBlock(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = MLXAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        # a list, not nn.Sequential: its names are mlp.0 / mlp.2 as in torch
        self.mlp = [nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model), nn.GELU(),
                    nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)]  # fmt: skip

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.attn(self.ln1(x))
        h = self.ln2(x)
        for layer in self.mlp:
            h = layer(h)
        return x + h


class MLXByteLM(nn.Module):
    """lm.ByteLM in MLX (token + position embeddings, pre-norm blocks, a linear head)."""

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = [MLXBlock(cfg) for _ in range(cfg.n_layers)]
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)

    def __call__(self, idx: mx.array) -> mx.array:
        T = idx.shape[1]
        if T > self.cfg.context:
            raise ValueError(
                f"sequence of {T} tokens is longer than the context ({self.cfg.context})"
            )
        x = self.tok_emb(idx) + self.pos_emb(mx.arange(T))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class MLXLoRALinear(nn.Module):
    """lora.LoRALinear in MLX: base(x) + (alpha / rank) · B(A(x)); B starts at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        out_features, in_features = base.weight.shape
        self.base = base
        self.rank = rank
        self.scaling = alpha / rank
        bound = 1.0 / math.sqrt(in_features)  # torch's kaiming_uniform_(a=sqrt(5))
        self.lora_A = mx.random.uniform(-bound, bound, (rank, in_features))
        self.lora_B = mx.zeros((out_features, rank))

    def __call__(self, x: mx.array) -> mx.array:
        return self.base(x) + ((x @ self.lora_A.T) @ self.lora_B.T) * self.scaling


class MLXLoraLM(MLXByteLM):
    """A frozen MLXByteLM with LoRA adapters; parameters() holds only the adapters, as the
    torch model's state_dict() does, so what the MLX loop checkpoints is the adapters."""

    def parameters(self) -> dict[str, Any]:
        return tree_unflatten(adapter_items(self))

    def all_parameters(self) -> dict[str, Any]:
        return super().parameters()


def adapter_items(model: nn.Module) -> list[tuple[str, mx.array]]:
    """(name, array) of the adapters, named as torch names them (blocks.0.attn.q_proj.lora_A)."""
    return [
        (k, v)
        for k, v in tree_flatten(nn.Module.parameters(model))
        if k.endswith(ADAPTER_SUFFIXES)
    ]


def add_lora(
    model: nn.Module, rank: int, alpha: float, targets: tuple[str, ...]
) -> list[str]:
    """Freeze `model` and wrap each nn.Linear named in `targets`; returns the wrapped paths."""
    model.freeze()
    wrapped = []
    for path, module in model.named_modules():
        for name in targets:
            child = module.get(name) if isinstance(module, nn.Module) else None
            if isinstance(child, nn.Linear):
                module[name] = MLXLoRALinear(child, rank, alpha)
                wrapped.append(f"{path}.{name}" if path else name)
    if not wrapped:
        raise ValueError(f"no nn.Linear named {', '.join(targets)} in the base model")
    return wrapped


def load_base_mlx(base_dir: Path, tag: str, cfg: LMConfig, rank: int, alpha: float,
                  targets: tuple[str, ...]) -> MLXLoraLM:  # fmt: skip
    """The lm-base run's verified checkpoint (safetensors, by name) in an MLXLoraLM."""
    from trainledger.engines.training.checkpoints import load_checkpoint

    tensors, _ = load_checkpoint(base_dir, tag)
    model = MLXLoraLM(cfg)
    expected = {k: tuple(v.shape) for k, v in tree_flatten(model.all_parameters())}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if found != expected:
        missing, extra = (
            sorted(set(expected) - set(found)),
            sorted(set(found) - set(expected)),
        )
        raise ValueError(f"{base_dir}: checkpoint {tag} does not fit the model (missing {missing}, "
                         f"unexpected {extra}, or shapes differ)")  # fmt: skip
    # strict=False: MLXLoraLM.parameters() is the adapters only; the names were checked above
    model.load_weights(
        [(k, mx.array(v.detach().cpu().numpy())) for k, v in tensors.items()],
        strict=False,
    )
    add_lora(model, rank, alpha, targets)
    return model


# ----------------------------------------------------------------------------- batches
def pack(seqs: list[list[int]], rows: int, width: int) -> np.ndarray:
    """[rows, 2, width] int32: inputs (EOS-padded) and next-byte targets (IGNORE-padded).
    Rows past len(seqs) are all padding (they score nothing)."""
    out = np.empty((rows, 2, width), dtype=np.int32)
    out[:, 0], out[:, 1] = EOS, IGNORE
    for i, s in enumerate(seqs):
        n = len(s) - 1
        out[i, 0, :n] = s[:-1]
        out[i, 1, :n] = s[1:]
    return out


def padded_width(seqs: list[list[int]], cap: int) -> int:
    width = max(len(s) for s in seqs) - 1
    return min(cap, -(-width // PAD_TO) * PAD_TO)


def token_losses(model: nn.Module, batch: mx.array) -> tuple[mx.array, mx.array]:
    """Per-position cross-entropy (0 where padded) and the scored mask, both [B, T]."""
    x, y = batch[:, 0], batch[:, 1]
    mask = y != IGNORE
    logits = model(x)
    ce = nn.losses.cross_entropy(logits, mx.where(mask, y, 0), reduction="none")
    return ce * mask, mask.astype(mx.float32)


# ----------------------------------------------------------------------------- task
class MLXLoraTask:
    """lora.LoraTask trained with MLX (see the module doc)."""

    backend = "mlx"

    def __init__(self, torch_task: Any) -> None:
        self.base = torch_task
        self.cfg = torch_task.cfg
        self.ws = torch_task.ws
        self.model_name = torch_task.model_name
        self.primary_metric = torch_task.primary_metric
        self.directions = dict(torch_task.directions)
        self.loop_defaults = dict(torch_task.loop_defaults)
        self.data_path = torch_task.data_path
        self.max_seq = torch_task.max_seq
        self.train_seqs = torch_task.train_seqs
        self.val_seqs = torch_task.val_seqs
        self.instance = torch_task.instance
        self.micro = 1  # sequences per micro-batch; set by train_batches
        self.run_dir: Path | None = None
        self._trained = False
        self._best: float | None = None

    def config(self) -> dict[str, Any]:
        return self.base.config()

    def build_model(self) -> MLXLoraLM:
        c = self.cfg
        return load_base_mlx(
            self.base.base_dir,
            c.base_checkpoint,
            self.base.base_cfg,
            c.rank,
            c.alpha,
            tuple(c.targets),
        )

    def train_batches(
        self, batch_size: int, rng: np.random.Generator
    ) -> list[np.ndarray]:
        """One array per optimizer step: its grad_accum micro-batches of `batch_size`, stacked."""
        self.micro, self._trained = batch_size, True
        order = rng.permutation(len(self.train_seqs)).tolist()
        step = batch_size * self.cfg.grad_accum
        out = []
        for i in range(0, len(order), step):
            seqs = [self.train_seqs[j] for j in order[i : i + step]]
            rows = -(-len(seqs) // batch_size) * batch_size
            out.append(pack(seqs, rows, padded_width(seqs, self.max_seq)))
        return out

    def schedule(self, epoch: float) -> Any:
        return self.base.schedule(epoch)

    def loss(self, model: nn.Module, batch: mx.array) -> dict[str, mx.array]:
        ce, mask = token_losses(model, batch)
        n_micro = batch.shape[0] // self.micro
        sums = ce.reshape(n_micro, -1).sum(axis=1)
        counts = mx.maximum(mask.reshape(n_micro, -1).sum(axis=1), 1.0)
        return {"loss": mx.mean(sums / counts)}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """lm.evaluate_lm: val/loss in nats per scored byte over the split, val/perplexity."""
        total, count = 0.0, 0.0
        for i in range(0, len(self.val_seqs), EVAL_BATCH):
            seqs = self.val_seqs[i : i + EVAL_BATCH]
            ce, mask = token_losses(
                model, mx.array(pack(seqs, len(seqs), max(len(s) for s in seqs) - 1))
            )
            s, n = ce.sum(), mask.sum()
            mx.eval(s, n)
            total, count = total + float(s.item()), count + float(n.item())
        loss = total / max(count, 1.0)
        metrics = {"val/loss": loss, "val/perplexity": math.exp(min(loss, 50.0))}
        if self._trained and (self._best is None or loss < self._best):
            self._best = loss
            self.write_adapters(model, metrics)
        self._trained = False
        return metrics

    # -- the artifact
    def own_run_dir(self) -> Path | None:
        """This run's folder: the run whose config carries this task's instance id."""
        from trainledger.engines.workspace import read_run_info

        if self.run_dir is None:
            for run_id in self.ws.run_ids():
                info = read_run_info(self.ws.run_dir(run_id), check_pid=False)
                if (
                    info.model == self.model_name
                    and info.config.get("lora", {}).get("instance") == self.instance
                ):
                    self.run_dir = info.path
                    break
        return self.run_dir

    def write_adapters(self, model: nn.Module, metrics: dict[str, float]) -> None:
        """adapters.safetensors + adapters.json, through the torch path's own writer."""
        import torch

        from trainledger.engines.training.lora import save_adapters

        run_dir = self.own_run_dir()
        if run_dir is None:
            return
        state = {
            k: torch.from_numpy(np.array(v, dtype=np.float32))
            for k, v in adapter_items(model)
        }
        c, info = self.cfg, self.base.base_info
        save_adapters(run_dir, state, {
            "base_run": info["run_id"], "base_checkpoint_sha256": info["checkpoint"]["sha256"],
            "rank": c.rank, "alpha": c.alpha, "targets": list(c.targets), "metrics": metrics, "backend": "mlx",
        })  # fmt: skip


def build(opts: Any) -> MLXLoraTask:
    """The MLX lora-lm task for `opts`: lora.build's base run, pool, checks and split."""
    from trainledger.engines.training.lora import build as build_torch

    return MLXLoraTask(build_torch(opts))
