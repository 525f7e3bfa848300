"""Checkpoints of a run: safetensors files with sha256 sidecars, written atomically.

Model weights and the trainer's own state (optimizer tensors flattened to safetensors,
the shuffle generator) are kept apart so a model file never needs more than
safetensors to read. Loading verifies the sha256 before anything is used; nothing is
unpickled.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import safetensors.torch
from safetensors.torch import load as load_safetensors  # bytes -> tensors; never pickle
import torch
from torch import Tensor, nn

from trainledger.engines.workspace import atomic_write_bytes, atomic_write_json

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_SCHEMA = "trainledger-checkpoint/1"


def save_checkpoint(run_dir: Path, tag: str, model: nn.Module, info: dict[str, Any]) -> dict[str, Any]:
    """Write checkpoints/<tag>.safetensors, then its <tag>.json sidecar, each atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_checkpoint_bytes(run_dir, tag, safetensors.torch.save(state, metadata={"tag": tag}), info)


def write_checkpoint_bytes(run_dir: Path, tag: str, data: bytes, info: dict[str, Any]) -> dict[str, Any]:
    """The file and its sha256 sidecar, for any backend's safetensors bytes."""
    folder = run_dir / CHECKPOINT_DIR
    atomic_write_bytes(folder / f"{tag}.safetensors", data)
    sidecar = {
        "schema": CHECKPOINT_SCHEMA,
        "file": f"{tag}.safetensors",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "time": time.time(),
        **info,
    }
    atomic_write_json(folder / f"{tag}.json", sidecar)
    return sidecar


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer state_dict as flat tensors `optim.<param>.<name>` plus JSON for the rest."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    # safetensors gives the tensors back in no fixed order: put the params back in theirs
    return {"state": {i: state[i] for i in sorted(state)}, "param_groups": meta["param_groups"]}


def save_trainer_state(
    run_dir: Path, tag: str, optimizer: torch.optim.Optimizer, shuffle: torch.Generator
) -> dict[str, Any]:
    """checkpoints/<tag>.trainer.safetensors: the optimizer's tensors and the shuffling RNG,
    for --resume. Returns {"file", "sha256"} for the model checkpoint's sidecar."""
    import msgspec

    tensors, meta = _flatten_optimizer(optimizer.state_dict())
    tensors["rng.shuffle"] = shuffle.get_state()
    data = safetensors.torch.save(tensors, metadata={"optimizer": msgspec.json.encode(meta).decode()})
    name = f"{tag}.trainer.safetensors"
    atomic_write_bytes(run_dir / CHECKPOINT_DIR / name, data)
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest()}


def load_trainer_state(run_dir: Path, ref: dict[str, Any]) -> tuple[dict[str, Any], Tensor | None]:
    """The optimizer state_dict and shuffle RNG state saved by save_trainer_state."""
    import msgspec
    from safetensors import safe_open

    path = run_dir / CHECKPOINT_DIR / ref["file"]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise ValueError(f"{path}: sha256 does not match the checkpoint sidecar")
    tensors = load_safetensors(data)
    with safe_open(str(path), "pt") as f:
        meta = msgspec.json.decode(f.metadata()["optimizer"])
    return _unflatten_optimizer(tensors, meta), tensors.get("rng.shuffle")


def load_checkpoint(run_dir: Path, tag: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors and sidecar of a checkpoint; ValueError if the file's sha256 does not match."""
    import msgspec

    folder = run_dir / CHECKPOINT_DIR
    sidecar = msgspec.json.decode((folder / f"{tag}.json").read_bytes())
    data = (folder / sidecar["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != sidecar["sha256"]:
        raise ValueError(f"{folder / sidecar['file']}: sha256 does not match its sidecar")
    return load_safetensors(data), sidecar


# ----------------------------------------------------------------------------- the loop
