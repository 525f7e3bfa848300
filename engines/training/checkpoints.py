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
import torch
from safetensors.torch import load as load_safetensors  # bytes -> tensors; never pickle
from torch import Tensor, nn

from trainledger.engines.workspace import atomic_write_bytes, atomic_write_json

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_SCHEMA = "trainledger-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted: a missing or forged sidecar, a file that is not
    in the checkpoints folder, or bytes whose sha256 differs from the sidecar's."""


def read_sidecar(path: Path) -> dict[str, Any]:
    """A checkpoint sidecar (JSON object) as written by write_checkpoint_bytes."""
    import msgspec

    from trainledger.engines.safeio import read_regular

    try:
        sidecar = msgspec.json.decode(read_regular(path, 1 << 20))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint sidecar") from None
    except (OSError, msgspec.DecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint sidecar ({exc})") from None
    if not isinstance(sidecar, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return sidecar


def checkpoint_position(sidecar: dict[str, Any], path: Path) -> tuple[int, int]:
    """(step, epoch) a sidecar says its checkpoint was taken at; both integers >= 0."""
    step, epoch = sidecar.get("step", 0), sidecar.get("epoch", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (step, epoch)):
        raise CheckpointError(f"{path}: step and epoch must be integers >= 0")
    return step, epoch


def verified_bytes(folder: Path, ref: dict[str, Any], sidecar: Path) -> tuple[Path, bytes]:
    """The bytes of the file `ref["file"]` names in `folder`, checked against `ref["sha256"]`.

    The name must be a plain file name (an id: no separator, no leading dot), as
    engines/san/export.py requires, so a forged sidecar cannot point outside `folder`;
    the file must be a regular one (a FIFO is refused, not waited on)."""
    from trainledger.engines.safeio import open_regular_file
    from trainledger.engines.workspace import InvalidId, validate_id

    name, digest = ref.get("file"), ref.get("sha256")
    if not isinstance(name, str) or not isinstance(digest, str):
        raise CheckpointError(f"{sidecar}: no checkpoint file or sha256 named")
    try:
        path = folder / validate_id(name, "checkpoint file")
    except InvalidId:
        raise CheckpointError(f"{sidecar}: checkpoint file {name!r} is not a file name in {folder}") from None
    try:
        with open_regular_file(path) as fh:
            data = fh.read()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc})") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise CheckpointError(f"{path}: sha256 does not match its sidecar")
    return path, data


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

    folder = run_dir / CHECKPOINT_DIR
    if not isinstance(ref, dict):
        raise CheckpointError(f"{folder}/last.json: trainer_state is not an object")
    path, data = verified_bytes(folder, ref, folder / "last.json")
    tensors = load_safetensors(data)
    try:  # the metadata from the verified bytes (8-byte little-endian header length, JSON header)
        header = msgspec.json.decode(data[8 : 8 + int.from_bytes(data[:8], "little")])
        meta = msgspec.json.decode(header["__metadata__"]["optimizer"])
    except (msgspec.DecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: no optimizer state in its metadata ({exc})") from None
    return _unflatten_optimizer(tensors, meta), tensors.get("rng.shuffle")


def load_checkpoint(run_dir: Path, tag: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors and sidecar of a checkpoint; CheckpointError (a ValueError) if the sidecar is
    missing or names anything but a file of the checkpoints folder, or the sha256 differs."""
    from trainledger.engines.workspace import InvalidId, validate_id

    folder = run_dir / CHECKPOINT_DIR
    try:
        validate_id(tag, "checkpoint")
    except InvalidId as exc:
        raise CheckpointError(str(exc)) from None
    side = folder / f"{tag}.json"
    sidecar = read_sidecar(side)
    _, data = verified_bytes(folder, sidecar, side)
    return load_safetensors(data), sidecar


# ----------------------------------------------------------------------------- the loop
