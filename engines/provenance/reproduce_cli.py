"""`trainledger reproduce RUN [--epochs N]`: re-run a run's training and compare its metrics.

Exit 0: the re-run's metrics are identical to the run's at every step both logged; 1: they
differ (the largest difference is printed), the training failed, or the run was refused (its
data changed, run.json does not say how it was trained); 2: bad usage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any, TextIO

from trainledger.engines.safetext import clean

EXIT_OK, EXIT_DIFFERS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, exit 2
        print(f"trainledger reproduce: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trainledger reproduce", description=__doc__.split("\n\n")[0],
                epilog="exit status: 0 identical, 1 differs or refused, 2 bad usage")  # fmt: skip
    p.add_argument("run", metavar="RUN", help="a run id of the workspace, or a run folder")
    p.add_argument("--epochs", type=int, metavar="N", help="train N epochs instead (only common steps compare)")
    p.add_argument("--run-id", metavar="ID", help="id of the new run (default: <RUN>-repro-<n>)")
    p.add_argument("--workspace", metavar="DIR", help="workspace folder (default: as the console finds one)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    return p


def _new_id(ws: Any, run_id: str) -> str:
    from trainledger.engines.workspace import validate_id

    base = run_id[:100]
    for n in range(1, 10_000):
        candidate = validate_id(f"{base}-repro-{n}", "run id")
        if not ws.run_dir(candidate).exists():
            return candidate
    raise ValueError("no free run id")


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)
    from trainledger.engines.provenance.reproduce import ReproduceError, check_data, compare, plan
    from trainledger.engines.provenance.subject import SubjectError, resolve
    from trainledger.engines.workspace import InvalidId, NotAWorkspace, resolve_workspace, validate_id

    if args.epochs is not None and args.epochs < 1:
        print("trainledger reproduce: --epochs must be 1 or more", file=err)
        return EXIT_USAGE
    try:
        ws, _ = resolve_workspace(args.workspace, create_explicit=False, create_default=False)
        subject = resolve(ws, args.run)
        new_id = validate_id(args.run_id, "run id") if args.run_id else _new_id(ws, subject.run_id or "run")
        if ws.run_dir(new_id).exists():
            print(f"trainledger reproduce: run {new_id!r} exists already", file=err)
            return EXIT_USAGE
    except (NotAWorkspace, SubjectError, InvalidId, NotADirectoryError, ValueError) as exc:
        print(f"trainledger reproduce: {clean(str(exc))}", file=err)
        return EXIT_USAGE
    try:
        data_note = check_data(subject.run)
        the_plan = plan(ws, subject, new_id, args.epochs)
    except ReproduceError as exc:
        print(f"trainledger reproduce: refused: {clean(str(exc))}", file=err)
        return EXIT_DIFFERS
    print(f"reproducing {clean(subject.label)}: {data_note}", file=out)
    print(f"  {clean(the_plan.command)}" + (f"  (--epochs {args.epochs})" if args.epochs else ""), file=out)
    print(f"  into run {new_id}", file=out, flush=True)
    proc = subprocess.run(the_plan.argv, stdout=out if out is sys.stdout else subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False)  # fmt: skip
    if out is not sys.stdout and proc.stdout:
        out.write(proc.stdout.decode("utf-8", "replace"))
    new_dir = ws.run_dir(new_id)
    if proc.returncode != 0 or not (new_dir / "metrics.jsonl").is_file():
        print(f"trainledger reproduce: the re-run ended with status {proc.returncode}; see runs/{new_id}/",
              file=err)  # fmt: skip
        return EXIT_DIFFERS
    from trainledger.engines.provenance.subject import read_run_json

    result = compare(subject.run_dir / "metrics.jsonl", new_dir / "metrics.jsonl")  # type: ignore[operator]
    old_data, new_data = subject.run.get("data"), read_run_json(new_dir).get("data")
    data_same = not (isinstance(old_data, dict) and isinstance(new_data, dict)) or (
        old_data.get("sha256") == new_data.get("sha256"))
    ok = result.identical and data_same
    if args.json:
        print(json.dumps({"run": subject.label, "new_run": new_id, "command": the_plan.command,
                          "data_same": data_same, **result.to_json(), "ok": ok}), file=out)  # fmt: skip
    else:
        _say(out, subject.label, new_id, result, data_same)
    return EXIT_OK if ok else EXIT_DIFFERS


def _say(out: TextIO, label: str, new_id: str, result: Any, data_same: bool) -> None:
    extra = []
    if result.only_original or result.only_new:
        extra.append(f"{result.only_original} values only in {label}, {result.only_new} only in {new_id}")
    if not data_same:
        extra.append("the data's sha256 differs between the two runs")
    tail = f" ({'; '.join(extra)})" if extra else ""
    if result.identical:
        print(f"identical: {result.values:,} values over {result.steps:,} steps match exactly{tail}", file=out)
    elif result.values == 0:
        print(f"nothing to compare: no step and metric in common{tail}", file=out)
    else:
        w = result.largest or {}
        print(f"differs: {result.differing:,} of {result.values:,} values over {result.steps:,} steps; largest "
              f"{clean(str(w.get('metric')))} at step {w.get('step')}: {w.get('original')!r} vs {w.get('new')!r} "
              f"(difference {w.get('difference'):.3g}){tail}", file=out)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
