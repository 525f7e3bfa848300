"""Import a registry kept the way seed 004's `model_deployment.py` keeps one, so its history is not lost.

The folder (`DIR`, or `DIR/versions/` when DIR holds one) looks like seed 004's "Storage Locations":

    versions.json       the ModelVersion records: a list, a dict keyed by version, or {"versions": ...}
    current.txt         the active version's name (may be absent or empty: nothing active)
    vX.Y.Z/adapters/    that version's files (any depth; each path part must be a valid id)

Each version keeps its name (`v1.0.0`), `created_at` and `deployed_at` (ISO strings, or epoch
seconds; a time without a zone is the importing machine's local time, as `datetime.now()
.isoformat()` wrote it), `status`, `base_model`, `training_run_id`, `training_samples` and its
numeric `metrics` (other values are dropped and said). `adapter_path` is not followed: the files
are read from `vX.Y.Z/adapters/` inside the folder only.

**Checksum.** Seed 004 calls it "file integrity" and says no more. Accepted, as lowercase hex with
or without a `sha256:` prefix:
  - the sha256 of the file, when `adapters/` holds exactly one file (`sha256sum adapters/*`);
  - the tree hash: the sha256 of the lines `name NUL sha256 LF` over the files in name order, names
    relative to `adapters/` (the registry's own checksum for a version of several files).
Anything else, a non-sha256 value included, is a mismatch: the version is imported as `corrupt`
(refused at promote, canary and rollback) and the result says so. A version without a checksum is
imported with a skipped check: its bytes are hashed now and verified from then on.

**Status.** The version current.txt names is promoted (unless it is corrupt: then nothing is
active, and that is said). `rolled_back` stays `rolled_back`; `active`, `canary` and anything else
become `inactive` (a canary's traffic is not in versions.json, so none is resumed).

Everything is read, validated and hashed before the first write: a missing or malformed
versions.json, a bad name, `..`, a symlink or a non-regular file anywhere in the folder, or a
model that already exists, writes nothing. Hidden files (`.DS_Store`) are skipped and said.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from trainledger.engines.registry.store import Registry, check_name, version_checksum
from trainledger.engines.registry.types import (
    Candidate,
    Change,
    Check,
    RegistryError,
    RegistryUsageError,
    SourceFile,
)
from trainledger.engines.safeio import FileTooLarge, NotRegularFile, open_regular_file, read_regular
from trainledger.engines.workspace import InvalidId, validate_id

VERSIONS_FILE = "versions.json"
CURRENT_FILE = "current.txt"
ADAPTERS = "adapters"
VERSIONS_LIMIT = 64 << 20
CURRENT_LIMIT = 4096
_CHUNK = 1 << 20


@dataclass
class _Entry:
    version: str
    created_at: float
    deployed_at: float | None
    status: str
    base_model: str | None
    run_id: str | None
    samples: int | None
    metrics: dict[str, float]
    checksum: str | None
    order: int
    files: list[tuple[str, Path, str]] = field(default_factory=list)  # (name, path, sha256)
    notes: list[str] = field(default_factory=list)


def tree_hash(files: list[tuple[str, str]]) -> str:
    """The sha256 of the lines `name NUL sha256 LF` in name order (the registry's checksum of 2+ files)."""
    h = hashlib.sha256()
    for name, sha in sorted(files):
        h.update(name.encode() + b"\0" + sha.encode() + b"\n")
    return h.hexdigest()


def import_folder(registry: Registry, model: str, folder: Path, reason: str = "") -> list[Change]:
    """Import a seed-004 versions folder as a new model; returns one Change per imported version,
    the promote of the current one (if any), and a last summary Change (no audit entry of its own)."""
    check_name(model, "model name")
    root = _locate(Path(folder))
    entries = _read_versions(root)
    current = _read_current(root, {e.version for e in entries})
    if any(m.name == model for m in registry.models()):
        raise RegistryError(f"{model} is in the registry already; import into a new model name")
    skipped: list[str] = []
    for e in entries:
        e.files = _hash_files(root, e.version, skipped)
    changes = []
    why = reason or f"imported from {root}"
    for e in sorted(entries, key=lambda e: (e.created_at, e.order)):
        check, problem = _judge(e)
        status = "corrupt" if problem else ("rolled_back" if e.status == "rolled_back" else "inactive")
        candidate = Candidate(
            kind=None, files=tuple(SourceFile(n, p, sha) for n, p, sha in e.files),
            source=f"{root / e.version / ADAPTERS}", run_id=e.run_id, base_model=e.base_model,
            training_samples=e.samples, metrics=e.metrics,
        )  # fmt: skip
        changes.append(registry.register(model, candidate, version=e.version, created_at=e.created_at,
                                         deployed_at=e.deployed_at, status=status, corrupt_detail=problem,
                                         checks=(check,), reason=why))  # fmt: skip
    corrupt = [c.to_version for c in changes if c.details.get("status") == "corrupt"]
    said = [f"imported {len(entries)} version(s) of {model} from {root}"]
    if corrupt:
        said.append(f"corrupt (checksum mismatch, refused at promote/canary/rollback): {', '.join(corrupt)}")
    if current is None:
        said.append(f"no active version ({CURRENT_FILE} is absent or empty)")
    elif current in corrupt:
        said.append(f"{CURRENT_FILE} names {current}, which is corrupt: nothing is active")
    else:
        changes.append(registry.promote(model, current, reason=f"{why}; {CURRENT_FILE} names {current}"))
        said.append(f"{current} is active ({CURRENT_FILE})")
    notes = [f"{e.version}: {n}" for e in entries for n in e.notes]
    if skipped:
        notes.append(f"skipped hidden files: {', '.join(skipped)}")
    changes.append(Change("import", model, None, current if current not in corrupt else None, "; ".join(said),
                          details={"corrupt": corrupt, "notes": notes, "source": str(root)}))  # fmt: skip
    return changes


# --------------------------------------------------------------------------- reading the folder
def _locate(folder: Path) -> Path:
    """DIR itself, or DIR/versions/ when versions.json lives there (seed 004's SAM_models/ layout)."""
    if not folder.is_dir():
        raise RegistryUsageError(f"{folder}: not a folder")
    root = folder.resolve()
    if not os.path.lexists(root / VERSIONS_FILE) and os.path.lexists(root / "versions" / VERSIONS_FILE):
        _no_link(root / "versions", root)
        root = root / "versions"
    if not os.path.lexists(root / VERSIONS_FILE):
        raise RegistryUsageError(f"{folder}: no {VERSIONS_FILE} (nor versions/{VERSIONS_FILE}); "
                                 f"expected seed 004's layout: versions.json, current.txt, vX.Y.Z/adapters/")
    return root


def _no_link(path: Path, root: Path) -> os.stat_result:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise RegistryUsageError(f"{path.relative_to(root)}: a symlink; import reads only files inside {root}")
    return st


def _read_small(path: Path, root: Path, limit: int) -> bytes:
    _no_link(path, root)
    try:
        return read_regular(path, limit)
    except (NotRegularFile, FileTooLarge) as exc:
        raise RegistryUsageError(f"{path}: {exc}") from None
    except OSError as exc:
        raise RegistryUsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_versions(root: Path) -> list[_Entry]:
    path = root / VERSIONS_FILE
    try:
        data = msgspec.json.decode(_read_small(path, root, VERSIONS_LIMIT))
    except msgspec.DecodeError as exc:
        raise RegistryUsageError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("versions"), list | dict):
        data = data["versions"]
    if isinstance(data, dict):
        items = []
        for key, rec in data.items():
            if isinstance(rec, dict) and rec.get("version", key) != key:
                raise RegistryUsageError(f"{path}: key {key!r} holds version {rec.get('version')!r}")
            items.append({**rec, "version": key} if isinstance(rec, dict) else rec)
    elif isinstance(data, list):
        items = data
    else:
        raise RegistryUsageError(f"{path}: expected a list or an object of versions, not {type(data).__name__}")
    if not items:
        raise RegistryUsageError(f"{path}: no versions")
    entries, seen = [], set()
    for i, rec in enumerate(items):
        e = _entry(rec, i, path)
        if e.version in seen:
            raise RegistryUsageError(f"{path}: version {e.version} is listed twice")
        seen.add(e.version)
        entries.append(e)
    return entries


