"""The shapes of provenance: a claim, its evidence, a verdict on it, a report, as JSON.

A claim is a value plus the files it was computed from (each with its sha256 when the claim
was made) and one line saying how. A claim with no evidence is unverified, with the reason.
`verify` gives each claim a verdict: verified, unverified (no evidence), stale (an evidence
file's bytes changed since the report was made) or contradicted (the value recomputed from the
files differs from the claimed one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

REPORT_SCHEMA = "trainledger-report/1"
VERIFIED, UNVERIFIED, STALE, CONTRADICTED = "verified", "unverified", "stale", "contradicted"
STATES = (VERIFIED, UNVERIFIED, STALE, CONTRADICTED)
FAILING = (STALE, CONTRADICTED)  # the states that make `verify` exit 1
# numbers compare with this relative tolerance (and REL_TOL x 1e-3 absolute, for zeros)
# unless a claim gives its own `tol` (absolute)
REL_TOL = 1e-6


@dataclass(frozen=True)
class Evidence:
    path: str  # workspace-relative (POSIX) when inside the workspace, else absolute
    sha256: str | None  # of the file's bytes (a folder: engines.training.provenance.sha256_tree)
    how: str = ""  # how the value was computed from it, one line

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "how": self.how}

    @classmethod
    def from_json(cls, obj: Any) -> Evidence:
        if not isinstance(obj, dict) or not isinstance(obj.get("path"), str):
            raise ValueError("evidence must be an object with a string path")
        sha = obj.get("sha256")
        return cls(obj["path"], sha if isinstance(sha, str) else None, str(obj.get("how") or ""))


@dataclass(frozen=True)
class Claim:
    key: str  # the vocabulary key ("parameters", "best.val/loss", "field_share.x"); see docs/formats.md
    value: Any  # JSON-able: number, string, bool, list, object; None when not proven
    evidence: tuple[Evidence, ...] = ()
    reason: str = ""  # why it is unverified, when it has no evidence
    tol: float | None = None  # absolute tolerance for numbers; None = REL_TOL
    label: str = ""  # a human name for the report ("parameter count")

    @property
    def proven(self) -> bool:
        return bool(self.evidence) and self.value is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "value": self.value,
                               "evidence": [e.to_json() for e in self.evidence]}  # fmt: skip
        if self.reason:
            out["reason"] = self.reason
        if self.tol is not None:
            out["tol"] = self.tol
        if self.label:
            out["label"] = self.label
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Claim:
        if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
            raise ValueError("a claim must be an object with a string key")
        ev = obj.get("evidence") or []
        if not isinstance(ev, list):
            raise ValueError(f"claim {obj['key']!r}: evidence must be a list")
        tol = obj.get("tol")
        return cls(
            key=obj["key"], value=obj.get("value"), evidence=tuple(Evidence.from_json(e) for e in ev),
            reason=str(obj.get("reason") or ""),
            tol=float(tol) if isinstance(tol, (int, float)) and not isinstance(tol, bool) else None,
            label=str(obj.get("label") or ""),
        )


@dataclass(frozen=True)
class Verdict:
    claim: Claim  # as claimed (from the stored report or the claims file)
    state: str  # one of STATES
    recomputed: Any = None  # the value re-derived from the files now (None if it could not be)
    detail: str = ""  # one line: which file changed, the difference, why unverified

    def to_json(self) -> dict[str, Any]:
        return {"key": self.claim.key, "state": self.state, "claimed": self.claim.value,
                "recomputed": self.recomputed, "detail": self.detail,
                "evidence": [e.to_json() for e in self.claim.evidence]}  # fmt: skip


@dataclass(frozen=True)
class Report:
    subject: str  # "RUN" (a run id) or "MODEL@VERSION"
    kind: str | None  # the model kind (`trainledger train` MODEL), None if unknown
    made_at: float
    claims: tuple[Claim, ...]
    checks: tuple[dict[str, Any], ...] = ()  # engines.checks.base.CheckResult.to_json() each
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"reproduce": "trainledger train ..."}

    def to_json(self) -> dict[str, Any]:
        return {"schema": REPORT_SCHEMA, "subject": self.subject, "kind": self.kind,
                "made_at": self.made_at, "claims": [c.to_json() for c in self.claims],
                "checks": list(self.checks), **({"extra": self.extra} if self.extra else {})}  # fmt: skip

    @classmethod
    def from_json(cls, obj: Any) -> Report:
        if not isinstance(obj, dict) or obj.get("schema") != REPORT_SCHEMA:
            raise ValueError(f"not a {REPORT_SCHEMA} report")
        claims = obj.get("claims")
        checks = obj.get("checks") or []
        if not isinstance(claims, list) or not isinstance(checks, list):
            raise ValueError("a report's claims and checks must be lists")
        made = obj.get("made_at")
        return cls(
            subject=str(obj.get("subject") or ""),
            kind=obj.get("kind") if isinstance(obj.get("kind"), str) else None,
            made_at=float(made) if isinstance(made, (int, float)) and not isinstance(made, bool) else 0.0,
            claims=tuple(Claim.from_json(c) for c in claims),
            checks=tuple(c for c in checks if isinstance(c, dict)),
            extra=obj["extra"] if isinstance(obj.get("extra"), dict) else {},
        )


def same_value(claimed: Any, actual: Any, tol: float | None = None) -> bool:
    """Numbers within `tol` (absolute) or REL_TOL (relative); bools, strings, lists and objects
    exactly (numbers inside lists and objects with the same tolerance)."""
    if isinstance(claimed, bool) or isinstance(actual, bool):
        return claimed is actual
    if isinstance(claimed, (int, float)) and isinstance(actual, (int, float)):
        a, b = float(claimed), float(actual)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if tol is not None:
            return abs(a - b) <= tol
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=REL_TOL * 1e-3)
    if isinstance(claimed, list) and isinstance(actual, list):
        return len(claimed) == len(actual) and all(same_value(x, y, tol) for x, y in zip(claimed, actual))
    if isinstance(claimed, dict) and isinstance(actual, dict):
        return claimed.keys() == actual.keys() and all(same_value(claimed[k], actual[k], tol) for k in claimed)
    return bool(claimed == actual)
