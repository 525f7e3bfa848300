"""Data helpers shared by the training tasks: clear dataset errors, byte-stable npz files,
group-wise splits and shuffled minibatches.

A generated demo dataset is written so that the same seed gives the same bytes (and so the
same sha256 in the run's config); a loaded one is checked before training starts.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from trainledger.engines.workspace import atomic_write_bytes

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entries carry no wall-clock time


class DatasetError(ValueError):
    """A dataset that cannot be trained on; the message names the file and the key or line."""


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as an uncompressed .npz whose bytes depend only on the arrays."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME), member.getvalue())
    atomic_write_bytes(path, buffer.getvalue())


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file; DatasetError naming the first missing key."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = set(npz.files)
            for key in keys:
                if key not in present:
                    raise DatasetError(f"{path}: missing key {key!r} (has: {', '.join(sorted(present)) or 'none'})")
            return {key: npz[key] for key in keys}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc


def check_finite(path: Path, key: str, array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{path}: key {key!r} is not numeric (dtype {array.dtype})")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DatasetError(f"{path}: key {key!r} has {bad} non-finite values")


def split_groups(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val) such that no group is in both; the same seed gives the same split."""
    unique = np.unique(groups)
    if len(unique) < 2:
        raise DatasetError(f"need at least 2 groups to split train/val, got {len(unique)}")
    order = np.random.default_rng(seed).permutation(unique)
    n_val = min(len(unique) - 1, max(1, round(len(unique) * val_fraction)))
    is_val = np.isin(groups, order[:n_val])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def shuffled_batches(data: Tensor, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """`data` (rows = examples) in a fresh random order, cut into minibatches."""
    order = torch.randperm(data.shape[0], generator=generator)
    return list(data[order].split(batch_size))


def task_settings(model: str, extra: dict[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """The model's settings: `defaults` overridden by `extra`; a `--set` key (listed in
    extra["set"]) that the model does not know is a ValueError naming the known ones."""
    extra = extra or {}
    unknown = sorted(set(extra.get("set") or {}) - set(defaults))
    if unknown:
        raise ValueError(f"{model} has no setting {unknown[0]!r}; settings: {', '.join(sorted(defaults))}")
    return {key: extra.get(key, value) for key, value in defaults.items()}


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
