"""The file readers behind derive.py: hashes, bounded JSON and JSON Lines, safetensors and npz
headers. Torch-free; every file is opened as a regular file and read within a limit.

A `Source` is one subject's files read at most once (run.json, the metrics rows, sidecars,
hashes); derive_key builds a fresh one per call, so every value is recomputed from the
bytes on disk now. Hashes are cached across calls by (path, size, mtime, ctime, inode) only,
which an edit of the bytes always changes (ctime cannot be set back).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainledger.engines.provenance.model import Evidence
from trainledger.engines.provenance.subject import Subject
from trainledger.engines.safeio import open_regular_file, read_regular
from trainledger.engines.workspace import EVENTS_FILE, METRICS_FILE, RUN_FILE, Workspace

_CHUNK = 1 << 20
JSON_LIMIT = 64 << 20  # a sidecar, a run.json, a JSON artifact
JSONL_LIMIT = 1 << 30  # metrics.jsonl / events.jsonl, all lines together
HEADER_LIMIT = 100 << 20  # a safetensors header (the format's own limit is 100 MB)
_HASH_CACHE: dict[tuple[str, int, int, int, int], str] = {}
_HASH_CACHE_MAX = 512


class Unprovable(ValueError):
    """A value the files cannot prove: its text is the claim's reason (one line)."""


def number(value: Any) -> float | None:
    """A finite number, else None (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def count(value: Any) -> int | None:
    """A non-negative integer, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def rel(ws: Workspace, path: Path) -> str:
    """Workspace-relative POSIX when inside the workspace, else the absolute path."""
    p = Path(path).absolute()
    try:
        return p.relative_to(Path(ws.root).absolute()).as_posix()
    except ValueError:
        return str(p)


