"""lm-base: a tiny causal byte-level language model, trained from scratch on a data pool.

The model is nanoGPT-shaped (token + position embeddings, pre-norm transformer blocks, a
linear head) and small enough to train for a few epochs in seconds on one CPU core. Its
attention projections are named `q_proj`, `k_proj`, `v_proj` and `o_proj`, the names the
LoRA adapters of `lora.py` target.

Tokens are the 256 byte values plus EOS (256), which ends every sample and pads batches
(padded positions are not scored). A sample longer than the context is cut.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainledger.engines.training import datapool
from trainledger.engines.training.loop import Schedule

# ----------------------------------------------------------------------------- config
EOS = 256
VOCAB = 257  # bytes + EOS
D_MODEL = 64
N_LAYERS = 2
N_HEADS = 4
CONTEXT = 128
MLP_RATIO = 4
EVAL_BATCH = 64
IGNORE = -100  # target of a padded position


@dataclass
class LMConfig:
    vocab: int = VOCAB
    d_model: int = D_MODEL
    n_layers: int = N_LAYERS
    n_heads: int = N_HEADS
    context: int = CONTEXT
    mlp_ratio: int = MLP_RATIO


# ----------------------------------------------------------------------------- data
def encode(text: str, max_len: int) -> list[int]:
    """UTF-8 bytes of `text` followed by EOS, cut to `max_len + 1` tokens (inputs + 1 target)."""
    return (list(text.encode("utf-8")) + [EOS])[: max_len + 1]


@dataclass
class Batch:
    """Right-padded inputs and next-byte targets (IGNORE where padded); len() = sequences."""

    x: Tensor  # (B, T) int64
    y: Tensor  # (B, T) int64

    def __len__(self) -> int:
        return int(self.x.shape[0])


def make_batch(seqs: Sequence[list[int]]) -> Batch:
    width = max(len(s) for s in seqs) - 1
    x = torch.full((len(seqs), width), EOS, dtype=torch.long)
    y = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    for i, s in enumerate(seqs):
        t = torch.tensor(s, dtype=torch.long)
        x[i, : len(s) - 1] = t[:-1]
        y[i, : len(s) - 1] = t[1:]
    return Batch(x, y)


def encode_all(samples: Sequence[datapool.Sample], max_len: int) -> list[list[int]]:
    return [encode(s.text, max_len) for s in samples]


def shuffled_batches(seqs: list[list[int]], batch_size: int, generator: torch.Generator) -> list[Batch]:
    order = torch.randperm(len(seqs), generator=generator).tolist()
    return [make_batch([seqs[j] for j in order[i : i + batch_size]]) for i in range(0, len(order), batch_size)]


def load_pool(opts: Any, model: str) -> tuple[datapool.Pool, Path]:
    """The pool at opts.data, or the demo pool under <workspace>/datasets/<model>/."""
    from trainledger.engines.training.models import datasets_dir

    path = Path(opts.data) if opts.data is not None else datapool.write_demo_pool(datasets_dir(opts.workspace, model))
    return datapool.read_pool(path), path


# ----------------------------------------------------------------------------- model
class Attention(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model),
            nn.GELU(),
            nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ByteLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        if T > self.cfg.context:
            raise ValueError(f"sequence of {T} tokens is longer than the context ({self.cfg.context})")
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def lm_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Mean next-byte cross-entropy over the scored (unpadded) positions, in nats."""
    device = model_device(model)
    logits = model(batch.x.to(device))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.y.to(device).reshape(-1), ignore_index=IGNORE)


def model_device(model: nn.Module) -> torch.device:
    """Where the model lives (the loop moves only plain tensors, not Batch, to the device)."""
    return next(iter(model.state_dict(keep_vars=True).values())).device


