"""The registry's operations: deploy, canary, promote, abort, rollback, verify, prune, and reads.

Each operation checks what it can before it takes the write lock (hashing artifacts is
the slow part), then re-reads the state inside one transaction, changes it, and appends
exactly one audit entry in the same transaction. Nothing goes live whose bytes no longer
hash to their sha256: such a version is marked corrupt and refused. After each commit a
small notice file (registry/changed) is rewritten, so the console's watcher hears of the
change without watching the database files that its own reads touch.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainledger.engines.registry import blobs
from trainledger.engines.registry.db import Database
from trainledger.engines.registry.live import LiveOps
from trainledger.engines.registry.types import (
    AuditEntry,
    Candidate,
    Change,
    Check,
    ModelState,
    RegistryError,
    RegistryUsageError,
    Version,
)
from trainledger.engines.workspace import REGISTRY_NOTICE, InvalidId, Workspace, atomic_write_json, validate_id

DB_FILE = "registry.db"
ENV_USER = "TRAINLEDGER_USER"


def check_name(value: str, kind: str) -> str:
    """A model name or version as one safe path component, else RegistryUsageError."""
    try:
        return validate_id(value, kind)
    except InvalidId as exc:
        raise RegistryUsageError(str(exc)) from None


def version_checksum(artifacts: Sequence[tuple[str, str]]) -> str:
    """A version's checksum: the artifact's own sha256 when there is one file, else the sha256
    of the lines `name NUL sha256 LF` in name order (docs/formats.md)."""
    if len(artifacts) == 1:
        return artifacts[0][1]
    h = hashlib.sha256()
    for name, sha in sorted(artifacts):
        h.update(name.encode() + b"\0" + sha.encode() + b"\n")
    return h.hexdigest()


def _user() -> str:
    try:
        return os.environ.get(ENV_USER) or getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


class Registry(LiveOps):
    """The registry of one workspace. Reading never creates anything; the first write does."""

    def __init__(self, ws: Workspace, clock: Callable[[], float] = time.time) -> None:
        self.ws = ws
        self.dir = ws.registry_dir
        self.clock = clock
        self._db: Database | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def exists(self) -> bool:
        return (self.dir / DB_FILE).exists()

    def _open(self, create: bool) -> Database | None:
        if self._db is None:
            if not create and not self.exists:
                return None
            if create:
                self.dir.mkdir(parents=True, exist_ok=True)
            try:
                self._db = Database(self.dir / DB_FILE, create=create)
            except FileNotFoundError:  # gone, or its first write was killed before the schema: empty
                if create:
                    raise
                return None
        return self._db

    def _writer(self) -> Database:
        db = self._open(create=True)
        assert db is not None
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _audit(self, db: Database, model: str, action: str, from_v: str | None, to_v: str | None, reason: str,
               details: dict[str, Any], now: float) -> int:  # fmt: skip
        state = db.model(model)
        entry = AuditEntry(
            id=0, time=now, user=_user(), host=socket.gethostname(), model=model, action=action,
            from_version=from_v, to_version=to_v, reason=reason, details=details,
            active=state.active if state else None, canary=state.canary if state else None,
            traffic=state.traffic if state else 0,
        )  # fmt: skip
        return db.insert_audit(entry)

    def _notify(self, change: Change) -> None:
        try:
            atomic_write_json(self.dir / REGISTRY_NOTICE, {"audit": change.audit_id, "model": change.model,
                                                       "action": change.action, "time": self.clock()})  # fmt: skip
        except OSError:
            pass  # only a hint for watchers; the state is committed

    def _require_model(self, db: Database, model: str) -> ModelState:
        state = db.model(check_name(model, "model name"))
        if state is None:
            raise RegistryError(f"no model {model!r} in the registry")
        return state

    def _require_version(self, db: Database, model: str, version: str) -> Version:
        found = db.versions(model, check_name(version, "version"))
        if not found:
            known = ", ".join(v.version for v in db.versions(model)) or "none"
            raise RegistryError(f"{model} has no version {version!r} (versions: {known})")
        return found[0]

    def _verify_bytes(self, version: Version) -> str | None:
        """None if every artifact of `version` hashes to its sha256, else what is wrong."""
        if version.pruned_at is not None:
            return "its artifacts were pruned"
        for c in version.checks:  # an import whose bytes never matched the checksum it came with
            if c.name == "checksum" and not c.ok and not c.skipped:
                return c.detail
        for a in version.artifacts:
            problem = blobs.check(self.dir, a.sha256, a.bytes)
            if problem:
                return f"{a.name}: {problem}"
        return None

    def _activatable(self, db: Database, version: Version, action: str, now: float) -> None:
        """Refuse (and mark corrupt) a version whose bytes do not match; called inside the write."""
        if version.pruned_at is not None:  # deleted on purpose: refused, but not corrupt
            raise RegistryError(f"refused: {version.model} {version.version} was pruned (its artifacts are deleted); "
                                f"nothing went live")  # fmt: skip
        problem = self._verify_bytes(version)
        if problem is None:  # a version once marked corrupt whose bytes match again drops the old reason
            db.update_version(version.model, version.version, verified_at=now, corrupt_detail=None)
            return
        exc = _Corrupt(f"refused: {version.model} {version.version} is corrupt ({problem}); nothing went live",
                       problem)  # fmt: skip
        exc.version_hint = (version.version, problem)
        raise exc  # the caller marks it corrupt once this transaction is rolled back

    def _run(self, model: str, action: str, body: Callable[[Database, float], Change]) -> Change:
        """Run `body` in one write transaction; a corrupt target is marked in a transaction of its own."""
        db = self._writer() if action in ("deploy", "import") else self._open(create=False)
        if db is None:  # only deploy and import create the registry; a refusal writes nothing
            raise RegistryError(f"no model {model!r} in the registry (the registry is empty)")
        now = self.clock()
        try:
            with db.write():
                change = body(db, now)
                change = replace(change, audit_id=self._audit(
                    db, change.model, change.action, change.from_version, change.to_version,
                    change.details.pop("reason", ""), change.details, now))  # fmt: skip
        except _Corrupt as exc:
            hint = exc.version_hint
            with db.write():
                if hint:
                    db.update_version(model, hint[0], status="corrupt", corrupt_detail=hint[1])
                self._audit(db, model, "verify", None, hint[0] if hint else None, f"{action} refused",
                            {"corrupt": exc.problem}, now)  # fmt: skip
            raise RegistryError(str(exc)) from None
        self._notify(change)
        return change

    # ------------------------------------------------------------------ deploy
    def deploy(self, model: str, candidate: Candidate, *, version: str | None = None, reason: str = "",
               checks: Sequence[Check] = (), dry_run: bool = False) -> Change:  # fmt: skip
        """Register `candidate` as a new inactive version of `model` (created on first deploy).

        `checks` are the sanity results (sanity.py, probe.py); any failed one refuses. With
        `dry_run` nothing is copied or written, and the Change says what would happen."""
        check_name(model, "model name")
        if version is not None:
            check_name(version, "version")
        for f in candidate.files:
            for part in f.name.split("/"):
                check_name(part, "artifact name")
        failed = [c for c in checks if not c.ok and not c.skipped]
        db = self._open(create=False)
        state = db.model(model) if db else None
        if state and state.kind and candidate.kind and state.kind != candidate.kind:
            raise RegistryError(f"{model} holds {state.kind} models; {candidate.source} is {candidate.kind}")
        if version is not None and db and db.version_exists(model, version):
            raise RegistryError(f"{model} already has a version {version}; versions are never overwritten")
        name = version or f"v{db.next_seq(model) if db and state else 1}"
        details: dict[str, Any] = {"reason": reason, "source": candidate.source,
                                   "checks": [c.to_dict() for c in checks]}  # fmt: skip
        what = candidate.source + (  # the source names the epoch; say what seed 002 could not
            f": {'the best' if candidate.is_best else 'NOT the best'}, "
            f"{'the last epoch' if candidate.is_last else f'the last epoch is {candidate.last_epoch}'}"
            if candidate.epoch is not None else ""
        )  # fmt: skip
        if failed:
            listed = "; ".join(f"{c.name}: {c.detail}" for c in failed)
            if dry_run:
                return Change("deploy", model, None, name, f"dry run: would refuse {what}: {listed}", True,
                              details={**details, "ok": False})  # fmt: skip
            raise RegistryError(f"refused to deploy {what}: {listed}")
        if dry_run:
            return Change("deploy", model, None, name, f"dry run: would deploy {what} as {model} {name} (inactive)",
                          True, details={**details, "ok": True})  # fmt: skip
        stored = [(f.name, *blobs.store(self.dir, f.path, f.sha256)) for f in candidate.files]
        checksum = version_checksum([(n, sha) for n, sha, _ in stored])

        def body(db: Database, now: float) -> Change:
            self._blobs_still_there(candidate, stored)
            current = db.model(model)
            if current is None:
                db.insert_model(model, candidate.kind, now)
            elif current.kind is None and candidate.kind:
                db.update_model(model, now, kind=candidate.kind)
            seq = db.next_seq(model)
            label = version or f"v{seq}"
            while version is None and db.version_exists(model, label):
                seq += 1
                label = f"v{seq}"
            if db.version_exists(model, label):
                raise RegistryError(f"{model} already has a version {label}; versions are never overwritten")
            db.insert_version(self._version_record(model, label, seq, candidate, stored, checksum, checks, now))
            msg = f"deployed {what} as {model} {label} (inactive; sha256 {checksum[:12]}…)"
            return Change("deploy", model, None, label, msg, details={**details, "checksum": checksum})

        return self._run(model, "deploy", body)

    def register(self, model: str, candidate: Candidate, *, version: str, created_at: float,
                 deployed_at: float | None = None, status: str = "inactive", corrupt_detail: str | None = None,
                 checks: Sequence[Check] = (), reason: str = "") -> Change:  # fmt: skip
        """Record a version as another tool kept it (importer.py): its own name, times and status
        (`inactive`, `rolled_back` or `corrupt`), one audit entry of action `import`. The files are
        copied as deploy copies them; nothing goes live (promote does that)."""
        check_name(model, "model name")
        check_name(version, "version")
        if status not in ("inactive", "rolled_back", "corrupt"):
            raise RegistryUsageError(f"an imported version is inactive, rolled_back or corrupt, not {status!r}")
        for f in candidate.files:
            for part in f.name.split("/"):
                check_name(part, "artifact name")
        stored = [(f.name, *blobs.store(self.dir, f.path, f.sha256)) for f in candidate.files]
        checksum = version_checksum([(n, sha) for n, sha, _ in stored])

        def body(db: Database, now: float) -> Change:
            self._blobs_still_there(candidate, stored)
            if db.model(model) is None:
                db.insert_model(model, candidate.kind, now)
            if db.version_exists(model, version):
                raise RegistryError(f"{model} already has a version {version}; versions are never overwritten")
            record = self._version_record(model, version, db.next_seq(model), candidate, stored, checksum, checks,
                                          now, status, corrupt_detail)  # fmt: skip
            db.insert_version(replace(record, created_at=created_at, deployed_at=deployed_at,
                                      verified_at=None if status == "corrupt" else now))  # fmt: skip
            said = f"corrupt: {corrupt_detail}" if status == "corrupt" else status
            return Change("import", model, None, version, f"imported {candidate.source} as {model} {version} "
                          f"({said}; sha256 {checksum[:12]}…)", details={"reason": reason, "status": status,
                          "checksum": checksum, "source": candidate.source,
                          "checks": [c.to_dict() for c in checks]})  # fmt: skip

        return self._run(model, "import", body)

    def _blobs_still_there(self, candidate: Candidate, stored: list[tuple[str, str, int]]) -> None:
        """Inside the write: a prune that committed between our copy and this transaction may have
        deleted bytes no committed version named yet; copy those again before we name them."""
        for f, (_, sha, _) in zip(candidate.files, stored, strict=True):
            if not os.path.lexists(blobs.blob_path(self.dir, sha)):
                blobs.store(self.dir, f.path, sha)

    def _version_record(self, model: str, label: str, seq: int, c: Candidate, stored: list[tuple[str, str, int]],
                        checksum: str, checks: Sequence[Check], now: float, status: str = "inactive",
                        corrupt_detail: str | None = None) -> Version:  # fmt: skip
        from trainledger.engines.registry.types import Artifact

        return Version(
            model=model, version=label, seq=seq, status=status, created_at=now, deployed_at=None, kind=c.kind,
            artifacts=tuple(Artifact(n, sha, size) for n, sha, size in stored), checksum=checksum,
            source=c.source, run_id=c.run_id, checkpoint=c.checkpoint, epoch=c.epoch, step=c.step,
            is_best=c.is_best, is_last=c.is_last, base_model=c.base_model, training_samples=c.training_samples,
            metrics=dict(c.metrics), dataset_path=c.dataset_path, dataset_sha256=c.dataset_sha256,
            reproduce=c.reproduce, checks=tuple(checks), verified_at=now, corrupt_detail=corrupt_detail,
        )  # fmt: skip

    def set_policy(self, model: str, policy: dict[str, Any], reason: str = "") -> Change:
        def body(db: Database, now: float) -> Change:
            state = self._require_model(db, model)
            db.update_model(model, now, policy=policy)
            return Change("policy", model, None, None, f"{model}: rollback thresholds set",
                          details={"reason": reason, "from": state.policy, "to": policy})  # fmt: skip

        return self._run(check_name(model, "model name"), "policy", body)

    # ------------------------------------------------------------------ verify, prune
    def verify(self, model: str | None = None, reason: str = "") -> list[tuple[Version, str | None]]:
        """Re-hash every kept artifact (of one model or all); marks mismatches corrupt and a
        corrupt version whose bytes match again inactive. Returns (version, problem or None)."""
        db = self._open(create=False)
        if db is None:
            if model is not None:
                raise RegistryError(f"no model {model!r} in the registry")
            return []
        if model is not None:
            self._require_model(db, model)
        results = [(v, self._verify_bytes(v)) for v in db.versions(model) if v.pruned_at is None]
        now = self.clock()
        models = sorted({v.model for v, _ in results})
        with db.write():
            for v, problem in results:
                if problem:
                    db.update_version(v.model, v.version, status="corrupt", corrupt_detail=problem)
                elif v.status == "corrupt":
                    state = db.model(v.model)
                    status = "active" if state and v.version == state.active else (
                        "canary" if state and v.version == state.canary else "inactive")  # fmt: skip
                    db.update_version(v.model, v.version, status=status, corrupt_detail=None, verified_at=now)
                else:
                    db.update_version(v.model, v.version, verified_at=now)
            audit_id = None
            for m in models:
                bad = {v.version: p for v, p in results if v.model == m and p}
                audit_id = self._audit(db, m, "verify", None, None, reason,
                                       {"checked": sum(1 for v, _ in results if v.model == m), "corrupt": bad}, now)
        if models:
            self._notify(Change("verify", model or models[0], None, None, "verified", audit_id=audit_id))
        return results

    def prune(self, model: str, keep: int, reason: str = "") -> Change:
        """Delete the artifacts of old inactive versions beyond the newest `keep`; their records
        stay. The active version, the canary and the rollback target are never pruned."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise RegistryUsageError(f"--keep must be a whole number >= 0, not {keep!r}")
        doomed: list[Version] = []

        def body(db: Database, now: float) -> Change:
            state = self._require_model(db, model)
            protected = {state.active, state.canary, state.previous}
            candidates = [v for v in reversed(db.versions(model)) if v.pruned_at is None and v.version not in protected]
            doomed[:] = candidates[keep:]
            for v in doomed:
                db.update_version(model, v.version, pruned_at=now)
            names = ", ".join(v.version for v in doomed) or "nothing"
            return Change("prune", model, None, None, f"{model}: pruned the artifacts of {names}",
                          details={"reason": reason, "pruned": [v.version for v in doomed], "keep": keep})

        change = self._run(check_name(model, "model name"), "prune", body)
        shas = {a.sha256 for v in doomed for a in v.artifacts}
        if shas:
            db = self._writer()
            with db.write():  # under the lock, as a deploy checks its copied blobs under it
                for sha in shas:
                    if not db.sha_in_use(sha):  # another version may share the bytes
                        blobs.remove(self.dir, sha)
        return change

    # ------------------------------------------------------------------ reads
    def models(self) -> list[ModelState]:
        db = self._open(create=False)
        return db.models() if db else []

    def model(self, model: str) -> ModelState:
        db = self._open(create=False)
        if db is None:
            raise RegistryError(f"no model {model!r} in the registry (the registry is empty)")
        return self._require_model(db, model)

    def versions(self, model: str | None = None) -> list[Version]:
        db = self._open(create=False)
        if model is not None:
            check_name(model, "model name")
        return db.versions(model) if db else []

    def version(self, model: str, version: str) -> Version:
        db = self._open(create=False)
        if db is None:
            raise RegistryError(f"no model {model!r} in the registry (the registry is empty)")
        self._require_model(db, model)
        return self._require_version(db, model, version)

    def audit(self, model: str | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[AuditEntry]:  # fmt: skip
        """Audit entries, oldest first (or, with `newest_first`, the newest `limit` newest first)."""
        db = self._open(create=False)
        if model is not None:
            check_name(model, "model name")
        return db.audit(model, limit=limit, newest_first=newest_first) if db else []

    def state_at(self, model: str, at: float) -> AuditEntry | None:
        """The audit entry in force at time `at`: its active, canary and traffic were live then."""
        db = self._open(create=False)
        if db is None:
            return None
        self._require_model(db, model)
        found = db.audit(model, until=at, limit=1, newest_first=True)
        return found[0] if found else None

    def snapshot(self) -> tuple[list[ModelState], list[Version], list[AuditEntry]]:
        """Everything the Versions pane draws, from one consistent read."""
        db = self._open(create=False)
        if db is None:
            return [], [], []
        with db.read():
            return db.models(), db.versions(), db.audit()

    def orphans(self) -> list[str]:
        db = self._open(create=False)
        return blobs.orphans(self.dir, db.all_shas() if db else set())

    def blob_path(self, sha256: str) -> Path:
        return blobs.blob_path(self.dir, sha256)


class _Corrupt(RegistryError):
    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.version_hint: tuple[str, str] | None = None