def sha256_file(path: Path) -> str:
    """sha256 of a regular file's bytes (cached by its stat); OSError when it cannot be read."""
    with open_regular_file(path) as fh:
        st = os.fstat(fh.fileno())
        key = (str(Path(path).absolute()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
        h = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if len(_HASH_CACHE) >= _HASH_CACHE_MAX:
        _HASH_CACHE.clear()
    _HASH_CACHE[key] = digest
    return digest


def sha256_path(path: Path) -> str:
    """A file's sha256, or a folder's sha256_tree (docs/formats.md)."""
    if Path(path).is_dir():
        from trainledger.engines.training.provenance import sha256_tree

        return sha256_tree(Path(path))
    return sha256_file(path)


def read_json(path: Path, limit: int = JSON_LIMIT, shown: str | None = None) -> Any:
    name = shown or path.name
    try:
        data = read_regular(path, limit)
    except FileNotFoundError:
        raise Unprovable(f"{name}: no such file") from None
    except OSError as exc:
        raise Unprovable(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Unprovable(f"{name}: not JSON ({str(exc)[:120]})") from None


def read_jsonl(path: Path, limit: int = JSONL_LIMIT, shown: str | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines file (other lines skipped, as the metrics reader does)."""
    name = shown or path.name
    rows: list[dict[str, Any]] = []
    try:
        with open_regular_file(path) as fh:
            total = 0
            for line in fh:
                total += len(line)
                if total > limit:
                    raise Unprovable(f"{name}: over the {limit}-byte limit")
                if not line.endswith(b"\n") or not line.strip():
                    continue  # a last line still being written, or a blank one
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(obj, dict):
                    rows.append(obj)
    except FileNotFoundError:
        raise Unprovable(f"{name}: no such file") from None
    except OSError as exc:
        raise Unprovable(f"{name}: cannot be read ({exc.strerror or exc})") from None
    return rows


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor names -> dtype, shape, offsets; and
    `__metadata__`), read without loading a tensor."""
    try:
        with open_regular_file(path) as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise Unprovable(f"{path.name}: too short to be safetensors")
            (size,) = struct.unpack("<Q", head)
            if size > HEADER_LIMIT:
                raise Unprovable(f"{path.name}: a {size}-byte safetensors header is over the limit")
            raw = fh.read(size)
    except FileNotFoundError:
        raise Unprovable(f"{path.name}: no such file") from None
    except OSError as exc:
        raise Unprovable(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise Unprovable(f"{path.name}: its safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise Unprovable(f"{path.name}: its safetensors header is not an object")
    return header


def tensor_elements(header: dict[str, Any], name: str = "") -> tuple[int, int]:
    """(element count summed over every tensor, tensor count) of a safetensors header."""
    total = tensors = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(count(d) is not None for d in shape):
            raise Unprovable(f"{name or 'safetensors'}: tensor {key!r} has no valid shape")
        total += math.prod(shape)
        tensors += 1
    return total, tensors


def npz_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{key: (shape, dtype)} of an .npz from each member's .npy header; nothing is loaded and
    nothing unpickled (an object array is refused, as np.load(allow_pickle=False) would)."""
    import numpy as np

    out: dict[str, tuple[tuple[int, ...], str]] = {}
    try:
        with open_regular_file(path) as raw, zipfile.ZipFile(raw) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                if dtype.hasobject:
                    raise Unprovable(f"{path.name}: {info.filename[:-4]!r} is a pickled object array (refused)")
                out[info.filename[:-4]] = (tuple(int(d) for d in shape), dtype.str)
    except FileNotFoundError:
        raise Unprovable(f"{path.name}: no such file") from None
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        if isinstance(exc, Unprovable):
            raise
        raise Unprovable(f"{path.name}: not a readable .npz ({str(exc)[:120]})") from None
    return out


@dataclass
class Source:
    """One subject's files, each read at most once per derivation."""

    ws: Workspace
    subject: Subject
    _memo: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path | None:
        return self.subject.run_dir

    @property
    def run(self) -> dict[str, Any]:
        return self.subject.run

    @property
    def config(self) -> dict[str, Any]:
        c = self.run.get("config")
        return c if isinstance(c, dict) else {}

    def need_run(self) -> Path:
        if self.run_dir is None:
            raise Unprovable(f"{self.subject.label} has no run folder in this workspace")
        return self.run_dir

    def evidence(self, path: Path, how: str) -> Evidence:
        """Evidence for `path` with its sha256 now (Unprovable when it cannot be hashed)."""
        key = f"sha:{path}"
        if key not in self._memo:
            try:
                self._memo[key] = sha256_path(path)
            except FileNotFoundError:
                raise Unprovable(f"{rel(self.ws, path)}: no such file") from None
            except OSError as exc:
                raise Unprovable(f"{rel(self.ws, path)}: cannot be read ({exc.strerror or exc})") from None
        return Evidence(rel(self.ws, path), self._memo[key], how)

    def run_evidence(self, how: str) -> Evidence:
        run_dir = self.need_run()
        if not self.run:
            raise Unprovable(f"{rel(self.ws, run_dir / RUN_FILE)} is missing or not a JSON object")
        return self.evidence(run_dir / RUN_FILE, how)

    def cached(self, key: str, make: Any) -> Any:
        if key not in self._memo:
            try:
                self._memo[key] = make()
            except Unprovable as exc:
                self._memo[key] = exc
        value = self._memo[key]
        if isinstance(value, Unprovable):
            raise value
        return value

    def metrics(self) -> list[dict[str, Any]]:
        return self.cached("metrics", lambda: read_jsonl(self.need_run() / METRICS_FILE, shown=METRICS_FILE))

    def events(self) -> list[dict[str, Any]]:
        return self.cached("events", lambda: read_jsonl(self.need_run() / EVENTS_FILE, shown=EVENTS_FILE))

    def sidecar(self, tag: str) -> dict[str, Any]:
        def make() -> dict[str, Any]:
            obj = read_json(self.need_run() / "checkpoints" / f"{tag}.json", shown=f"checkpoints/{tag}.json")
            if not isinstance(obj, dict):
                raise Unprovable(f"checkpoints/{tag}.json is not a JSON object")
            return obj

        return self.cached(f"sidecar:{tag}", make)
