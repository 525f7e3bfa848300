"""`trainledger verify [RUN | MODEL@VERSION]... [--claims FILE] [--json]`: a CI gate on claims.

Without --claims each subject's stored report (`trainledger report`) is verified: its evidence
files hashed again, its values recomputed; with no report stored, the claims the files allow are
derived now. With --claims FILE the hand-written claims in it (docs/formats.md, "Claims files")
are checked against each subject instead; the subject may come from the file's `subject`.

Output: a line per claim (state, key, claimed, recomputed, evidence file, detail) and a summary
line per subject; --json prints one object instead. Exit 0 when nothing is stale or
contradicted, 1 otherwise, 2 on bad usage (an unknown subject, a bad claims file, a file that
cannot be read). Torch-free.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from trainledger.engines.provenance.model import CONTRADICTED, FAILING, STATES, Verdict
from trainledger.engines.safetext import clean

EXIT_OK, EXIT_FAILING, EXIT_USAGE = 0, 1, 2
VALUE_WIDTH = 24  # claimed/recomputed values are cut to this many characters in text output


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, exit 2
        raise _Usage(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="trainledger verify",
        description="Re-derive every claim about a run or a registered version from its files and mark each "
                    "verified, unverified, stale or contradicted.",
        epilog="exit status: 0 nothing stale or contradicted, 1 something is, 2 bad usage or input",
    )  # fmt: skip
    p.add_argument("subjects", nargs="*", metavar="RUN | MODEL@VERSION",
                   help="what to verify (default: the claims file's subject)")  # fmt: skip
    p.add_argument("--claims", metavar="FILE", help="hand-written claims in TOML to check instead of the stored report")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--workspace", metavar="DIR", help="workspace folder (default: as the console finds one)")
    return p


def _value(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = clean(text)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _finite(obj: Any) -> Any:
    """`obj` with NaN and infinities as the strings "nan", "inf", "-inf" (strict JSON has neither)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _cells(v: Verdict) -> list[str]:
    """state, key, claimed, [recomputed] (when it differs from the claimed text), evidence, detail."""
    claimed = _value(v.claim.value)
    recomputed = "" if v.recomputed is None else _value(v.recomputed)
    evidence = clean(v.claim.evidence[0].path) if v.claim.evidence else "-"
    shown = f"[{recomputed}]" if recomputed and (recomputed != claimed or v.state == CONTRADICTED) else ""
    return [v.state, clean(v.claim.key), claimed, shown, evidence, clean(v.detail)]


def verdict_lines(verdicts: Sequence[Verdict]) -> list[str]:
    """`state  key  claimed  [recomputed]  evidence-file  detail`, one line per verdict, the
    first four columns aligned (the recomputed value only where it is not the claimed one)."""
    rows = [_cells(v) for v in verdicts]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    out = []
    for row in rows:
        head = [cell.ljust(width) for cell, width in zip(row[:4], widths) if width]
        out.append("  ".join([*head, *[c for c in row[4:] if c]]).rstrip())
    return out


def verdict_line(v: Verdict) -> str:
    return verdict_lines([v])[0]


def summary_line(subject: str, tally: dict[str, int], note: str) -> str:
    bad = any(tally.get(s, 0) for s in FAILING)
    text = ", ".join(f"{tally.get(s, 0)} {s}" for s in STATES)
    return f"{clean(subject)}: {text} — {'FAILED' if bad else 'ok'}" + (f" ({clean(note)})" if note else "")


def _subjects(args: argparse.Namespace, file_subject: str | None) -> list[str]:
    subjects = list(args.subjects)
    if file_subject is not None:
        for s in subjects:
            if s != file_subject:
                raise _Usage(f"the claims file is about {clean(file_subject)!r} but {clean(s)!r} was given")
        subjects = subjects or [file_subject]
    if not subjects:
        raise _Usage("name a run or MODEL@VERSION (or give a claims file with subject = ...)")
    return subjects


def run(args: argparse.Namespace, out: TextIO) -> int:
    from trainledger.engines.provenance import verify
    from trainledger.engines.provenance.claimsfile import load_claims
    from trainledger.engines.provenance.subject import resolve
    from trainledger.engines.workspace import resolve_workspace

    claims_file = load_claims(args.claims) if args.claims else None
    labels = _subjects(args, claims_file.subject if claims_file else None)
    ws, _ = resolve_workspace(args.workspace, create_explicit=False, create_default=False)
    subjects = [resolve(ws, s) for s in dict.fromkeys(labels)]  # every one resolved before any output
    results: list[tuple[str, list[Verdict], str]] = []
    for subj in subjects:
        if claims_file is not None:
            verdicts = verify.verify_claims(ws, subj, claims_file.claims, claims_file.artifact)
            note = f"claims from {claims_file.path.name}"
        else:
            verdicts, note = verify.verify_subject(ws, subj)
        results.append((subj.label, verdicts, note))
    ok = not any(verify.failing(v) for _, v, _ in results)
    if args.json:
        doc = {"subjects": [{"subject": label, "verdicts": [v.to_json() for v in verdicts],
                             "counts": verify.counts(verdicts), "note": note}
                            for label, verdicts, note in results], "ok": ok}  # fmt: skip
        out.write(json.dumps(_finite(doc), indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n")
    else:
        for label, verdicts, note in results:
            for line in verdict_lines(verdicts):
                out.write(line + "\n")
            out.write(summary_line(label, verify.counts(verdicts), note) + "\n")
    return EXIT_OK if ok else EXIT_FAILING


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from trainledger.engines.provenance.claimsfile import ClaimsFileError
    from trainledger.engines.provenance.subject import SubjectError
    from trainledger.engines.provenance.verify import VerifyError
    from trainledger.engines.workspace import InvalidId, NotAWorkspace

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return run(args, out)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_OK
    except (_Usage, ClaimsFileError, SubjectError, VerifyError, InvalidId, NotAWorkspace) as exc:
        err.write(f"trainledger verify: {clean(exc)}\n")
        return EXIT_USAGE
    except OSError as exc:
        err.write(f"trainledger verify: {clean(exc)}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
