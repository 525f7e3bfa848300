"""A subject's stored report and the verdicts on it, as the console shows them: run in workers.

`assess(ws, label)` reads the stored report of a run or a `MODEL@VERSION` and verifies every
claim against the files it names (engines.provenance.verify.verify_report: evidence re-hashed,
values re-derived; torch-free). It never raises: a report that cannot be read, or a verification
that fails, comes back as an Assessment with `error`. The UI thread never calls it; the Curves
report screen and the Versions pane call it in thread workers and render what comes back.
What blocks a promotion (stale or contradicted claims, failing checks) and what the audit
records about it are decided here too, so the pane and its confirmation say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainledger.engines.provenance.model import CONTRADICTED, STALE, UNVERIFIED, VERIFIED, Report, Verdict
from trainledger.engines.provenance.subject import Subject, SubjectError, resolve
from trainledger.engines.safetext import clean
from trainledger.engines.workspace import InvalidId, Workspace, validate_id

# The pane's states for a version (or a run): one glyph and word each.
NO_REPORT, FAILING_CHECKS, ERROR, CHECKING = "no report", "checks failing", "error", "checking"
MARKS: dict[str, str] = {
    VERIFIED: "✓", UNVERIFIED: "✓", STALE: "⚠", CONTRADICTED: "⚠", FAILING_CHECKS: "✗",
    NO_REPORT: "·", ERROR: "?", CHECKING: "…",
}  # fmt: skip


def load_stored(ws: Workspace, subject: Subject) -> Report | None:
    """The subject's stored report, None when there is none (ValueError, OSError for a bad one)."""
    from trainledger.engines.provenance.store import load_report

    return load_report(ws, subject)


def version_report_file(ws: Workspace, model: str, version: str) -> Path | None:
    """registry/reports/<model>/<version>.json (ids validated), None for an id that is no id: where
    engines.provenance.store keeps a version's report, found without opening the registry."""
    from trainledger.engines.provenance.store import REPORTS_DIR

    try:
        folder = ws.registry_dir / REPORTS_DIR / validate_id(model, "model name")
        return folder / f"{validate_id(version, 'version')}.json"
    except InvalidId:
        return None


@dataclass(frozen=True)
class Assessment:
    """What the console knows of one subject's provenance."""

    label: str  # "RUN" or "MODEL@VERSION"
    report: Report | None = None
    verdicts: tuple[Verdict, ...] | None = None  # one per report claim, in order; None if not verified
    error: str | None = None  # the report could not be read, or the verification failed

    def names(self, state: str) -> list[str]:
        return [v.claim.key for v in self.verdicts or () if v.state == state]

    @property
    def stale(self) -> list[str]:
        return self.names(STALE)

    @property
    def contradicted(self) -> list[str]:
        return self.names(CONTRADICTED)

    @property
    def failing_checks(self) -> list[str]:
        checks = self.report.checks if self.report else ()
        return [str(c.get("name") or "?") for c in checks if c.get("ok") is False]

    @property
    def state(self) -> str:
        """contradicted > stale > checks failing > verified; no report, error."""
        if self.report is None:
            return ERROR if self.error else NO_REPORT
        if self.contradicted:
            return CONTRADICTED
        if self.stale:
            return STALE
        if self.failing_checks:
            return FAILING_CHECKS
        return ERROR if self.error else VERIFIED

    @property
    def blocks(self) -> bool:
        """A promotion of it must be typed to be confirmed."""
        return bool(self.stale or self.contradicted or self.failing_checks)

    def audit_detail(self) -> dict[str, Any]:
        """What the promote's audit entry records when the user typed past it."""
        return {"provenance": {"stale": self.stale, "contradicted": self.contradicted,
                               "failing_checks": self.failing_checks, "confirmed_by_typing": True}}  # fmt: skip

    def why(self, limit: int = 6) -> list[str]:
        """Lines for a confirmation: which claims and checks stand against it."""

        def listed(names: list[str]) -> str:
            shown = ", ".join(clean(n) for n in names[:limit])
            return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")

        lines = []
        if self.contradicted:
            lines.append(f"CONTRADICTED claims (the files say otherwise): {listed(self.contradicted)}")
        if self.stale:
            lines.append(f"STALE claims (an evidence file changed since the report): {listed(self.stale)}")
        if self.failing_checks:
            lines.append(f"FAILING checks in the stored report: {listed(self.failing_checks)}")
        if self.error:
            lines.append(f"could not verify: {clean(self.error)}")
        return lines


def begin(ws: Workspace, label: str) -> tuple[Subject | None, Assessment]:
    """The subject resolved and its report read, not yet verified (a screen shows "checking…")."""
    try:
        subject = resolve(ws, label)
    except (SubjectError, OSError, ValueError) as exc:
        return None, Assessment(label, error=clean(exc))
    try:
        report = load_stored(ws, subject)
    except (OSError, ValueError, RecursionError) as exc:
        why = f"the stored report cannot be read: {type(exc).__name__}: {exc}"
        return subject, Assessment(subject.label, error=why)
    return subject, Assessment(subject.label, report)


def finish(ws: Workspace, subject: Subject | None, a: Assessment) -> Assessment:
    """`a` with a verdict on each claim (engines.provenance.verify.verify_report); never raises."""
    if subject is None or a.report is None:
        return a
    from trainledger.engines.provenance.verify import verify_report

    try:
        verdicts = tuple(verify_report(ws, subject, a.report))
    except Exception as exc:  # noqa: BLE001 - said on the screen; the claims stay shown as claimed
        return Assessment(a.label, a.report, error=f"verifying failed: {type(exc).__name__}: {exc}")
    if len(verdicts) != len(a.report.claims):
        return Assessment(a.label, a.report, error="verify gave a verdict count unlike the claims")
    return Assessment(a.label, a.report, verdicts)


def assess(ws: Workspace, label: str) -> Assessment:
    """Load and verify `label`'s stored report; never raises."""
    return finish(ws, *begin(ws, label))


def assess_version(ws: Workspace, model: str, version: str) -> Assessment:
    """As `assess`, with a cheap look for the report file first (most versions have none)."""
    path = version_report_file(ws, model, version)
    label = f"{model}@{version}"
    if path is None:
        return Assessment(label, error="not a valid model or version name")
    if not path.exists():
        return Assessment(label)
    return assess(ws, label)
