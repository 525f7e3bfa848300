"""On-disk column cache, so reopening a million-row run takes milliseconds, not a second.

A cache is a folder `cache_dir/<run_id>/` holding `meta.json` and one `.npy` per
column. It records the identity of the metrics.jsonl it was parsed from (device, inode,
byte offset, hash of the first bytes) and is used only while the file still matches;
then only the bytes appended since need parsing. Caches are written atomically (a temp
folder renamed into place, meta.json written last) and any problem reading one means
"no cache": the caller parses the file instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import msgspec
import numpy as np

from trainledger.engines.safeio import open_regular_file, read_regular
from trainledger.engines.workspace import InvalidId, validate_id

CACHE_VERSION = 3  # 2: sparse metrics as (row, value) pairs; 3: a non-numeric step is malformed
META_LIMIT = 16 << 20  # meta.json names at most 10,000 metrics
META = "meta.json"
HEAD_BYTES = 4096
_HEADROOM = 0.25  # extra capacity given to loaded columns so appends do not copy at once


@dataclass
class CachedColumns:
    """Columns loaded from a valid cache, in arrays with spare capacity."""

    n: int
    capacity: int
    step: np.ndarray  # each of length `capacity`; [0, n) holds the data
    epoch: np.ndarray
    time: np.ndarray
    metrics: dict[str, np.ndarray]
    identity: dict[str, Any]
    sparse: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    malformed: int = 0
    lines: int | None = None
    examples: list[str] = field(default_factory=list)


def cache_path(cache_dir: Path, run_id: str) -> Path | None:
    """The cache folder for a run, or None when the id is not a safe folder name."""
    try:
        return Path(cache_dir) / validate_id(run_id, "run id")
    except InvalidId:
        return None


def _file_matches(path: Path, identity: Mapping[str, Any]) -> bool:
    offset = identity["offset"]
    with open_regular_file(path) as fh:
        st = os.fstat(fh.fileno())
        if (st.st_dev, st.st_ino) != (identity["dev"], identity["ino"]):
            return False
        if st.st_size < offset:
            return False
        head = fh.read(min(HEAD_BYTES, offset))
    return hashlib.sha256(head).hexdigest() == identity["fingerprint"]


def _read_npy_into(path: Path, out: np.ndarray, n: int) -> bool:
    """Read a float64 vector of length n from a .npy file into out[:n] without a copy."""
    with open_regular_file(path) as fh:
        major, _minor = np.lib.format.read_magic(fh)
        if major == 1:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif major == 2:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            return False
        if shape != (n,) or dtype != np.dtype("<f8"):
            return False
        view = memoryview(out[:n]).cast("B")
        got = 0
        while got < len(view):
            k = fh.readinto(view[got:])
            if not k:
                return False
            got += k
        return fh.read(1) == b""


def cache_is_fresh(cache_dir: Path, run_id: str, metrics_path: Path) -> bool:
    """Whether a cache exists that still matches the file (meta only; arrays not read)."""
    folder = cache_path(cache_dir, run_id)
    if folder is None:
        return False
    try:
        meta = msgspec.json.decode(read_regular(folder / META, META_LIMIT))
        return (
            isinstance(meta, dict)
            and meta.get("version") == CACHE_VERSION
            and _file_matches(metrics_path, meta["identity"])
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError, msgspec.DecodeError):
        return False


def _read_pairs(folder: Path, i: int, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A sparse metric's (row index, value) pairs; the rows are stored as float64."""
    rows, vals = np.empty(count), np.empty(count)
    if not (_read_npy_into(folder / f"s{i}.idx.npy", rows, count)
            and _read_npy_into(folder / f"s{i}.npy", vals, count)):  # fmt: skip
        return None
    return rows.astype(np.int64), vals


