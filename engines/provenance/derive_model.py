"""Claims about the weights and how they were trained: checkpoint, parameters, optimizer, lr,
deployed epoch, the base of a LoRA run, a SAN export's manifest and weights, reproduction.

Each function takes a derive_files.Source and returns (value, evidence, how-label) through
a Claim; what the files cannot prove raises Unprovable with the reason. Torch-free: tensor
counts come from safetensors headers, the optimizer from the trainer state's metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainledger.engines.provenance.derive_files import (
    Source,
    Unprovable,
    count,
    number,
    rel,
    safetensors_header,
    sha256_file,
    tensor_elements,
)
from trainledger.engines.provenance.model import Claim, Evidence
from trainledger.engines.workspace import InvalidId, validate_id

MODEL_FILE = "model.safetensors"
REGISTRY_DB = "registry/registry.db"


def checkpoint_file(src: Source, tag: str) -> tuple[Path, tuple[Evidence, ...]]:
    """checkpoints/<tag>.safetensors, its bytes checked against the sidecar's sha256."""
    run_dir = src.need_run()
    side = src.sidecar(tag)
    name, digest = side.get("file"), side.get("sha256")
    try:
        path = run_dir / "checkpoints" / validate_id(name if isinstance(name, str) else "", "checkpoint file")
    except InvalidId:
        raise Unprovable(f"checkpoints/{tag}.json names no checkpoint file in its folder") from None
    ev = src.evidence(path, f"sha256 of the file, as checkpoints/{tag}.json claims")
    if ev.sha256 != digest:
        raise Unprovable(f"{ev.path}: sha256 {ev.sha256[:12]}… does not match checkpoints/{tag}.json"
                         f" ({str(digest)[:12]}…)")  # fmt: skip
    side_ev = src.evidence(run_dir / "checkpoints" / f"{tag}.json", "the checkpoint's sidecar")
    return path, (ev, side_ev)


def version_model_blob(src: Source) -> tuple[Path, Evidence]:
    """The registry blob of a version's model file (model.safetensors, else its one
    *.safetensors artifact), its bytes checked against the registered sha256."""
    from trainledger.engines.registry.blobs import blob_path
    from trainledger.engines.registry.types import RegistryError

    version = src.subject.version
    assert version is not None
    arts = [a for a in version.artifacts if a.name == MODEL_FILE] or [
        a for a in version.artifacts if a.name.endswith(".safetensors")
    ]
    if len(arts) != 1:
        raise Unprovable(f"{src.subject.label} has no single safetensors artifact"
                         f" ({len(version.artifacts)} artifacts)")  # fmt: skip
    art = arts[0]
    try:
        path = blob_path(src.ws.registry_dir, art.sha256)
    except RegistryError as exc:
        raise Unprovable(str(exc)) from None
    ev = src.evidence(path, f"the registry blob of {src.subject.label} {art.name}")
    if ev.sha256 != art.sha256:
        raise Unprovable(f"{ev.path}: its bytes no longer hash to the registered sha256 (corrupt)")
    return path, ev


def model_weights(src: Source) -> tuple[Path, tuple[Evidence, ...], str]:
    """The weights the subject is about: a version's blob, else the run's best checkpoint."""
    if src.subject.version is not None:
        path, ev = version_model_blob(src)
        return path, (ev,), f"registry blob of {src.subject.label}"
    path, evs = checkpoint_file(src, "best")
    return path, evs, "checkpoints/best.safetensors"


def checkpoint(src: Source, key: str) -> Claim:
    tag = "last" if key == "checkpoint.last" else "best"
    if src.subject.version is not None and tag == "best":
        path, ev = version_model_blob(src)
        return Claim(key, ev.path, (ev,), label="checkpoint (registry blob)")
    path, evs = checkpoint_file(src, tag)
    return Claim(key, rel(src.ws, path), evs, label=f"{tag} checkpoint")


def parameters(src: Source, key: str) -> Claim:
    path, evs, what = model_weights(src)
    total, tensors = tensor_elements(safetensors_header(path), rel(src.ws, path))
    how = f"sum of element counts of the {tensors} tensors in the safetensors header of {what}"
    if src.subject.kind == "lora-lm":
        how += " (the LoRA adapters only: the base's weights are not in the file)"
    first = Evidence(evs[0].path, evs[0].sha256, how)
    return Claim(key, int(total), (first, *evs[1:]), label="parameter count")


def optimizer(src: Source, key: str) -> Claim:
    name = src.config.get("optimizer")
    if not isinstance(name, str) or not name:
        raise Unprovable("run.json config records no optimizer")
    return Claim(key, name, (src.run_evidence("run.json config.optimizer, as the trainer recorded it"),),
                 label="optimizer")  # fmt: skip


def lr(src: Source, key: str) -> Claim:
    value = number(src.config.get("lr"))
    if value is None:
        raise Unprovable("run.json config records no lr")
    return Claim(key, value, (src.run_evidence("run.json config.lr, the learning rate the run was given"),),
                 label="learning rate")  # fmt: skip


def trainer_param_groups(src: Source) -> tuple[list[dict[str, Any]], Evidence]:
    """The optimizer's param groups from last.trainer.safetensors' `optimizer` metadata, its
    bytes checked against last.json's trainer_state sha256."""
    run_dir = src.need_run()
    ref = src.sidecar("last").get("trainer_state")
    if not isinstance(ref, dict) or not isinstance(ref.get("file"), str):
        raise Unprovable("checkpoints/last.json names no trainer_state")
    try:
        path = run_dir / "checkpoints" / validate_id(ref["file"], "trainer state file")
    except InvalidId:
        raise Unprovable("checkpoints/last.json: trainer_state names no file in its folder") from None
    if sha256_file(path) != ref.get("sha256"):
        raise Unprovable(f"{rel(src.ws, path)}: sha256 does not match checkpoints/last.json")
    meta = safetensors_header(path).get("__metadata__")
    try:
        groups = json.loads(meta["optimizer"])["param_groups"]
    except (TypeError, KeyError, ValueError):
        raise Unprovable(f"{rel(src.ws, path)}: no optimizer param groups in its metadata") from None
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        raise Unprovable(f"{rel(src.ws, path)}: no optimizer param groups in its metadata")
    return groups, src.evidence(path, "metadata `optimizer`: param_groups[0].lr at the last checkpoint")


