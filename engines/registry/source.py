"""What `deploy` registers: a run's checkpoint (best unless told otherwise) or a folder, as a Candidate.

Seed 002 deployed the last epoch while the best was epoch 6: a candidate from a run says
which epoch its checkpoint is, whether it is the run's best and whether it is the last, and
carries what the run recorded about its data and how to remake it. Nothing here imports
torch; the console builds candidates for its confirmations.

A run's candidate is one file, `model.safetensors`: the checkpoint's bytes, with the sha256
its sidecar claims (checked while copied, and by sanity.py). For lora-lm that file already
is the adapters and nothing else: lora.py turns the base's parameters into non-persistent
buffers, so the loop's checkpoints hold only the lora_A / lora_B tensors, which the probe
loads strictly into the rebuilt LoRA model. The base is named by `base_model` (the run's
--base), not copied. The run folder's own adapters.safetensors / adapters.json are not
added: they repeat the best checkpoint's tensors (with another header) and have no `last`.

A folder's candidate is every regular file under it, hidden names (`.DS_Store`, `.git/`)
skipped; a link, to a file or a folder, whose target is outside the folder is refused, a
link to a folder inside it is skipped (its files are listed under their own path).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from trainledger.engines.registry.repro import reproduction_command
from trainledger.engines.registry.types import Candidate, RegistryError, RegistryUsageError, SourceFile
from trainledger.engines.safeio import FileTooLarge, NotRegularFile, read_regular
from trainledger.engines.workspace import RUN_FILE, RUN_FILE_LIMIT, InvalidId, Workspace, validate_id

CHECKPOINTS = ("best", "last")
MODEL_FILE = "model.safetensors"
FOLDER_FILE_LIMIT = 10_000  # files in a --path folder


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(read_regular(path, RUN_FILE_LIMIT))
    except FileNotFoundError:
        raise RegistryError(f"{path}: no {what}") from None
    except (OSError, NotRegularFile, FileTooLarge, msgspec.DecodeError) as exc:
        raise RegistryError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: {what} is not a JSON object")
    return data


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def candidate_from_run(ws: Workspace, run_id: str, checkpoint: str = "best") -> Candidate:
    """The run's `checkpoint` ("best" or "last") with its epoch, best/last facts, metrics,
    data and reproduction command. RegistryError when the run or the checkpoint is missing."""
    try:
        run_dir = ws.run_dir(run_id)
    except InvalidId as exc:
        raise RegistryUsageError(str(exc)) from None
    if checkpoint not in CHECKPOINTS:
        raise RegistryUsageError(f"--checkpoint must be best or last, not {checkpoint!r}")
    if not run_dir.is_dir():
        raise RegistryError(f"no run {run_id!r} in {ws.runs_dir}")
    run = _read_json(run_dir / RUN_FILE, "run.json")
    folder = run_dir / "checkpoints"
    have = [tag for tag in CHECKPOINTS if (folder / f"{tag}.json").is_file()]
    if checkpoint not in have:
        listed = ", ".join(have) if have else "none"
        raise RegistryError(f"run {run_id} has no {checkpoint} checkpoint (its checkpoints: {listed})")
    sidecars = {tag: _read_json(folder / f"{tag}.json", f"{tag} checkpoint sidecar") for tag in have}
    side = sidecars[checkpoint]
    name, sha = side.get("file"), side.get("sha256")
    try:
        file_name = validate_id(name, "checkpoint file") if isinstance(name, str) else None
    except InvalidId:
        file_name = None
    if file_name is None or not isinstance(sha, str):
        raise RegistryError(f"{folder / (checkpoint + '.json')}: names no checkpoint file in its folder")
    epoch, step = _int(side.get("epoch")), _int(side.get("step"))
    best = sidecars.get("best")
    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    last_epoch = _int(summary.get("epoch"))
    if last_epoch is None and "last" in sidecars:
        last_epoch = _int(sidecars["last"].get("epoch"))
    if checkpoint == "best":
        is_best: bool | None = True
    else:
        is_best = None if best is None else (best.get("sha256") == sha or _int(best.get("step")) == step)
    is_last = None if epoch is None or last_epoch is None else epoch == last_epoch
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    options = run.get("task_options") if isinstance(run.get("task_options"), dict) else {}
    data = run.get("data") if isinstance(run.get("data"), dict) else {}
    metrics = {k: float(v) for k, v in (side.get("metrics") or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}  # fmt: skip
    status = run.get("status")
    where = f"epoch {epoch} of {last_epoch}" if epoch is not None and last_epoch is not None else "epoch ?"
    still = ", still running" if status == "running" else ""
    return Candidate(
        kind=run.get("model") if isinstance(run.get("model"), str) else None,
        files=(SourceFile(MODEL_FILE, folder / file_name, sha),),
        source=f"run {run_id}, checkpoint {checkpoint} ({where}{still})",
        run_id=run_id, checkpoint=checkpoint, epoch=epoch, step=step, is_best=is_best, is_last=is_last,
        last_epoch=last_epoch,
        base_model=options.get("base") if isinstance(options.get("base"), str) else None,
        training_samples=_int(config.get("n_train")),
        metrics=metrics,
        dataset_path=data.get("path") if isinstance(data.get("path"), str) else None,
        dataset_sha256=data.get("sha256") if isinstance(data.get("sha256"), str) else None,
        reproduce=reproduction_command(run),
        backend=run.get("backend") if isinstance(run.get("backend"), str) else None,
    )  # fmt: skip


def candidate_from_path(path: Path, kind: str | None = None) -> Candidate:
    """Every regular file of a folder (a seed-004 adapters folder, a SAN export, ...), by its
    path relative to the folder; each part must be an id, and no symlink may leave the folder."""
    path = Path(path)
    if not path.is_dir():
        raise RegistryUsageError(f"{path}: not a folder")
    root = path.resolve()
    files: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):  # links to folders are not followed
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in dirnames:
            sub = Path(dirpath) / d
            if sub.is_symlink() and not sub.resolve().is_relative_to(root):
                raise RegistryUsageError(f"{sub}: a link out of {root}")
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            full = Path(dirpath) / fname
            rel = full.relative_to(root)
            try:
                for part in rel.parts:
                    validate_id(part, "file name")
            except InvalidId as exc:
                raise RegistryUsageError(f"{full}: {exc}") from None
            target = full.resolve()
            if not target.is_relative_to(root):
                raise RegistryUsageError(f"{full}: a link out of {root}")
            files.append(SourceFile(rel.as_posix(), full))
            if len(files) > FOLDER_FILE_LIMIT:
                raise RegistryUsageError(f"{path}: more than {FOLDER_FILE_LIMIT} files")
    if not files:
        raise RegistryUsageError(f"{path}: no files to deploy")
    return Candidate(kind=kind, files=tuple(files), source=str(root))
