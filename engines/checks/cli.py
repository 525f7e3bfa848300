"""`trainledger check (RUN | MODEL@VERSION) [--only NAME] [--json] [--artifact PATH] [--fields F,F]
[--data PATH] [--workspace DIR]`: run the checks that apply to a run or a registered version.

Text: one line per check, `PASS|FAIL|SKIP name figure reason`. `--json`: one object,
{"schema": "trainledger-checks/1", "subject", "kind", "ok", "checks": [CheckResult.to_json()]}.
Exit 0 when no check fails (skipped ones do not fail), 1 when one fails, 2 on bad usage (a
subject that does not exist, an unknown --only, --fields without --artifact, no workspace).
This command may load models (torch) for the checks that need them; nothing else here does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from trainledger.engines.safetext import clean

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SCHEMA = "trainledger-checks/1"
WORD = {"pass": "PASS", "fail": "FAIL", "skipped": "SKIP"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise _Usage(message)


class _Usage(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trainledger check", description="Run the file and model checks on a run or a version.")
    p.add_argument("subject", metavar="RUN | MODEL@VERSION")
    p.add_argument("--only", metavar="NAME", help="run just this check")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--artifact", metavar="PATH", help="a JSON or JSONL file for field_preservation")
    p.add_argument("--fields", metavar="F,F", help="field paths for field_preservation (audio_frames[].gesture_token)")
    p.add_argument("--data", metavar="PATH", help="a data file or folder for lvm_dataset / data_pool / vocabulary "
                                                  "(default: the run's own)")  # fmt: skip
    p.add_argument("--workspace", metavar="DIR", help="workspace folder (default: as the console finds one)")
    return p


def fmt_number(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def fmt_figure(fig: Any) -> str:
    if isinstance(fig, dict):
        return ",".join(f"{k}={fmt_number(v)}" for k, v in fig.items()) or "-"
    if isinstance(fig, (list, tuple)):
        return ",".join(fmt_number(v) for v in fig) or "-"
    return fmt_number(fig)


def text_line(result: Any) -> str:
    return clean(f"{WORD[result.state]} {result.name} {fmt_figure(result.figure)} {result.reason}")


def options(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.artifact:
        out["artifact"] = args.artifact
    if args.fields:
        out["fields"] = [f.strip() for f in args.fields.split(",") if f.strip()]
    if args.data:
        out["data"] = args.data
    return out


def finite(obj: Any) -> Any:
    """`obj` with NaN and infinities as null, so --json stays JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = "trainledger check"
    try:
        args = parser().parse_args(argv)
    except _Usage as exc:
        print(f"{prog}: {clean(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.fields and not args.artifact:
        print(f"{prog}: --fields needs --artifact (the file whose records carry them)", file=sys.stderr)
        return EXIT_USAGE
    if args.artifact and not args.fields:
        print(f"{prog}: --artifact needs --fields (which fields its records must carry)", file=sys.stderr)
        return EXIT_USAGE
    from trainledger.engines.checks.runner import run_checks
    from trainledger.engines.provenance.subject import SubjectError, resolve
    from trainledger.engines.workspace import InvalidId, NotAWorkspace, resolve_workspace

    try:
        ws, _ = resolve_workspace(args.workspace, create_explicit=False, create_default=False)
        subject = resolve(ws, args.subject)
        results = run_checks(ws, subject, only=args.only, options=options(args))
    except (SubjectError, InvalidId, NotAWorkspace, NotADirectoryError, ValueError) as exc:
        print(f"{prog}: {clean(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{prog}: {clean(exc)}", file=sys.stderr)
        return EXIT_USAGE
    failed = any(r.ok is False for r in results)
    if args.json:
        out = {"schema": SCHEMA, "subject": subject.label, "kind": subject.kind, "ok": not failed,
               "checks": [finite(r.to_json()) for r in results]}  # fmt: skip
        print(json.dumps(out, ensure_ascii=True, default=str))
    else:
        if not results:
            print(clean(f"no checks apply to {subject.label}"))
        for r in results:
            print(text_line(r))
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
