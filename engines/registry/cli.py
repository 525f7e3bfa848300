"""`trainledger registry ...`: every registry operation from the command line, for people and scripts.

Each command prints what changed in a line or a few (`--json`: one JSON object instead) and
exits 0 on success, 1 on a refusal (RegistryError, its reason on stderr) and 2 on bad usage
(argparse, RegistryUsageError, an invalid name). This module holds the parser, the dispatch
and the operations that move what is live; reading and printing the registry is in
cli_show.py, building and checking a candidate for `deploy` in cli_deploy.py. Start-up is
kept light (no torch, no numpy; `list --json` over 2,000 versions is meant to answer in
under 200 ms): only `deploy` imports the probe, and only when it probes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainledger.engines.registry.types import Change, RegistryError, RegistryUsageError
from trainledger.engines.safetext import clean, clean_lines

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

# One glyph per version status, in the spirit of `kubectl argo rollouts get`; the Versions
# pane imports this so the CLI and the console never disagree.
STATUS_GLYPHS: dict[str, str] = {
    "active": "✔", "canary": "◌", "aborted": "⚠", "corrupt": "✖", "rolled_back": "↺", "inactive": "·",
}  # fmt: skip
CHECK_GLYPHS: dict[str, str] = {"ok": "✔", "failed": "✖", "skipped": "–"}

# `policy` flags -> policy.Thresholds fields, with the type each value is parsed as.
POLICY_FLAGS: tuple[tuple[str, type], ...] = (
    ("max_error_rate", float), ("max_latency_ms", float), ("max_memory_gb", float), ("window_s", float),
    ("min_requests", int), ("failure_limit", int), ("consecutive_error_limit", int),
)  # fmt: skip


def _traffic(text: str) -> int:
    """A canary share: a whole percent from 1 to 99 (not 0, 100, -5, 10.5 or abc)."""
    if not re.fullmatch(r"[0-9]{1,3}", text.strip()) or not 1 <= int(text) <= 99:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole percent from 1 to 99")
    return int(text)


def _steps(text: str) -> list[int]:
    """Canary steps: `10,25,50,100` (checked further by live.canary_plan)."""
    parts = [t.strip() for t in text.split(",")]
    if not all(re.fullmatch(r"[0-9]{1,3}", t) for t in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole percents like 10,25,50,100")
    return [int(t) for t in parts]


def _duration(text: str) -> float:
    """Seconds from `90`, `90s`, `5m` or `1h`."""
    m = re.fullmatch(r"([0-9]{1,6}(?:\.[0-9]{1,3})?)\s*(s|m|h)?", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 60s, 5m or 90")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def _keep(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trainledger registry",
        description="The model registry: deploy, canary, promote, abort, rollback; list, show, history, verify.",
        epilog="exit status: 0 done, 1 refused (the reason is on stderr), 2 bad usage or input",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, *, reason: bool = False, json_out: bool = True) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help.replace("%%", "%"))  # help is %-formatted
        c.add_argument("--workspace", metavar="DIR", help="workspace folder (default: as the console finds one)")
        if json_out:
            c.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
        if reason:
            c.add_argument("--reason", default="", metavar="TEXT", help="why: kept in the audit log")
        return c

    d = add("deploy", "register a run's checkpoint (or a folder) as a new inactive version", reason=True)
    d.add_argument("model", metavar="MODEL")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="RUN", help="a run of this workspace")
    src.add_argument("--path", metavar="DIR", help="a folder inside the workspace holding the artifact files")
    d.add_argument("--checkpoint", choices=("best", "last"), default="best", help="with --run (default: best)")
    d.add_argument("--kind", metavar="KIND", help="with --path: the model kind (`trainledger train` MODEL)")
    d.add_argument("--version", metavar="V", help="version name (default: v1, v2, ...)")
    d.add_argument("--dry-run", action="store_true", help="run every check, change nothing")
    d.add_argument("--no-probe", action="store_true", help="skip loading the weights and the probe batch")

    c = add("canary", "send PCT %% of requests to VERSION", reason=True)
    c.add_argument("model", metavar="MODEL")
    c.add_argument("version", metavar="VERSION")
    c.add_argument("--traffic", type=_traffic, metavar="PCT", help="1-99 (default: the first of --steps)")
    c.add_argument("--steps", type=_steps, metavar="P,P,...",
                   help="percents the port server steps through, one per passing --interval; 100 promotes")
    c.add_argument("--interval", type=_duration, metavar="TIME", default=None,
                   help="with --steps: how long each step runs (60s, 5m, 90; default 60s)")
    for name, help in (("promote", "make the canary (or VERSION) active; the old one stays the rollback target"),
                       ("rollback", "at once back to the rollback target (or VERSION), clearing any canary")):
        c = add(name, help, reason=True)
        c.add_argument("model", metavar="MODEL")
        c.add_argument("version", metavar="VERSION", nargs="?")
    c = add("abort", "put the canary back to 0 %% (refused when there is none)", reason=True)
    c.add_argument("model", metavar="MODEL")

    c = add("list", "models and their versions: status, traffic, run, epoch, checksum")
    c.add_argument("model", metavar="MODEL", nargs="?")
    c = add("show", "every field of one version, its checks and its audit entries")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("version", metavar="VERSION")
    c = add("history", "the audit log of a model and what was live after each entry")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("--at", metavar="TIME",
                   help="what was live then: 2026-12-02T10:00:00, '2026-12-02 10:00' (local time) or a unix time")
    c = add("verify", "re-hash every kept artifact; exit 1 if any is corrupt", reason=True)
    c.add_argument("model", metavar="MODEL", nargs="?")
    c = add("prune", "delete the artifacts of old inactive versions (their records stay)", reason=True)
    c.add_argument("model", metavar="MODEL")
    c.add_argument("--keep", type=_keep, required=True, metavar="N", help="newest inactive versions to keep")
    add("export", "a readable copy of the registry: models, versions, audit (sorted, stable)")
    c = add("policy", "show or set a model's automatic-rollback thresholds", reason=True)
    c.add_argument("model", metavar="MODEL")
    for name, kind in POLICY_FLAGS:
        c.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, metavar="N" if kind is int else "F")
    c = add("import", "import a seed-004 folder (versions.json, current.txt, vX.Y.Z/adapters/)", reason=True)
    c.add_argument("model", metavar="MODEL")
    c.add_argument("dir", metavar="DIR")
    return p


# --------------------------------------------------------------------------- shared helpers

def say(*parts: object) -> None:
    """Print a line to stdout with every control character made visible."""
    print(clean(" ".join(str(p) for p in parts)))


def emit(obj: Any) -> None:
    """Print `obj` as JSON: ASCII only, so no name or reason can reach the terminal as control."""
    print(json.dumps(obj, ensure_ascii=True, sort_keys=True, default=str))


def change_dict(c: Change) -> dict[str, Any]:
    return {"action": c.action, "model": c.model, "from": c.from_version, "to": c.to_version,
            "message": c.message, "dry_run": c.dry_run, "audit_id": c.audit_id, "details": c.details}  # fmt: skip


def workspace(args: argparse.Namespace) -> Any:
    """The workspace named or found as the other commands find it; never created here."""
    from trainledger.engines.workspace import resolve_workspace

    ws, _ = resolve_workspace(args.workspace, create_explicit=False, create_default=False)
    return ws


def registry(args: argparse.Namespace) -> Any:
    from trainledger.engines.registry.store import Registry

    return Registry(workspace(args))


def check_name(value: str, kind: str) -> str:
    from trainledger.engines.registry.store import check_name as check

    return check(value, kind)


def _print_change(args: argparse.Namespace, change: Change) -> int:
    if args.json:
        emit({"ok": True, "change": change_dict(change)})
    else:
        say(change.message)
    return EXIT_OK


# --------------------------------------------------------------------------- what moves

def cmd_canary(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        plan = None
        if args.steps is not None:
            plan = {"steps": args.steps, "interval_s": 60.0 if args.interval is None else args.interval}
        elif args.interval is not None:
            raise RegistryUsageError("--interval goes with --steps")
        traffic = args.traffic if args.traffic is not None else (args.steps[0] if args.steps else None)
        if traffic is None:
            raise RegistryUsageError("canary needs --traffic PCT or --steps P,P,...")
        return _print_change(args, reg.canary(args.model, args.version, traffic, reason=args.reason, plan=plan))


def cmd_promote(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        return _print_change(args, reg.promote(args.model, args.version, reason=args.reason))


def cmd_abort(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        return _print_change(args, reg.abort(args.model, reason=args.reason))


def cmd_rollback(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        return _print_change(args, reg.rollback(args.model, args.version, reason=args.reason))


def cmd_prune(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        return _print_change(args, reg.prune(args.model, args.keep, reason=args.reason))


def _thresholds() -> Any | None:
    try:
        from trainledger.engines.registry.policy import Thresholds
    except ImportError:
        return None
    return Thresholds


def cmd_policy(args: argparse.Namespace) -> int:
    """Without flags, the thresholds in force; with any, those changed (the rest kept)."""
    given = {name: getattr(args, name) for name, _ in POLICY_FLAGS if getattr(args, name) is not None}
    thresholds = _thresholds()
    with registry(args) as reg:
        state = reg.model(args.model)
        current = dict(state.policy)
        if thresholds is not None:
            current = thresholds.from_dict(current).to_dict()  # the defaults filled in
        if not given:
            if args.json:
                emit({"model": state.name, "policy": current})
            else:
                say(f"{state.name}: automatic-rollback thresholds")
                for key in sorted(current):
                    say(f"  {key.replace('_', '-'):<24} {current[key]}")
            return EXIT_OK
        wanted = {**current, **given}
        if thresholds is not None:
            try:
                wanted = thresholds.from_dict(wanted).to_dict()
            except (TypeError, ValueError) as exc:
                raise RegistryUsageError(f"policy: {exc}") from None
        change = reg.set_policy(args.model, wanted, reason=args.reason)
        if args.json:
            emit({"ok": True, "change": change_dict(change), "policy": wanted})
            return EXIT_OK
        say(change.message)
        for key in sorted(wanted):
            if current.get(key) != wanted[key]:
                say(f"  {key.replace('_', '-'):<24} {current.get(key, '-')} -> {wanted[key]}")
        return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    folder = Path(args.dir).expanduser()
    if not folder.is_dir():
        raise RegistryUsageError(f"{args.dir}: not a folder")
    try:
        from trainledger.engines.registry.importer import import_folder
    except ImportError as exc:
        raise RegistryError(f"import is not available in this installation ({exc})") from None
    with registry(args) as reg:
        changes = import_folder(reg, args.model, folder, reason=args.reason)
    if args.json:
        emit({"ok": True, "changes": [change_dict(c) for c in changes]})
    else:
        for c in changes:
            say(c.message)
        say(f"{len(changes)} change(s) from {folder} into {args.model}")
    return EXIT_OK


# --------------------------------------------------------------------------- dispatch

def _commands() -> dict[str, Any]:
    from trainledger.engines.registry import cli_deploy, cli_show

    return {
        "deploy": cli_deploy.cmd_deploy, "canary": cmd_canary, "promote": cmd_promote, "abort": cmd_abort,
        "rollback": cmd_rollback, "prune": cmd_prune, "policy": cmd_policy, "import": cmd_import,
        "list": cli_show.cmd_list, "show": cli_show.cmd_show, "history": cli_show.cmd_history,
        "verify": cli_show.cmd_verify, "export": cli_show.cmd_export,
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `trainledger registry` command and return its exit status (0, 1 or 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from trainledger.engines.workspace import InvalidId, NotAWorkspace

    prog = f"trainledger registry {args.command}"
    try:
        # Names are checked before anything is opened, so `../x` or a NUL never reaches a path or
        # a query, and a bad name is bad usage (2) even where no registry exists yet.
        if getattr(args, "model", None) is not None:
            check_name(args.model, "model name")
        if getattr(args, "version", None) is not None:
            check_name(args.version, "version")
        return int(_commands()[args.command](args))
    except RegistryUsageError as exc:
        print(f"{prog}: {clean_lines(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except RegistryError as exc:
        print(f"{prog}: {clean_lines(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except (InvalidId, NotAWorkspace, NotADirectoryError) as exc:
        print(f"{prog}: {clean_lines(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a disk or permission problem: refused, said plainly
        print(f"{prog}: {clean_lines(exc)}", file=sys.stderr)
        return EXIT_REFUSED