def load_cache(cache_dir: Path, run_id: str, metrics_path: Path) -> CachedColumns | None:
    """The cached columns for `metrics_path`, or None if absent, stale or damaged."""
    folder = cache_path(cache_dir, run_id)
    if folder is None:
        return None
    try:
        meta = msgspec.json.decode(read_regular(folder / META, META_LIMIT))
        if not isinstance(meta, dict) or meta.get("version") != CACHE_VERSION:
            return None
        ident = meta["identity"]
        n, keys = meta["n"], meta["keys"]
        sparse_keys, counts = meta.get("sparse", []), meta.get("counts", [])
        if not (
            isinstance(ident, dict)
            and all(isinstance(ident.get(k), int) for k in ("dev", "ino", "offset"))
            and isinstance(ident.get("fingerprint"), str)
            and isinstance(n, int)
            and n >= 0
            and isinstance(keys, list)
            and all(isinstance(k, str) for k in keys)
            and len(set(keys)) == len(keys)
            and isinstance(sparse_keys, list)
            and all(isinstance(k, str) and k not in keys for k in sparse_keys)
            and isinstance(counts, list)
            and len(counts) == len(sparse_keys)
            and all(isinstance(c, int) and 0 <= c <= n for c in counts)
        ):
            return None
        if not _file_matches(metrics_path, ident):
            return None
        cap = n + max(1024, int(n * _HEADROOM))
        cols: dict[str, np.ndarray] = {}
        for name, file in [("step", "step"), ("epoch", "epoch"), ("time", "time")] + [
            (k, f"m{i}") for i, k in enumerate(keys)
        ]:
            arr = np.empty(cap)
            if not _read_npy_into(folder / f"{file}.npy", arr, n):
                return None
            cols[name] = arr
        sparse = {}
        for i, (name, count) in enumerate(zip(sparse_keys, counts)):
            pairs = _read_pairs(folder, i, count)
            if pairs is None:
                return None
            sparse[name] = pairs
        malformed = meta.get("malformed", 0)
        lines = meta.get("lines")
        examples = meta.get("examples", [])
        step, epoch, time_ = cols.pop("step"), cols.pop("epoch"), cols.pop("time")
        return CachedColumns(
            n=n,
            capacity=cap,
            step=step,
            epoch=epoch,
            time=time_,
            metrics=cols,
            identity=dict(ident),
            sparse=sparse,
            malformed=malformed if isinstance(malformed, int) else 0,
            lines=lines if isinstance(lines, int) else None,
            examples=[e for e in examples if isinstance(e, str)][:5]
            if isinstance(examples, list)
            else [],
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError, msgspec.DecodeError):
        return None


def save_cache(
    cache_dir: Path,
    run_id: str,
    *,
    identity: Mapping[str, Any],
    step: np.ndarray,
    epoch: np.ndarray,
    time: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    malformed: int = 0,
    lines: int | None = None,
    examples: Sequence[str] = (),
    sparse: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> bool:
    """Write the cache atomically; False (and nothing left behind) if it could not be."""
    folder = cache_path(cache_dir, run_id)
    if folder is None or identity.get("dev") is None:
        return False
    n = int(step.shape[0])
    keys = list(metrics)
    tag = secrets.token_hex(4)
    tmp = folder.parent / f".{folder.name}.{tag}.tmp"
    old = folder.parent / f".{folder.name}.{tag}.old"
    try:
        tmp.mkdir(parents=True)
        cols = [("step", step[:n]), ("epoch", epoch[:n]), ("time", time[:n])]
        cols += [(f"m{i}", metrics[k][:n]) for i, k in enumerate(keys)]
        pairs = dict(sparse or {})
        for i, (rows, vals) in enumerate(pairs.values()):
            cols += [(f"s{i}.idx", rows), (f"s{i}", vals)]
        for file, arr in cols:
            with open(tmp / f"{file}.npy", "wb") as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr, dtype="<f8"))
        meta = {
            "version": CACHE_VERSION,
            "identity": dict(identity),
            "n": n,
            "keys": keys,
            "sparse": list(pairs),
            "counts": [int(v[0].size) for v in pairs.values()],
            "malformed": int(malformed),
            "lines": lines,
            "examples": list(examples)[:5],
        }
        (tmp / META).write_bytes(msgspec.json.encode(meta))  # last: marks it complete
        try:
            os.rename(folder, old)
        except FileNotFoundError:
            pass
        os.rename(tmp, folder)
        return True
    except (OSError, ValueError, TypeError):
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
