"""Verdicts on claims: each claim re-derived from the files it names, as `trainledger verify` does.

A stored claim (from a report) is first checked against its evidence: every file is hashed
again (a folder with sha256_tree); a file whose bytes changed, or that is gone, makes the claim
STALE, naming the file. With its evidence intact the value is recomputed now (derive.derive_key)
and compared with same_value (the claim's own `tol`, else model.REL_TOL): VERIFIED, or
CONTRADICTED with the recomputed value beside the claimed one. A claim with no evidence is
UNVERIFIED, with its reason. Hand-written claims (a claims file) have no evidence of their own:
they are recomputed now and compared the same way; an unknown key is UNVERIFIED. Keys beyond
the claims-file vocabulary that a report carries (data_path, samples, checkpoint, reproduce, ...)
are checked too when derive_key can recompute them.

Torch-free (the console runs this in a worker thread): only hashing and derive.py, which reads
files. Every file is opened as a regular file; hashing streams, it never reads a file whole.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainledger.engines.provenance.claimsfile import known_key
from trainledger.engines.provenance.model import (
    CONTRADICTED,
    FAILING,
    REL_TOL,
    STALE,
    STATES,
    UNVERIFIED,
    VERIFIED,
    Claim,
    Evidence,
    Report,
    Verdict,
    same_value,
)
from trainledger.engines.provenance.subject import Subject, resolve
from trainledger.engines.safeio import NotRegularFile
from trainledger.engines.safetext import clean
from trainledger.engines.workspace import Workspace

UNKNOWN_KEY = "unknown claim key"


class VerifyError(ValueError):
    """The verification cannot be done (a stored report that cannot be read): one line, exit 2."""


def _subject(ws: Workspace, subject: Subject | str) -> Subject:
    return subject if isinstance(subject, Subject) else resolve(ws, subject)


# ------------------------------------------------------------------ evidence


def evidence_path(ws: Workspace, path: str) -> Path:
    """Where an evidence path points: absolute as written, else relative to the workspace root."""
    p = Path(path)
    return p if p.is_absolute() else ws.root / p


def sha256_now(path: Path) -> str:
    """The sha256 of a regular file's bytes, or sha256_tree of a folder (derive_files.sha256_path,
    whose cache is keyed by the file's size, mtime, ctime and inode, so a changed byte is seen).
    Raises OSError: FileNotFoundError when gone, NotRegularFile for a FIFO, a device, a socket."""
    from trainledger.engines.provenance.derive_files import sha256_path

    return sha256_path(path)


def evidence_change(ws: Workspace, ev: Evidence) -> str | None:
    """None when the evidence is as it was when the claim was made, else one line saying how not."""
    path = evidence_path(ws, ev.path)
    shown = clean(ev.path)
    try:
        now = sha256_now(path)
    except FileNotFoundError:
        return f"file gone: {shown}"
    except NotRegularFile as exc:
        return f"changed: {shown} ({clean(exc)})"
    except OSError as exc:
        return f"cannot read {shown}: {clean(exc.strerror or exc)}"
    if ev.sha256 is None:
        return None  # recorded without a hash: only the recomputation can speak for it
    if now != ev.sha256:
        return f"changed: {shown} (sha256 {ev.sha256[:12]}… now {now[:12]}…)"
    return None


# ------------------------------------------------------------------ comparing


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _difference(claimed: Any, actual: Any, tol: float | None) -> str:
    if _number(claimed) and _number(actual):
        a, b = float(claimed), float(actual)
        if math.isfinite(a) and math.isfinite(b):
            allowed = f"tol {tol:g}" if tol is not None else f"relative tol {REL_TOL:g}"
            return f"differs by {abs(a - b):.6g} ({allowed})"
    return "the files say otherwise"


def compare(claim: Claim, recomputed: Claim) -> Verdict:
    """A verdict on `claim` from its value recomputed now (UNVERIFIED when it could not be)."""
    if not recomputed.proven:
        why = recomputed.reason or "no evidence for it in the files"
        return Verdict(claim, UNVERIFIED, None, f"cannot recompute: {why}")
    if same_value(claim.value, recomputed.value, claim.tol):
        detail = f"within tol {claim.tol:g}" if claim.tol is not None and claim.value != recomputed.value else ""
        return Verdict(claim, VERIFIED, recomputed.value, detail)
    return Verdict(claim, CONTRADICTED, recomputed.value, _difference(claim.value, recomputed.value, claim.tol))


class _Deriver:
    """derive.derive_key for one subject, each (key, artifact) asked once."""

    def __init__(self, ws: Workspace, subject: Subject) -> None:
        self.ws, self.subject = ws, subject
        self._seen: dict[tuple[str, str | None], Claim] = {}

    def key(self, key: str, artifact: Path | None = None) -> Claim:
        memo = (key, str(artifact) if artifact is not None else None)
        if memo not in self._seen:
            from trainledger.engines.provenance.derive import derive_key

            try:
                got = derive_key(self.ws, self.subject, key, artifact)
            except (OSError, ValueError) as exc:  # derive_key reports, but a file may vanish meanwhile
                got = Claim(key, None, reason=f"cannot read the files: {clean(exc)}")
            self._seen[memo] = got
        return self._seen[memo]


def _artifact_of(ws: Workspace, claim: Claim) -> Path | None:
    """The artifact a stored field_share claim was measured in: its first evidence file."""
    if claim.key.startswith("field_share.") and claim.evidence:
        return evidence_path(ws, claim.evidence[0].path)
    return None


# ------------------------------------------------------------------ verifying


def verify_report(ws: Workspace, subject: Subject | str, report: Report) -> list[Verdict]:
    """A verdict per claim of a stored report: stale evidence first, then the value recomputed."""
    subj = _subject(ws, subject)
    derive = _Deriver(ws, subj)
    out: list[Verdict] = []
    for claim in report.claims:
        if not claim.proven:
            out.append(Verdict(claim, UNVERIFIED, None, claim.reason or "no evidence"))
            continue
        changed = next((c for c in (evidence_change(ws, e) for e in claim.evidence) if c), None)
        if changed:
            out.append(Verdict(claim, STALE, None, changed))
        else:
            out.append(compare(claim, derive.key(claim.key, _artifact_of(ws, claim))))
    return out


def verify_claims(
    ws: Workspace, subject: Subject | str, claims: list[Claim] | tuple[Claim, ...], artifact: Path | None = None
) -> list[Verdict]:
    """A verdict per hand-written claim, each recomputed now; the verdict's claim carries the
    evidence the recomputation used, so the report can name the file."""
    subj = _subject(ws, subject)
    derive = _Deriver(ws, subj)
    out: list[Verdict] = []
    for claim in claims:
        recomputed = derive.key(claim.key, artifact if claim.key.startswith("field_share.") else None)
        if not known_key(claim.key) and not recomputed.proven:
            out.append(Verdict(claim, UNVERIFIED, None, UNKNOWN_KEY))
            continue
        verdict = compare(claim, recomputed)
        out.append(replace(verdict, claim=replace(claim, evidence=recomputed.evidence)))
    return out


def _when(made_at: float) -> str:
    if made_at <= 0:
        return "at an unknown time"
    return datetime.fromtimestamp(made_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def verify_subject(ws: Workspace, subject: Subject | str) -> tuple[list[Verdict], str]:
    """The stored report's claims verified, or, with no report stored, the claims the files
    allow derived now (the note says which). Raises VerifyError for a report that cannot be read."""
    from trainledger.engines.provenance.store import load_report

    subj = _subject(ws, subject)
    try:
        report = load_report(ws, subj)
    except (OSError, ValueError) as exc:
        raise VerifyError(f"{subj.label}: the stored report cannot be read: {clean(exc)}") from None
    if report is not None:
        return verify_report(ws, subj, report), f"stored report made {_when(report.made_at)}"
    from trainledger.engines.provenance.derive import derive_claims

    verdicts = [
        Verdict(c, VERIFIED, c.value, "derived now") if c.proven
        else Verdict(c, UNVERIFIED, None, c.reason or "no evidence")
        for c in derive_claims(ws, subj)
    ]  # fmt: skip
    return verdicts, f"no stored report: claims derived from the files now (store one: trainledger report {subj.label})"


def counts(verdicts: list[Verdict]) -> dict[str, int]:
    """How many verdicts are in each state (every state present, 0 included)."""
    out = dict.fromkeys(STATES, 0)
    for v in verdicts:
        out[v.state] = out.get(v.state, 0) + 1
    return out


def failing(verdicts: list[Verdict]) -> bool:
    """Whether any verdict is stale or contradicted (what makes `verify` exit 1)."""
    return any(v.state in FAILING for v in verdicts)
