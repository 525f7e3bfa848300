"""Claims derived from a subject's files: what `trainledger report` states and what `verify`
recomputes. Torch-free (the console verifies in a worker thread).

- `derive_claims(ws, subject) -> list[Claim]`: every claim the files allow for this subject,
  in report order; a field of seed 000's list that applies to the kind but cannot be proven
  is a Claim with value None, no evidence and the reason.
- `derive_key(ws, subject, key, artifact=None) -> Claim`: one vocabulary key recomputed now
  (field_share.<field> counts records in `artifact`); a Claim with no evidence and a reason
  when it cannot be (unknown key, not applicable to the kind, a file missing or changed).

Values are plain JSON: int for counts and epochs, float for metrics and lr, str for paths,
sha256s, the optimizer and the reproduction command, a list of str for target fields. The
evidence of each claim names its files (workspace-relative where inside), their sha256 now,
and how the value was computed. Where the value comes from:

| key | from |
| --- | --- |
| data_path, data_files, data_sha256, samples | the data named by run.json `data` (hashed and counted now) |
| train_samples, val_samples | run.json config.n_train / n_val, checked against the samples recounted |
| schema_version, input_dims, target_fields, split_method | the data (frames, npz headers), else run.json config |
| optimizer, lr | run.json config; lr.final from last.trainer.safetensors' `optimizer` metadata |
| epochs, best_epoch, best.<m>, last.<m> | metrics.jsonl (direction: run.json, else the name) |
| coverage.*, tokens.* | metrics.jsonl at the deployed epoch (a version) or the last row |
| checkpoint, parameters | checkpoints/best.safetensors checked against best.json (a version: its |
|  | registry blob); parameters: element counts summed from its safetensors header |
| deployed_epoch | a version: the registry's epoch (and the sidecar naming its bytes); a run: last.json |
| base_checkpoint | lora-lm: the base run's checkpoint hashed now against run.json |
| manifest, weights | san: the exported san_manifest.json / san_weights.bin (a version's blobs, or in the run folder) |
| reproduce | engines/registry/repro.py reproduction_command(run.json) |
| field_share.<f> | the artifact given (derive_fields.py) |
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trainledger.engines.provenance import derive_data as data
from trainledger.engines.provenance import derive_metrics as metrics
from trainledger.engines.provenance import derive_model as model
from trainledger.engines.provenance.derive_fields import field_share
from trainledger.engines.provenance.derive_files import Source, Unprovable
from trainledger.engines.provenance.model import Claim
from trainledger.engines.provenance.subject import Subject, resolve
from trainledger.engines.safetext import clean
from trainledger.engines.workspace import Workspace

Deriver = Callable[[Source, str], Claim]

# key -> how to derive it (best.* / last.* / field_share.* are handled by prefix)
KEYS: dict[str, Deriver] = {
    "data_path": data.data_path,
    "data_files": data.data_files,
    "data_sha256": data.data_sha256,
    "samples": data.samples,
    "train_samples": data.split_samples,
    "val_samples": data.split_samples,
    "schema_version": data.schema_version,
    "input_dims": data.input_dims,
    "target_fields": data.target_fields,
    "split_method": data.split_method,
    "optimizer": model.optimizer,
    "lr": model.lr,
    "lr.final": model.lr_final,
    "epochs": metrics.epochs,
    "best_epoch": metrics.best_epoch,
    "deployed_epoch": model.deployed_epoch,
    "checkpoint": model.checkpoint,
    "checkpoint.last": model.checkpoint,
    "parameters": model.parameters,
    "base_checkpoint": model.base_checkpoint,
    "manifest": model.san_file,
    "weights": model.san_file,
    "reproduce": model.reproduce,
    **{key: metrics.logged for key in metrics.LOGGED},
}

_DATA = ("data_path", "data_files", "data_sha256", "samples", "train_samples", "val_samples")
_TRAINING = ("split_method", "optimizer", "lr", "lr.final", "epochs", "best_epoch", "deployed_epoch",
             "checkpoint", "checkpoint.last", "parameters")  # fmt: skip
# the keys a report lists for each kind, before the metrics; (kind prefix, keys)
_PLAN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("san", (*_DATA, "schema_version", "input_dims", "target_fields", *_TRAINING, "manifest", "weights")),
    ("lvm-", (*_DATA, "input_dims", "target_fields", *_TRAINING)),
    ("ternary-vae", ("data_path", "data_sha256", "samples", "train_samples", "val_samples", "input_dims",
                     *_TRAINING, "coverage.sampling", "coverage.hash")),  # fmt: skip
    ("vocab", (*_DATA, "input_dims", *_TRAINING, "tokens.active", "tokens.entropy_bits")),
    ("lm-base", (*_DATA, *_TRAINING)),
    ("lora-lm", (*_DATA, *_TRAINING, "base_checkpoint")),
)
_GENERIC = (*_DATA, *_TRAINING)


def plan(kind: str | None) -> tuple[str, ...]:
    for prefix, keys in _PLAN:
        if kind and (kind == prefix or (prefix.endswith("-") and kind.startswith(prefix))):
            return keys
    return _GENERIC


def known(key: str) -> bool:
    return key in KEYS or key.startswith(("best.", "last.", "field_share.")) and len(key.split(".", 1)[1]) > 0


def _derive(src: Source, key: str, artifact: Path | None) -> Claim:
    try:
        if key.startswith("field_share."):
            return field_share(src, key, artifact)
        if key.startswith("best.") and key not in KEYS:
            return metrics.best(src, key[len("best.") :], key)[0]
        if key.startswith("last.") and key not in KEYS:
            return metrics.last(src, key[len("last.") :], key)
        fn = KEYS.get(key)
        if fn is None:
            return Claim(key, None, reason="unknown claim key")
        return fn(src, key)
    except Unprovable as exc:
        return Claim(key, None, reason=clean(str(exc)))
    except (OSError, ValueError) as exc:  # a file that vanished or broke while read
        return Claim(key, None, reason=clean(f"cannot read the files: {exc}"))


def _subject(ws: Workspace, subject: Subject | str) -> Subject:
    return subject if isinstance(subject, Subject) else resolve(ws, subject)


def derive_key(ws: Workspace, subject: Subject | str, key: str, artifact: Path | None = None) -> Claim:
    """One key recomputed from the files now (a Claim with no evidence and the reason when not)."""
    return _derive(Source(ws, _subject(ws, subject)), key, artifact)


def derive_claims(ws: Workspace, subject: Subject | str) -> list[Claim]:
    """Every claim the files allow for the subject, in report order (unproven ones with reasons)."""
    src = Source(ws, _subject(ws, subject))
    out = [_derive(src, key, None) for key in plan(src.subject.kind)]
    try:
        names = metrics.reported_metrics(src)
    except Unprovable as exc:
        out.append(Claim("metrics", None, reason=clean(str(exc))))
        names = []
    for name in names:
        out.append(_derive(src, f"best.{name}", None))
        out.append(_derive(src, f"last.{name}", None))
    out.append(_derive(src, "reproduce", None))
    return out
