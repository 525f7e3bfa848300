"""The gesture vocabulary: K-means of L2-normalised feature vectors into K tokens.

Seed 001's quantizer, fitted by the generic loop: the centroids are a parameter, the loss
is the mean squared distance of each normalised feature to its nearest centroid (minibatch
k-means by gradient descent), and a centroid that no vector picked for a while is re-seeded
on the batch's worst-served vector. The note's fix was the L2 normalisation; with it its
vocabulary used 64/64 tokens at 5.67 bits of entropy (6 is the ceiling for 64).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainledger.engines.training.datasets import (
    DatasetError,
    check_finite,
    load_npz,
    model_device,
    open_dataset,
    shuffled_batches,
    task_settings,
    write_npz,
)
from trainledger.engines.training.loop import Schedule
from trainledger.engines.training.models import TaskOptions, datasets_dir

# ----------------------------------------------------------------------------- config
K = 64  # tokens
NORMALIZE = True  # the note's fix; False replays the failure mode (raw-scale k-means)
RESEED_EVERY = 20  # steps; centroids unused over that window are re-seeded
INIT_SAMPLE = 2048  # k-means++ initialisation looks at this many training vectors
VAL_FRACTION = 0.1
DEMO_N = 8000
DEMO_DIM = 32
DEMO_CLUSTERS = 64
DEMO_NOISE = 0.05  # per coordinate, around unit-norm cluster centres


# ----------------------------------------------------------------------------- data
def generate(seed: int, n: int = DEMO_N, dim: int = DEMO_DIM, clusters: int = DEMO_CLUSTERS) -> dict[str, np.ndarray]:
    """`n` vectors around `clusters` well-separated random directions, at random scales
    (raw k-means would split by loudness; normalised k-means sees only the direction)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, n)
    scale = rng.uniform(0.2, 5.0, (n, 1))
    features = scale * (centres[labels] + DEMO_NOISE * rng.standard_normal((n, dim)))
    return {"features": features.astype(np.float32), "labels": labels.astype(np.int32)}


def load(path: Path) -> np.ndarray:
    """Feature vectors from an .npy (2-D array) or an .npz (key `features`), checked."""
    if path.suffix == ".npz":
        features = load_npz(path, ("features",))["features"]
    else:
        with open_dataset(path, "a .npy array (or a .npz archive)", ("a .npy array",)) as fh:
            try:
                features = np.load(fh, allow_pickle=False)
            except (OSError, ValueError):
                raise DatasetError(f"{path}: a .npy file that is damaged or holds object (never loaded) data") from None
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
        raise DatasetError(f"{path}: key 'features' must be a non-empty [N, dim] array, got {list(features.shape)}")
    check_finite(path, "features", features)
    return features.astype(np.float32)


def prepare(features: np.ndarray, normalize: bool) -> tuple[Tensor, int]:
    """Features as a tensor, L2-normalised if asked; zero vectors (no direction) are dropped."""
    x = torch.from_numpy(features)
    if not normalize:
        return x, 0
    norms = x.norm(dim=1)
    keep = norms > 1e-12
    return F.normalize(x[keep], dim=1), int((~keep).sum())


# ----------------------------------------------------------------------------- model
class Quantizer(nn.Module):
    """K centroids; `assign` maps each vector to its nearest one."""

    def __init__(self, centroids: Tensor) -> None:
        super().__init__()
        self.centroids = nn.Parameter(centroids.clone())
        self.register_buffer("hits", torch.zeros(centroids.shape[0]))  # assignments since the last re-seed

    def distances(self, x: Tensor) -> Tensor:
        return torch.cdist(x, self.centroids).pow(2)  # [B, K] squared distances

    def assign(self, x: Tensor) -> Tensor:
        return self.distances(x).argmin(1)