def lr_final(src: Source, key: str) -> Claim:
    groups, ev = trainer_param_groups(src)
    value = number(groups[0].get("lr"))
    if value is None:
        raise Unprovable(f"{ev.path}: param group 0 has no lr")
    return Claim(key, value, (ev,), label="learning rate at the last checkpoint")


def deployed_epoch(src: Source, key: str) -> Claim:
    version = src.subject.version
    if version is None:
        side = src.sidecar("last")
        epoch = count(side.get("epoch"))
        if epoch is None:
            raise Unprovable("checkpoints/last.json has no epoch")
        ev = src.evidence(src.need_run() / "checkpoints" / "last.json",
                          "epoch of the last checkpoint: the run's final weights (not deployed yet)")  # fmt: skip
        return Claim(key, epoch, (ev,), label="epoch of the final weights")
    if version.epoch is None:
        raise Unprovable(f"the registry records no epoch for {src.subject.label}")
    _, blob = version_model_blob(src)
    evs = [Evidence(blob.path, blob.sha256, f"registry: {src.subject.label} was deployed from epoch {version.epoch}")]
    if src.run_dir is not None and version.checkpoint in ("best", "last"):
        try:
            side = src.sidecar(version.checkpoint)
        except Unprovable:
            side = {}
        if side.get("sha256") == blob.sha256:
            if count(side.get("epoch")) != version.epoch:
                raise Unprovable(f"checkpoints/{version.checkpoint}.json says epoch {side.get('epoch')}"
                                 f" for these bytes, the registry {version.epoch}")  # fmt: skip
            evs.append(src.evidence(src.run_dir / "checkpoints" / f"{version.checkpoint}.json",
                                    "the sidecar naming the same sha256 at the same epoch"))  # fmt: skip
    return Claim(key, int(version.epoch), tuple(evs), label="deployed epoch")


def base_checkpoint(src: Source, key: str) -> Claim:
    """lora-lm: the base run's checkpoint the adapters were trained on, hashed now."""
    base = src.config.get("base_run")
    ref = src.config.get("base_checkpoint")
    if not isinstance(base, str) or not isinstance(ref, dict) or not isinstance(ref.get("sha256"), str):
        raise Unprovable("run.json config records no base_run / base_checkpoint")
    tag = ref.get("tag") if isinstance(ref.get("tag"), str) else "best"
    try:
        base_dir = src.ws.run_dir(base) if "/" not in base else Path(base)
        validate_id(tag, "checkpoint")
    except InvalidId as exc:
        raise Unprovable(str(exc)) from None
    path = base_dir / "checkpoints" / f"{tag}.safetensors"
    ev = src.evidence(path, f"the base run's {tag} checkpoint, hashed now")
    if ev.sha256 != ref["sha256"]:
        raise Unprovable(f"{ev.path} now hashes {ev.sha256[:12]}…, the run trained on {ref['sha256'][:12]}…")
    return Claim(key, ev.sha256, (ev, src.run_evidence("run.json config.base_checkpoint.sha256")),
                 label=f"base checkpoint (run {base})")  # fmt: skip


def _san_export(src: Source) -> Path:
    """A SAN export's folder: the version's own files, else the run folder (or its export/)."""
    from trainledger.engines.san.export import MANIFEST_NAME

    for folder in (src.run_dir, src.run_dir / "export" if src.run_dir else None):
        if folder is not None and (folder / MANIFEST_NAME).is_file():
            return folder
    raise Unprovable("no san export (san_manifest.json) in the run folder; write one with"
                     " `trainledger san export RUN --out DIR` and deploy that folder")  # fmt: skip


def san_file(src: Source, key: str) -> Claim:
    from trainledger.engines.registry.blobs import blob_path
    from trainledger.engines.san.export import BIN_NAME, MANIFEST_NAME

    name = MANIFEST_NAME if key == "manifest" else BIN_NAME
    version = src.subject.version
    if version is not None:
        art = next((a for a in version.artifacts if a.name.rsplit("/", 1)[-1] == name), None)
        if art is not None:
            ev = src.evidence(blob_path(src.ws.registry_dir, art.sha256), f"registry blob of {art.name}")
            if ev.sha256 != art.sha256:
                raise Unprovable(f"{ev.path}: its bytes no longer hash to the registered sha256 (corrupt)")
            return Claim(key, ev.path, (ev,), label=f"{key} path")
    ev = src.evidence(_san_export(src) / name, f"the exported {name}")
    return Claim(key, ev.path, (ev,), label=f"{key} path")


def reproduce(src: Source, key: str) -> Claim:
    from trainledger.engines.registry.repro import reproduction_command

    if src.run:
        line = reproduction_command(src.run)
        if line is None:
            raise Unprovable("run.json does not say the model and its config")
        return Claim(key, line, (src.run_evidence("engines/registry/repro.py reproduction_command(run.json)"),),
                     label="reproduction command")  # fmt: skip
    version = src.subject.version
    if version is not None and version.reproduce:
        return Claim(key, version.reproduce, (Evidence(REGISTRY_DB, None, "versions.reproduce, recorded at deploy"),),
                     label="reproduction command")  # fmt: skip
    raise Unprovable("no run.json to build the command from")
