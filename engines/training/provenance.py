"""What a run records about where it ran and on what: library versions, device, data hash."""

from __future__ import annotations

import hashlib
import platform
import sys
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def library_versions() -> dict[str, str | None]:
    """python, torch, numpy, safetensors and trainledger versions (None if not importable)."""
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "numpy", "safetensors", "trainledger"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            module = sys.modules.get(name)
            out[name] = getattr(module, "__version__", None) if module else None
    return out


def resolve_device(device: str) -> str:
    """auto -> cuda, then mps, then cpu. An explicit device that is not there is a ValueError."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cuda" and not cuda:
        raise ValueError("--device cuda: torch sees no CUDA device")
    if device == "mps" and not mps:
        raise ValueError("--device mps: torch sees no MPS device")
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
    return device


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(root: Path) -> str:
    """One hash over a folder: for each file in sorted relative (POSIX) path order, the path
    in UTF-8, a NUL, the size in decimal, a NUL, then the bytes. Empty folders do not count."""
    h = hashlib.sha256()
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    for rel, path in files:
        h.update(rel.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def describe_data(task: Any) -> dict[str, Any] | None:
    """run.json's `data`: the task's own `data_info` if it has one, else its `data_path`
    with a sha256 (file: of its bytes; folder: sha256_tree), else None."""
    info = getattr(task, "data_info", None)
    if isinstance(info, dict):
        return dict(info)
    path = getattr(task, "data_path", None)
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        return {"path": str(path.resolve()), "kind": "folder", "sha256": sha256_tree(path)}
    if path.is_file():
        return {"path": str(path.resolve()), "kind": "file", "sha256": sha256_file(path),
                "bytes": path.stat().st_size}  # fmt: skip
    return {"path": str(path), "kind": "missing", "sha256": None}