def kmeans_pp(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++: each next centroid is a vector drawn with probability ~ its squared distance."""
    picks = [int(torch.randint(x.shape[0], (1,), generator=generator))]
    d2 = (x - x[picks[0]]).pow(2).sum(1)
    for _ in range(k - 1):
        i = int(torch.multinomial(d2 + 1e-12, 1, generator=generator))
        picks.append(i)
        d2 = torch.minimum(d2, (x - x[i]).pow(2).sum(1))
    return x[picks]


def entropy_bits(tokens: Tensor, k: int) -> float:
    p = torch.bincount(tokens, minlength=k).float()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log2()).sum())


# ----------------------------------------------------------------------------- task
class VocabTask:
    """What the generic loop needs to fit the vocabulary (see loop.Task)."""

    model_name = "vocab"
    primary_metric = "val/inertia"
    loop_defaults: ClassVar[dict[str, Any]] = {"epochs": 20, "batch_size": 256, "lr": 1e-2, "patience": 5}
    device = "cpu"
    directions: ClassVar[dict[str, str]] = {
        "train/loss": "min",
        "val/inertia": "min",
        "tokens/active": "max",
        "tokens/entropy_bits": "max",
        "tokens/reseeded": "min",
    }

    def __init__(self, features: np.ndarray, seed: int, k: int = K, normalize: bool = NORMALIZE,
                 data_path: Path | None = None) -> None:  # fmt: skip
        x, self.dropped = prepare(features, normalize)
        if x.shape[0] < 2 * k:
            raise DatasetError(
                f"{data_path or 'features'}: {x.shape[0]} usable vectors, need at least {2 * k} for k={k}"
            )
        self.k, self.seed, self.normalize, self.data_path = k, seed, normalize, data_path
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
        n_val = max(k, round(x.shape[0] * VAL_FRACTION))
        self.train, self.val = x[order[n_val:]], x[order[:n_val]]
        self.steps = 0
        self.reseeded = 0

    def config(self) -> dict[str, Any]:
        return {
            "data_path": str(self.data_path) if self.data_path else None,
            "k": self.k,
            "entropy_ceiling_bits": math.log2(self.k),
            "normalization": "l2" if self.normalize else "none",
            "dim": int(self.train.shape[1]),
            "n_train": int(self.train.shape[0]),
            "n_val": int(self.val.shape[0]),
            "dropped_zero_vectors": self.dropped,
            "init": f"k-means++ on {min(INIT_SAMPLE, self.train.shape[0])} training vectors",
            "reseed_every": RESEED_EVERY,
            "split": "random 10% of vectors (seeded)",
        }

    def build_model(self) -> Quantizer:
        generator = torch.Generator().manual_seed(self.seed + 1)
        sample = self.train[torch.randperm(self.train.shape[0], generator=generator)[:INIT_SAMPLE]]
        return Quantizer(kmeans_pp(sample, self.k, generator))

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[Tensor]:
        return shuffled_batches(self.train, batch_size, generator)

    def schedule(self, epoch: float) -> Schedule:
        return Schedule(phase="fit", values={"tokens/reseeded": float(self.reseeded)})

    @torch.no_grad()
    def _reseed(self, model: Quantizer, batch: Tensor, d2: Tensor) -> None:
        """Move centroids that nothing chose lately onto the batch's worst-served vectors."""
        dead = torch.nonzero(model.hits == 0).flatten()
        if len(dead):
            worst = d2.min(1).values.argsort(descending=True)[: len(dead)]
            model.centroids[dead[: len(worst)]] = batch[worst]
            self.reseeded += len(worst)
        model.hits.zero_()

    def loss(self, model: nn.Module, batch: Tensor, schedule: Schedule) -> dict[str, Tensor]:
        assert isinstance(model, Quantizer)
        self.steps += 1
        if self.steps % RESEED_EVERY == 0:  # before the forward pass, so the graph sees the new centroids
            self._reseed(model, batch, model.distances(batch).detach())
        d2 = model.distances(batch)
        nearest = d2.min(1)
        model.hits += torch.bincount(nearest.indices, minlength=self.k).float()
        return {"loss": nearest.values.mean()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, schedule: Schedule) -> dict[str, float]:
        assert isinstance(model, Quantizer)
        nearest = model.distances(self.val.to(model_device(model))).min(1)
        tokens = nearest.indices
        return {
            "val/inertia": float(nearest.values.mean()),
            "tokens/active": int(torch.unique(tokens).numel()),
            "tokens/entropy_bits": entropy_bits(tokens, self.k),
        }


# ----------------------------------------------------------------------------- builder
def build(opts: TaskOptions) -> VocabTask:
    if opts.data is not None:
        path = Path(opts.data)
    else:
        path = datasets_dir(opts.workspace, "vocab") / f"vocab-demo-seed{opts.seed}.npz"
        write_npz(path, generate(opts.seed))
    s = task_settings("vocab", opts.extra, {"k": K, "normalize": NORMALIZE})
    task = VocabTask(load(path), opts.seed, k=int(s["k"]), normalize=bool(s["normalize"]), data_path=path)
    task.device = opts.device
    return task
