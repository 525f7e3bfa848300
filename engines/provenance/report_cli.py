"""`trainledger report (RUN | MODEL@VERSION) [--format text|json|md] [--workspace DIR]
[--no-save] [--no-checks]`: a training report built only from files.

Every claim carries its evidence (the file, its sha256, how the value was computed); what
the files cannot prove is listed as unverified with the reason. The checks
(engines/checks/runner.py) run unless --no-checks, their results stored beside the claims.
The report is saved where `verify` and the console find it (runs/<run>/report.json,
registry/reports/<model>/<version>.json) unless --no-save. Exit 0; 2 on bad usage (an
unknown subject, a workspace that is not one), with one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from trainledger.engines.provenance.model import Report
from trainledger.engines.provenance.render import FORMATS, render
from trainledger.engines.safetext import clean

EXIT_OK, EXIT_USAGE = 0, 2


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, exit 2
        raise _Usage(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trainledger report",
                description="A training report where every claim points to a file: data, counts, optimizer, "
                            "checkpoint, parameters, metrics, checks and the reproduction command.")  # fmt: skip
    p.add_argument("subject", metavar="RUN | MODEL@VERSION", help="a run id (or run folder) or a registered version")
    p.add_argument("--format", choices=FORMATS, default="text", help="text (default), json, or md for a pull request")
    p.add_argument("--workspace", metavar="DIR", help="workspace folder (default: as the console finds one)")
    p.add_argument("--no-save", action="store_true", help="print only; do not store the report")
    p.add_argument("--no-checks", action="store_true", help="claims only; do not run the checks")
    return p


def run_checks_json(ws: Any, subject: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The checks' results as JSON, or ([], why there are none)."""
    try:
        from trainledger.engines.checks.runner import run_checks
    except ImportError:
        return [], "not available"
    try:
        results = run_checks(ws, subject)
    except ImportError as exc:
        return [], f"not available ({clean(exc)})"
    except Exception as exc:  # the runner reports a check's own exception; this is the runner's
        return [], f"could not be run: {type(exc).__name__}: {clean(str(exc))[:200]}"
    return [r.to_json() for r in results], None


def build_report(ws: Any, subject: Any, checks: bool = True) -> Report:
    """Claims derived from the files, and the checks' results (unless `checks` is False)."""
    from trainledger.engines.provenance.derive import derive_claims

    claims = tuple(derive_claims(ws, subject))
    extra: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    if checks:
        results, note = run_checks_json(ws, subject)
        if note:
            extra["checks_note"] = f"checks: {note}"
    else:
        extra["checks_note"] = "checks: not run (--no-checks)"
    line = next((c.value for c in claims if c.key == "reproduce" and c.proven), None)
    if isinstance(line, str):
        extra["reproduce"] = line
    return Report(subject.label, subject.kind, time.time(), claims, tuple(results), extra)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from trainledger.engines.provenance.store import StoreError, save_report
    from trainledger.engines.provenance.subject import SubjectError, resolve
    from trainledger.engines.workspace import InvalidId, NotAWorkspace, resolve_workspace

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except _Usage as exc:
        print(f"trainledger report: {clean(exc)}", file=err)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        ws, _ = resolve_workspace(args.workspace, create_explicit=False, create_default=False)
        subject = resolve(ws, args.subject)
    except (SubjectError, InvalidId, NotAWorkspace, NotADirectoryError) as exc:
        print(f"trainledger report: {clean(exc)}", file=err)
        return EXIT_USAGE
    report = build_report(ws, subject, checks=not args.no_checks)
    saved = None
    if not args.no_save:
        try:
            saved = save_report(ws, subject, report)
        except (StoreError, InvalidId, OSError) as exc:
            print(f"trainledger report: not saved: {clean(exc)}", file=err)
    out.write(render(report, args.format))
    if saved is not None:
        from trainledger.engines.provenance.derive_files import rel

        note = f"saved {clean(rel(ws, saved))} (verify it: trainledger verify {clean(subject.label)})"
        print(note, file=out if args.format == "text" else err)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