def _entry(rec: Any, i: int, path: Path) -> _Entry:
    where = f"{path}, version #{i + 1}"
    if not isinstance(rec, dict):
        raise RegistryUsageError(f"{where}: expected an object, not {type(rec).__name__}")
    try:
        version = validate_id(rec.get("version"), "version")  # type: ignore[arg-type]
    except InvalidId as exc:
        raise RegistryUsageError(f"{where}: {exc}") from None
    where = f"{path}, {version}"
    notes = []
    run_id = rec.get("training_run_id")
    if run_id not in (None, ""):
        try:
            run_id = validate_id(str(run_id), "training_run_id")
        except InvalidId as exc:
            raise RegistryUsageError(f"{where}: {exc}") from None
    samples = rec.get("training_samples")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 0):
        raise RegistryUsageError(f"{where}: training_samples must be a whole number >= 0, not {samples!r}")
    raw_metrics = rec.get("metrics") or {}
    if not isinstance(raw_metrics, dict):
        raise RegistryUsageError(f"{where}: metrics must be an object, not {type(raw_metrics).__name__}")
    metrics = {}
    for k, v in raw_metrics.items():
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            metrics[str(k)] = float(v)
        else:
            notes.append(f"metric {k!r} dropped (not a finite number: {v!r})"[:200])
    base = rec.get("base_model")
    if base is not None and not isinstance(base, str):
        raise RegistryUsageError(f"{where}: base_model must be text, not {type(base).__name__}")
    checksum = rec.get("checksum")
    if checksum is not None and not isinstance(checksum, str):
        raise RegistryUsageError(f"{where}: checksum must be text, not {type(checksum).__name__}")
    status = str(rec.get("status") or "inactive")
    if status not in ("active", "rolled_back", "inactive"):
        notes.append(f"status {status!r} imported as inactive"[:200])
    created = _time(rec.get("created_at"), "created_at", where)
    if created is None:
        raise RegistryUsageError(f"{where}: created_at is missing")
    return _Entry(version, created, _time(rec.get("deployed_at"), "deployed_at", where), status, base or None,
                  run_id or None, samples, metrics, checksum or None, i, notes=notes)  # fmt: skip


