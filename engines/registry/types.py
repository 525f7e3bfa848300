"""The registry's records as plain frozen dataclasses, shared by the store, the CLI and the pane.

Nothing here touches a file or the database: these are the values the engine functions
take and return, so the console can hold them and a test can build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# What a version is now. `active` and `canary` follow the model's pointers; the rest are
# what the last operation on the version left: `inactive` (new, or promoted away from and
# kept as a rollback target), `rolled_back` (was active when a rollback moved off it),
# `aborted` (its canary was aborted), `corrupt` (its bytes no longer match their sha256).
VersionStatus = Literal["active", "canary", "inactive", "rolled_back", "aborted", "corrupt"]
STATUSES: tuple[str, ...] = ("active", "canary", "inactive", "rolled_back", "aborted", "corrupt")

ACTIONS: tuple[str, ...] = (
    "deploy", "canary", "promote", "abort", "rollback", "verify", "prune", "import", "policy",
)  # fmt: skip


class RegistryError(ValueError):
    """A refusal: the operation is understood but not allowed now (CLI exit 1)."""


class RegistryUsageError(RegistryError):
    """Bad input: an invalid name, version, traffic value or path (CLI exit 2)."""


@dataclass(frozen=True)
class Check:
    """One sanity check of a candidate: its name, whether it passed, and what was seen."""

    name: str
    ok: bool
    detail: str = ""
    skipped: bool = False  # could not be run here (said in `detail`); not a failure

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        return cls(str(d.get("name", "")), bool(d.get("ok")), str(d.get("detail", "")), bool(d.get("skipped")))


@dataclass(frozen=True)
class SourceFile:
    """A file to register: `name` is its path inside the version (POSIX, each part an id),
    `path` where it is read from; `sha256` is what its source claims (a checkpoint sidecar),
    checked while it is copied, or None when nothing claims anything."""

    name: str
    path: Path
    sha256: str | None = None


@dataclass(frozen=True)
class Candidate:
    """What `deploy` registers: the files plus everything known about where they came from.

    Built by source.py from a run (its best or last checkpoint) or from a folder."""

    kind: str | None  # the model kind (`trainledger train` MODEL), None if unknown
    files: tuple[SourceFile, ...]
    source: str  # "run r1, checkpoint best" or the folder's path, for messages
    run_id: str | None = None
    checkpoint: str | None = None  # "best" | "last" | None (a folder)
    epoch: int | None = None
    step: int | None = None
    is_best: bool | None = None  # the checkpoint is the run's best one
    is_last: bool | None = None  # the checkpoint's epoch is the run's last epoch
    last_epoch: int | None = None
    base_model: str | None = None
    training_samples: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    dataset_path: str | None = None
    dataset_sha256: str | None = None
    reproduce: str | None = None  # the `trainledger train ...` line that remakes the run
    backend: str | None = None  # torch | mlx


@dataclass(frozen=True)
class Artifact:
    """A registered file: its name in the version, sha256 and size; the bytes live once in
    registry/artifacts/ under their sha256."""

    name: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Version:
    model: str
    version: str
    seq: int  # 1, 2, ... in the order deployed
    status: str  # one of STATUSES
    created_at: float
    deployed_at: float | None  # first time it took traffic (canary or active)
    kind: str | None
    artifacts: tuple[Artifact, ...]
    checksum: str  # sha256 over the artifacts' names and sha256s (see store.version_checksum)
    source: str
    run_id: str | None = None
    checkpoint: str | None = None
    epoch: int | None = None
    step: int | None = None
    is_best: bool | None = None
    is_last: bool | None = None
    base_model: str | None = None
    training_samples: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    dataset_path: str | None = None
    dataset_sha256: str | None = None
    reproduce: str | None = None
    checks: tuple[Check, ...] = ()
    verified_at: float | None = None  # the last time every artifact was re-hashed and matched
    corrupt_detail: str | None = None  # why it is corrupt, when it is
    pruned_at: float | None = None  # when `prune` deleted its artifacts (the record stays)


@dataclass(frozen=True)
class ModelState:
    """One model: which version is live, the canary and its traffic, the rollback target."""

    name: str
    kind: str | None
    active: str | None
    previous: str | None  # the rollback target: the version active before `active`
    canary: str | None
    traffic: int  # percent of requests the canary gets, 0 when there is none
    condition: str | None  # "aborted" after an abort, until an operator acts; else None
    condition_reason: str | None
    versions: int
    updated_at: float
    policy: dict[str, Any] = field(default_factory=dict)  # thresholds (policy.Thresholds.to_dict)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    time: float
    user: str
    host: str
    model: str
    action: str
    from_version: str | None
    to_version: str | None
    reason: str
    details: dict[str, Any]  # traffic, checks, and for automatic actions the figures
    # the live state after the action: which version was active, which canary at what %
    active: str | None
    canary: str | None
    traffic: int


@dataclass(frozen=True)
class Change:
    """What an operation did (or, with dry_run, would do): printed by the CLI, shown by the pane."""

    action: str
    model: str
    from_version: str | None
    to_version: str | None
    message: str
    dry_run: bool = False
    audit_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
