"""The ternary VAE: a small VAE over all 3^9 ternary operations, with its data, loss and metrics.

It is the training engine's first model because it trains on one CPU core in minutes and
replays a real field note: a β warm-up with free bits, a β/LR phase change that spikes the
loss, a best validation loss that comes early, and two coverage counts that disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainledger.engines.training.loop import Schedule

# ----------------------------------------------------------------------------- config
N_DIGITS = 9
N_OPS = 3**N_DIGITS  # 19,683 ternary operations
LATENT_DIM = 16
HIDDEN = 128
FREE_BITS = 0.5  # nats per latent dim that the KL term does not charge for
BETA_WARMUP_EPOCHS = 50  # phase A: β rises linearly from 0 to BETA_A over these epochs
BETA_A = 0.05
BETA_B = 0.6  # phase B (from phase_epoch on): β jumps here, as the field note's β-B warm-up did
PHASE_EPOCH = 50
PHASE_LR_SCALE = 0.5  # the LR halves at the phase change (0.001 -> 0.0005 in the note)
VAL_FRACTION = 0.1
PRIOR_SAMPLES = 2 * N_OPS  # decoded prior samples per coverage measurement
SAMPLE_BATCH = 1024  # the naive coverage count only sees duplicates inside one batch
ACTIVE_VAR = 0.01  # a latent dim is active if its posterior mean varies more than this


@dataclass
class TernaryVAEConfig:
    hidden: int = HIDDEN
    latent_dim: int = LATENT_DIM
    free_bits: float = FREE_BITS
    beta_warmup_epochs: int = BETA_WARMUP_EPOCHS
    beta_a: float = BETA_A
    beta_b: float = BETA_B
    phase_epoch: int | None = PHASE_EPOCH  # None: no phase change
    phase_lr_scale: float = PHASE_LR_SCALE
    val_fraction: float = VAL_FRACTION
    prior_samples: int = PRIOR_SAMPLES
    sample_batch: int = SAMPLE_BATCH


# ----------------------------------------------------------------------------- data
_POWERS = 3 ** torch.arange(N_DIGITS - 1, -1, -1)  # most significant digit first


def all_operations() -> Tensor:
    """All 3^9 operations as an (N_OPS, 9) int64 tensor of -1/0/1; row i spells i in base 3."""
    index = torch.arange(N_OPS).unsqueeze(1)
    return (index // _POWERS) % 3 - 1


def op_codes(ops: Tensor) -> Tensor:
    """The index of each operation (its base-3 value): a perfect hash, one int per op."""
    return ((ops + 1) * _POWERS.to(ops.device)).sum(-1)


def split_operations(seed: int, val_fraction: float = VAL_FRACTION) -> tuple[Tensor, Tensor]:
    """A deterministic train/validation split of all operations: same seed, same split."""
    ops = all_operations()
    order = torch.randperm(N_OPS, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(N_OPS * val_fraction))
    return ops[order[n_val:]], ops[order[:n_val]]


# ----------------------------------------------------------------------------- model
class TernaryVAE(nn.Module):
    """9 digits -> hidden -> (mu, logvar) in R^16 -> hidden -> 9 x 3 logits."""

    def __init__(self, hidden: int = HIDDEN, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(N_DIGITS, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, N_DIGITS * 3),
        )  # fmt: skip
        self.latent_dim = latent_dim

    def encode(self, ops: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(ops.float())
        return self.to_mu(h), self.to_logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(-1, N_DIGITS, 3)

    def forward(self, ops: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(ops)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + noise * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


def logits_to_ops(logits: Tensor) -> Tensor:
    return logits.argmax(-1) - 1


def vae_loss(
    logits: Tensor, ops: Tensor, mu: Tensor, logvar: Tensor, beta: float, free_bits: float
) -> dict[str, Tensor]:
    """Per-example loss = digit cross-entropy (summed over 9 digits) + β · KL with free bits.

    Free bits: each latent dim's batch-mean KL is charged at least `free_bits` nats, so the
    gradient does not push a dim below that and the latent space does not collapse. `kl`
    reports the true KL; `loss` uses the clamped one.
    """
    recon = F.cross_entropy(logits.reshape(-1, 3), (ops + 1).reshape(-1), reduction="sum")
    recon = recon / ops.shape[0]
    kl_per_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)
    kl_charged = kl_per_dim.clamp(min=free_bits).sum()
    return {"loss": recon + beta * kl_charged, "recon": recon, "kl": kl_per_dim.sum()}


# ----------------------------------------------------------------------------- metrics
@torch.no_grad()
def coverage(model: TernaryVAE, n_samples: int, batch: int, generator: torch.Generator) -> dict[str, float]:
    """Decode `n_samples` prior samples and count the operations they produce, two ways.

    coverage/sampling is the field note's naive count: unique ops per batch, summed over
    batches, so an op decoded in two batches counts twice (capped at 100 %).
    coverage/hash counts each operation once, by its code, over all samples.
    """
    seen: list[Tensor] = []
    naive = 0
    for start in range(0, n_samples, batch):
        z = torch.randn((min(batch, n_samples - start), model.latent_dim), generator=generator)
        codes = op_codes(logits_to_ops(model.decode(z)))
        naive += int(torch.unique(codes).numel())
        seen.append(codes)
    unique = int(torch.unique(torch.cat(seen)).numel())
    return {
        "coverage/sampling": min(100.0, 100.0 * naive / N_OPS),
        "coverage/hash": 100.0 * unique / N_OPS,
    }


@torch.no_grad()
def evaluate(
    model: TernaryVAE, val_ops: Tensor, beta: float, cfg: TernaryVAEConfig, generator: torch.Generator
) -> dict[str, float]:
    """Validation loss at the current β, exact reconstruction, coverage and active latent dims."""
    logits, mu, logvar = model(val_ops, generator)
    parts = vae_loss(logits, val_ops, mu, logvar, beta, cfg.free_bits)
    exact = (logits_to_ops(model.decode(mu)) == val_ops).all(-1).float().mean()
    active = (mu.var(0) > ACTIVE_VAR).sum()
    return {
        "val/loss": float(parts["loss"]),
        "val/recon": float(parts["recon"]),
        "val/kl": float(parts["kl"]),
        "val/recon_acc": float(exact),
        **coverage(model, cfg.prior_samples, cfg.sample_batch, generator),
        "latent/active_dims": int(active),
    }


# ----------------------------------------------------------------------------- task
class TernaryVAETask:
    """What the generic loop needs to train the ternary VAE (see loop.Task)."""

    model_name = "ternary-vae"
    primary_metric = "val/loss"
    directions = {
        "train/loss": "min",
        "train/recon": "min",
        "val/loss": "min",
        "val/recon": "min",
        "val/recon_acc": "max",
        "coverage/sampling": "max",
        "coverage/hash": "max",
        "latent/active_dims": "max",
    }

    def __init__(self, cfg: TernaryVAEConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self.train_ops, self.val_ops = split_operations(seed, cfg.val_fraction)
        self.noise = torch.Generator().manual_seed(seed + 1)

    def config(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "free_bits": c.free_bits,
            "phase_epoch": c.phase_epoch,
            "beta_schedule": {
                "warmup_epochs": c.beta_warmup_epochs,
                "beta_a": c.beta_a,
                "beta_b": c.beta_b,
                "phase_epoch": c.phase_epoch,
                "phase_lr_scale": c.phase_lr_scale,
            },
            "model": asdict(c),
            "n_train": int(self.train_ops.shape[0]),
            "n_val": int(self.val_ops.shape[0]),
        }

    def build_model(self) -> TernaryVAE:
        return TernaryVAE(self.cfg.hidden, self.cfg.latent_dim)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[Tensor]:
        order = torch.randperm(self.train_ops.shape[0], generator=generator)
        return list(self.train_ops[order].split(batch_size))

    def schedule(self, epoch: float) -> Schedule:
        """β and the LR scale at fractional `epoch`; the phase name changes at phase_epoch."""
        c = self.cfg
        if c.phase_epoch is not None and epoch >= c.phase_epoch:
            return Schedule(
                phase="beta-b",
                lr_scale=c.phase_lr_scale,
                values={"beta": c.beta_b},
                description=f"β-B warm-up: β -> {c.beta_b:g}, LR x {c.phase_lr_scale:g}",
            )
        beta = c.beta_a * min(1.0, epoch / c.beta_warmup_epochs) if c.beta_warmup_epochs else c.beta_a
        return Schedule(
            phase="beta-a",
            lr_scale=1.0,
            values={"beta": beta},
            description=f"β warm-up 0 -> {c.beta_a:g} over {c.beta_warmup_epochs} epochs",
        )

    def loss(self, model: nn.Module, batch: Tensor, schedule: Schedule) -> dict[str, Tensor]:
        logits, mu, logvar = model(batch, self.noise)
        return vae_loss(logits, batch, mu, logvar, schedule.values["beta"], self.cfg.free_bits)

    def evaluate(self, model: nn.Module, schedule: Schedule) -> dict[str, float]:
        # A fresh generator per evaluation: the same model gives the same numbers.
        generator = torch.Generator().manual_seed(self.seed + 2)
        return evaluate(model, self.val_ops, schedule.values["beta"], self.cfg, generator)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- builder
def build(opts: Any) -> TernaryVAETask:
    """The registry's builder (models.MODELS["ternary-vae"]): takes models.TaskOptions.

    The data is generated in memory (all 3^9 operations), so there is no file: the task's
    `data_info` names it and hashes the bytes of the generated int64 array. `--set KEY=VALUE`
    sets TernaryVAEConfig fields (e.g. phase_epoch, prior_samples; phase_epoch=-1 or null: none).
    The model is tiny and its noise generators live on the CPU, so it always trains on the CPU.
    """
    import hashlib

    cfg = TernaryVAEConfig()
    fields = set(asdict(cfg))
    for key, value in dict(opts.extra.get("set") or {}).items():
        if key not in fields:
            raise ValueError(f"ternary-vae has no setting {key!r}; settings: {', '.join(sorted(fields))}")
        if key == "phase_epoch" and value is not None and int(value) < 0:
            value = None
        setattr(cfg, key, value)
    if opts.data is not None:
        raise ValueError("ternary-vae generates its own data (all 3^9 operations); it takes no --data")
    task = TernaryVAETask(cfg, seed=opts.seed)
    ops = all_operations().numpy()
    task.data_path = None  # type: ignore[attr-defined]
    task.data_info = {  # type: ignore[attr-defined]
        "generated": "all 3^9 operations",
        "shape": list(ops.shape),
        "dtype": str(ops.dtype),
        "sha256": hashlib.sha256(ops.tobytes()).hexdigest(),
    }
    task.device = "cpu"  # type: ignore[attr-defined]
    return task