def _time(value: Any, name: str, where: str) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            pass
    raise RegistryUsageError(f"{where}: {name} {value!r} is not an ISO time (2026-01-25T10:00:00)"[:300])


def _read_current(root: Path, known: set[str]) -> str | None:
    path = root / CURRENT_FILE
    if not os.path.lexists(path):
        return None
    try:
        text = _read_small(path, root, CURRENT_LIMIT).decode().strip()
    except UnicodeDecodeError:
        raise RegistryUsageError(f"{path}: not UTF-8 text") from None
    if not text:
        return None
    try:
        name = validate_id(text, "version")
    except InvalidId as exc:
        raise RegistryUsageError(f"{path}: {exc}") from None
    if name not in known:
        raise RegistryUsageError(f"{path} names {name}, which {VERSIONS_FILE} does not list")
    return name


def _walk(base: Path, root: Path) -> Iterator[tuple[str, Path]]:
    """(name relative to `base`, path) of every regular file below `base`; refuses links and odd files."""
    for entry in sorted(os.scandir(base), key=lambda d: d.name):
        path = Path(entry.path)
        st = _no_link(path, root)
        if stat.S_ISDIR(st.st_mode):
            for name, p in _walk(path, root):
                yield f"{entry.name}/{name}", p
        elif stat.S_ISREG(st.st_mode):
            yield entry.name, path
        else:
            raise RegistryUsageError(f"{path.relative_to(root)}: not a regular file")


def _hash_files(root: Path, version: str, skipped: list[str]) -> list[tuple[str, Path, str]]:
    base = root / version / ADAPTERS
    for p in (root / version, base):
        if not os.path.lexists(p):
            raise RegistryUsageError(f"{version}: no {p.relative_to(root)}/ folder in {root}")
        if not stat.S_ISDIR(_no_link(p, root).st_mode):
            raise RegistryUsageError(f"{p.relative_to(root)}: not a folder")
    out = []
    for name, path in _walk(base, root):
        rel = f"{version}/{ADAPTERS}/{name}"
        if any(part.startswith(".") for part in name.split("/")):
            skipped.append(rel)
            continue
        for part in name.split("/"):
            try:
                validate_id(part, "file name")
            except InvalidId as exc:
                raise RegistryUsageError(f"{rel}: {exc}") from None
        if not path.resolve().is_relative_to(root):
            raise RegistryUsageError(f"{rel}: outside {root}")
        out.append((name, path, _sha256(path)))
    if not out:
        raise RegistryUsageError(f"{version}/{ADAPTERS}/ holds no files")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open_regular_file(path) as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise RegistryUsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()


def _judge(e: _Entry) -> tuple[Check, str | None]:
    """The checksum check of one version, and why it is corrupt (None when it is not)."""
    pairs = [(n, sha) for n, _, sha in e.files]
    accepted = {tree_hash(pairs)} | ({pairs[0][1]} if len(pairs) == 1 else set())
    if e.checksum is None:
        return Check("checksum", True, "versions.json gives no checksum; the sha256 is recorded now", True), None
    claimed = e.checksum.strip().lower().removeprefix("sha256:")
    if claimed in accepted:
        how = "the file's sha256" if len(pairs) == 1 and claimed == pairs[0][1] else "the tree hash of adapters/"
        return Check("checksum", True, f"matches {how} ({claimed[:12]}…)"), None
    what = "its file's sha256" if len(pairs) == 1 else "the tree hash of its files"
    problem = f"versions.json checksum {e.checksum[:16]!r} differs from {what} {version_checksum(pairs)[:12]}…"
    return Check("checksum", False, problem), problem

