"""Data helpers shared by the training tasks: clear dataset errors, byte-stable npz files,
group-wise splits and shuffled minibatches.

A generated demo dataset is written so that the same seed gives the same bytes (and so the
same sha256 in the run's config); a loaded one is checked before training starts.
"""

from __future__ import annotations

import io
import os
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


def sniff(head: bytes) -> str:
    """What the first bytes of a file look like, in words, for an error message."""
    if not head:
        return "an empty file"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive"
    if head.startswith(b"\x93NUMPY"):
        return "a .npy array"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (never loaded)"
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return "JSON Lines text" if b"\n{" in text or b"\n[" in text else "JSON text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return "binary data of an unknown kind"
    return "text"


def open_dataset(path: Path, expected: str, kinds: tuple[str, ...]) -> Any:
    """`path` opened for reading if its first bytes are one of `kinds` (see sniff); otherwise
    DatasetError "expected <expected>; found <what it is>". Never blocks on a FIFO or a device."""
    from trainledger.engines.safeio import NotRegularFile, describe_kind, open_regular_file

    try:
        fh = open_regular_file(path)
    except NotRegularFile:
        raise DatasetError(f"{path}: expected {expected}; found {describe_kind(os.stat(path).st_mode)}") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    found = sniff(fh.read(4096))
    if found not in kinds:
        fh.close()
        raise DatasetError(f"{path}: expected {expected}; found {found}")
    fh.seek(0)
    return fh


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file; DatasetError naming the first missing key, or what
    the file is when it is not an .npz archive. Nothing is unpickled (allow_pickle=False)."""
    expected = "a .npz archive of arrays"
    with open_dataset(path, expected, ("a zip archive",)) as fh:
        try:
            npz = np.load(fh, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{path}: expected {expected}; found a damaged zip archive ({exc})") from None
        with npz:
            present = set(npz.files)
            for key in keys:
                if key not in present:
                    raise DatasetError(f"{path}: missing key {key!r} (has: {', '.join(sorted(present)) or 'none'})")
            out = {}
            for key in keys:
                try:
                    out[key] = npz[key]
                except (OSError, ValueError, zipfile.BadZipFile):
                    raise DatasetError(f"{path}: key {key!r} is not a plain array (object arrays are never "
                                       f"loaded, or the member is damaged)") from None  # fmt: skip
            return out


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