@torch.no_grad()
def evaluate_lm(model: nn.Module, seqs: list[list[int]], batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """val/loss (nats per scored byte, over the whole split) and val/perplexity = exp(val/loss)."""
    total, count = 0.0, 0
    for i in range(0, len(seqs), batch_size):
        batch = make_batch(seqs[i : i + batch_size])
        x, y = batch.x.to(model_device(model)), batch.y.to(model_device(model))
        logits = model(x)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                       ignore_index=IGNORE, reduction="sum"))  # fmt: skip
        count += int((batch.y != IGNORE).sum())
    loss = total / max(count, 1)
    return {"val/loss": loss, "val/perplexity": math.exp(min(loss, 50.0))}


# ----------------------------------------------------------------------------- task
LM_DIRECTIONS = {"train/loss": "min", "val/loss": "min", "val/perplexity": "min"}


class LMTask:
    """What the generic loop needs to train the byte LM from scratch (see loop.Task)."""

    model_name = "lm-base"
    primary_metric = "val/loss"
    loop_defaults = {"epochs": 8, "batch_size": 16, "lr": 3e-3, "patience": 3}
    directions = LM_DIRECTIONS

    def __init__(self, cfg: LMConfig, pool: datapool.Pool, data_path: Path, seed: int = 0) -> None:
        self.cfg = cfg
        self.pool = pool
        self.data_path = data_path
        self.seed = seed
        train, val = pool.split()
        if not train or not val:
            raise datapool.NotEnoughSamples(len(pool.samples), 2)
        self.train_seqs = encode_all(train, cfg.context)
        self.val_seqs = encode_all(val, cfg.context)

    def config(self) -> dict[str, Any]:
        return {
            "model": asdict(self.cfg),
            "data_path": str(self.data_path),
            "data": self.pool.summary(),
            "n_train": len(self.train_seqs),
            "n_val": len(self.val_seqs),
            "tokenizer": "bytes+eos",
        }

    def build_model(self) -> ByteLM:
        return ByteLM(self.cfg)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[Batch]:
        return shuffled_batches(self.train_seqs, batch_size, generator)

    def schedule(self, epoch: float) -> Schedule:
        return Schedule(phase="train", description="constant learning rate")

    def loss(self, model: nn.Module, batch: Batch, schedule: Schedule) -> dict[str, Tensor]:
        return {"loss": lm_loss(model, batch)}

    def evaluate(self, model: nn.Module, schedule: Schedule) -> dict[str, float]:
        return evaluate_lm(model, self.val_seqs)


def build_base(opts: Any) -> LMTask:
    """The lm-base Task for `opts` (models.TaskOptions); refuses a small pool unless extra["force"].

    opts.data: a pool file or folder (default: the demo pool under datasets/lm-base/).
    extra["set"] (`--set KEY=VALUE`) sets LMConfig fields: d_model, n_layers, n_heads, context, ...
    """
    cfg = apply_settings(LMConfig(), opts.extra.get("set") or {}, "lm-base")
    pool, path = load_pool(opts, "lm-base")
    datapool.check_ready(len(pool.samples), force=bool(opts.extra.get("force")))
    return LMTask(cfg, pool, path, seed=opts.seed)


def apply_settings(cfg: Any, settings: dict[str, Any], model: str, skip: tuple[str, ...] = ()) -> Any:
    """Set dataclass fields of `cfg` from `--set KEY=VALUE` pairs, converting strings to the
    field's type (int, float, bool, tuple of names as "a,b"). Unknown keys are an error."""
    fields = {k: v for k, v in asdict(cfg).items() if k not in skip}
    for key, value in settings.items():
        if key not in fields:
            raise ValueError(f"{model} has no setting {key!r}; settings: {', '.join(sorted(fields))}")
        current = fields[key]
        if isinstance(value, str):
            if isinstance(current, bool):
                value = value.lower() in ("1", "true", "yes", "on")
            elif isinstance(current, int):
                value = int(value)
            elif isinstance(current, float):
                value = float(value)
            elif isinstance(current, (tuple, list)):
                value = tuple(v.strip() for v in value.split(",") if v.strip())
        elif isinstance(current, (tuple, list)):
            value = tuple(value)
        setattr(cfg, key, value)
    return cfg
