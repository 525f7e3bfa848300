"""What a port server reads from and writes to the registry, and how it loads a version.

All registry calls run on one thread of their own (`RegistryLink`; sqlite connections stay on
the thread that opened them, and an abort queued there is never behind a slow model load).
Loading runs on another: the bytes come from the registry's artifact store, never from a run
folder, and each file's sha256 is checked against the registry before a byte of it is served;
a mismatch is refused (`Refused`), the registry re-verifies the model (which marks the version
corrupt and audits it) and the old version keeps serving.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from trainledger.engines.registry import blobs
from trainledger.engines.registry.types import AuditEntry, Change, ModelState, RegistryError, Version
from trainledger.engines.safeio import read_regular
from trainledger.engines.serving.split import Loaded
from trainledger.engines.workspace import Workspace

BLOB_LIMIT = 2 << 30  # sanity.py's largest size range
AUDIT_LOOKBACK = 50


class Refused(Exception):
    """A version that must not be served: its bytes do not match (`tampered`: the registry is asked
    to re-verify, which marks it corrupt and audits it), or it is marked corrupt or pruned already."""

    def __init__(self, message: str, tampered: bool = False) -> None:
        super().__init__(message)
        self.tampered = tampered


@dataclass(frozen=True)
class RegistryRead:
    state: ModelState | None  # None: no such model (yet)
    versions: dict[str, Version]
    entries: list[AuditEntry]  # newest first
    error: str | None = None


class RegistryLink:
    """The registry, used from one thread only (the server's registry executor)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._reg: Any = None

    def _registry(self) -> Any:
        from trainledger.engines.registry.store import Registry

        if self._reg is None:
            self._reg = Registry(self.ws)
        return self._reg

    def read(self, model: str) -> RegistryRead:
        try:
            reg = self._registry()
            if not reg.exists:
                return RegistryRead(None, {}, [], f"no registry in {self.ws.root} yet")
            try:
                state = reg.model(model)
            except RegistryError:
                return RegistryRead(None, {}, [], f"no model {model!r} in the registry yet")
            versions = {v.version: v for v in reg.versions(model)}
            entries = reg.audit(model, limit=AUDIT_LOOKBACK, newest_first=True)
            return RegistryRead(state, versions, entries)
        except Exception as exc:  # noqa: BLE001 - a locked or broken registry: keep serving, say why
            self.close()
            return RegistryRead(None, {}, [], f"reading the registry failed: {type(exc).__name__}: {exc}")

    def act(self, action: str, model: str, **kwargs: Any) -> Change | str:
        """abort / rollback / canary / promote / verify; a refusal comes back as its text."""
        try:
            reg = self._registry()
            result = getattr(reg, action)(model, **kwargs)
            return result if isinstance(result, Change) else Change(action, model, None, None, "done")
        except RegistryError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001
            self.close()
            return f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        if self._reg is not None:
            try:
                self._reg.close()
            finally:
                self._reg = None


def read_artifacts(ws: Workspace, version: Version) -> tuple[dict[str, bytes], tuple[dict[str, Any], ...]]:
    """Each artifact's bytes from the artifact store, sha256-checked; Refused on any mismatch."""
    if version.pruned_at is not None:
        raise Refused(f"{version.model} {version.version}: its artifacts were pruned")
    if version.status == "corrupt":
        raise Refused(f"{version.model} {version.version} is marked corrupt: {version.corrupt_detail or ''}")
    out: dict[str, bytes] = {}
    described = []
    for a in version.artifacts:
        path = blobs.blob_path(ws.registry_dir, a.sha256)
        try:
            data = read_regular(path, BLOB_LIMIT)
        except (OSError, ValueError) as exc:
            raise Refused(f"{version.version} {a.name}: the registry's copy is unreadable ({exc})", True) from None
        got = hashlib.sha256(data).hexdigest()
        if got != a.sha256:
            raise Refused(f"{version.version} {a.name}: sha256 {got[:16]} does not match the registry's "
                          f"{a.sha256[:16]}; not served", True)  # fmt: skip
        out[a.name] = data
        described.append({"name": a.name, "sha256": a.sha256, "path": str(path)})
    return out, tuple(described)


def load_version(ws: Workspace, version: Version) -> Loaded:
    """The version's predictor, built from verified bytes (runs on the load thread; imports torch)."""
    from trainledger.engines.serving.kinds import load_predictor

    data, described = read_artifacts(ws, version)
    predictor = load_predictor(ws, version, data)
    return Loaded(version.version, version.checksum, predictor, time.time(), described, version.run_id,
                  version.kind)  # fmt: skip


def passthrough(dim: int | None) -> Loaded:
    from trainledger.engines.serving.kinds import passthrough_predictor

    return Loaded("passthrough", "", passthrough_predictor(dim), time.time(), (), None, "passthrough")
