"""Artifacts addressed by sha256: copied in once, fsynced, read-only, shared by every version.

A file is hashed while it is copied (one pass over the bytes), written under a temporary
name, fsynced, renamed to artifacts/<sha[:2]>/<sha> and its folder fsynced, all before the
database transaction that names it commits. A kill at any point leaves at most an
unreferenced blob or a temporary file, never a reference to missing or half-written bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from trainledger.engines.registry.types import RegistryError
from trainledger.engines.safeio import open_regular_file

ARTIFACTS = "artifacts"
CHUNK = 1 << 20
_SHA_RE = re.compile(r"[0-9a-f]{64}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def blob_path(registry_dir: Path, sha256: str) -> Path:
    if not isinstance(sha256, str) or not _SHA_RE.fullmatch(sha256):
        raise RegistryError(f"not a sha256: {sha256!r}")
    return registry_dir / ARTIFACTS / sha256[:2] / sha256


def store(registry_dir: Path, source: Path, expected_sha256: str | None = None) -> tuple[str, int]:
    """Copy `source` in; returns (sha256, size). RegistryError if it is not a regular file or
    its bytes differ from `expected_sha256` (then nothing is kept)."""
    tmp_dir = registry_dir / ARTIFACTS / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        src = open_regular_file(source)
    except OSError as exc:
        raise RegistryError(f"{source}: cannot read ({exc})") from None
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".tmp")
    try:
        with src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        if expected_sha256 is not None and sha != expected_sha256:
            raise RegistryError(f"{source}: sha256 {sha[:12]}… differs from the {expected_sha256[:12]}… it claims")
        dest = blob_path(registry_dir, sha)
        dest.parent.mkdir(exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)  # same bytes if it was there: deduplicated, and repaired if it was damaged
        _fsync_dir(dest.parent)
        _fsync_dir(dest.parent.parent)
        return sha, size
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def check(registry_dir: Path, sha256: str, size: int | None = None) -> str | None:
    """None when the blob's bytes hash to `sha256`; else what is wrong, in a few words."""
    path = blob_path(registry_dir, sha256)
    digest = hashlib.sha256()
    n = 0
    if path.is_symlink():  # the bytes it points at are not ours to keep, even when they match today
        return "a symbolic link, not the registry's own copy"
    try:
        with open_regular_file(path) as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                n += len(chunk)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size is not None and n != size:
        return f"size {n} bytes, registered {size}"
    if digest.hexdigest() != sha256:
        return f"sha256 {digest.hexdigest()[:12]}… differs"
    return None


def remove(registry_dir: Path, sha256: str) -> None:
    try:
        os.unlink(blob_path(registry_dir, sha256))
    except FileNotFoundError:
        pass


def orphans(registry_dir: Path, referenced: set[str]) -> list[str]:
    """Blobs no version names (left by a deploy killed before its commit, or by prune)."""
    root = registry_dir / ARTIFACTS
    out = []
    try:
        subdirs = [d for d in root.iterdir() if d.is_dir() and d.name != "tmp"]
    except FileNotFoundError:
        return []
    for sub in subdirs:
        out.extend(p.name for p in sub.iterdir() if _SHA_RE.fullmatch(p.name) and p.name not in referenced)
    return sorted(out)
