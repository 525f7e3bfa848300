"""`trainledger runs ...`: list the runs of a workspace, and tidy them (tag, rename, archive,
delete, purge) or export their metrics.

    trainledger runs [WORKSPACE] [--json] [--all]
    trainledger runs tag RUN... [--add T]... [--remove T]... [--note TEXT]
    trainledger runs rename RUN NEWNAME
    trainledger runs archive RUN... [--undo]
    trainledger runs delete RUN... [--yes]
    trainledger runs purge [--yes]
    trainledger runs export RUN... [--csv|--json] [--metrics REGEX] [--layout wide|long] [-o FILE]

RUN is a run id or a unique run name. The subcommands take `--workspace DIR` (default: as the
console finds one); none of them creates a workspace. Exit status: 0 done, 1 a confirmation
was declined, 2 bad input (an unknown or ambiguous run, a bad tag, a running run to delete,
no --yes without a terminal). Nothing is imported from Textual here.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SUBCOMMANDS = ("tag", "rename", "archive", "delete", "purge", "export")
EXIT_OK, EXIT_DECLINED, EXIT_USAGE = 0, 1, 2
_C1 = re.compile("[\x7f-\x9f]")

USAGE = """\
trainledger runs [WORKSPACE] [--json] [--all]
       trainledger runs tag RUN... [--add TAG]... [--remove TAG]... [--note TEXT]
       trainledger runs rename RUN NEWNAME
       trainledger runs archive RUN... [--undo]
       trainledger runs delete RUN... [--yes]
       trainledger runs purge [--yes]
       trainledger runs export RUN... [--csv|--json] [--metrics REGEX] [--layout wide|long] [-o FILE]"""

EPILOG = """\
RUN is a run id or a unique run name. Every subcommand takes --workspace DIR (default: as
for `trainledger open`) and none creates a workspace.
  tag       add or remove tags and set the note (no option: print them)
  rename    set the name the console and `runs` show (run.json is left as the trainer wrote it)
  archive   hide runs from the list (`runs --all` and the console's toggle show them); --undo
  delete    move runs to the workspace's trash (.trainledger/trash); never a running run;
            asks for the run id (or "delete N runs") on a terminal, else needs --yes
  purge     empty the trash for good (asks, or --yes)
  export    metrics as CSV (default) or JSON, wide (a row per run and step) or long (a row per
            value), to stdout or -o FILE (docs/formats.md, "Export")
exit status: 0 done, 1 a confirmation was declined, 2 bad input or refused."""


class Refused(Exception):
    """Bad input or a refused action: printed as one line, exit 2."""


def _out(text: str) -> None:
    from trainledger.engines.safetext import clean_lines

    sys.stdout.write(clean_lines(text) + "\n")


def _err(text: str) -> None:
    from trainledger.engines.safetext import clean

    print(f"trainledger runs: {clean(text)}", file=sys.stderr)


# ----------------------------------------------------------------------------- parsers
def list_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainledger runs", usage=USAGE, epilog=EPILOG,
                                description="List the runs of a workspace, newest first.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("workspace", nargs="?", help="workspace folder")
    p.add_argument("--workspace", dest="workspace_opt", metavar="DIR", help="the same, as the subcommands take it")
    p.add_argument("--json", action="store_true", help="print JSON (name, tags, archived, note included)")
    p.add_argument("--all", action="store_true", help="archived runs too")
    return p


def sub_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainledger runs", usage=USAGE, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)

    def add(name: str, text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=text, description=text, prog=f"trainledger runs {name}")
        sp.add_argument("--workspace", help="workspace folder (default: as for `trainledger open`)")
        return sp

    t = add("tag", "add or remove tags of runs, set their note (no option: print them)")
    t.add_argument("runs", nargs="+", metavar="RUN")
    t.add_argument("--add", action="append", default=[], metavar="TAG", help="a tag to add (repeatable)")
    t.add_argument("--remove", action="append", default=[], metavar="TAG", help="a tag to remove (repeatable)")
    t.add_argument("--note", metavar="TEXT", help="the run's note (\"\" clears it)")
    r = add("rename", "set a run's name")
    r.add_argument("run", metavar="RUN")
    r.add_argument("name", metavar="NEWNAME")
    a = add("archive", "hide runs from the list (--undo shows them again)")
    a.add_argument("runs", nargs="+", metavar="RUN")
    a.add_argument("--undo", action="store_true", help="unarchive")
    d = add("delete", "move runs to the workspace's trash (never a running run)")
    d.add_argument("runs", nargs="+", metavar="RUN")
    d.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    pu = add("purge", "empty the trash for good")
    pu.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    e = add("export", "write runs' metrics as CSV or JSON")
    e.add_argument("runs", nargs="+", metavar="RUN")
    fmt = e.add_mutually_exclusive_group()
    fmt.add_argument("--csv", dest="fmt", action="store_const", const="csv", help="CSV (the default)")
    fmt.add_argument("--json", dest="fmt", action="store_const", const="json", help="JSON")
    e.add_argument("--metrics", metavar="REGEX", help="only metrics whose name matches (re.search)")
    e.add_argument("--layout", choices=("wide", "long"), default="wide",
                   help="wide: a row per run and step, a column per metric; long: a row per value")  # fmt: skip
    e.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    return p


def _is_sub(argv: Sequence[str]) -> bool:
    """The first word that is not an option names a subcommand (`runs tag ...`), or else it is
    the workspace of the list (`runs /path/ws`; a workspace folder called `tag`: `runs ./tag`)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg in SUBCOMMANDS
    return False


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    from trainledger.engines.workspace import InvalidId, NotAWorkspace

    try:
        if _is_sub(argv):
            args = sub_parser().parse_args(argv)
            return COMMANDS[args.sub](args)
        args = list_parser().parse_args(argv)
        return cmd_list(args)
    except (Refused, NotAWorkspace, InvalidId, NotADirectoryError, ValueError) as exc:
        _err(str(exc))
        return EXIT_USAGE


def _workspace(arg: str | None) -> Any:
    from trainledger.engines.workspace import resolve_workspace

    return resolve_workspace(arg, create_explicit=False, create_default=False)[0]


# ----------------------------------------------------------------------------- list
def list_rows(ws: Any, include_archived: bool = False) -> tuple[list[dict[str, Any]], int]:
    """`trainledger runs` rows, newest first, and how many archived runs were left out."""
    from trainledger.console.summary import run_rows
    from trainledger.engines.workspace import list_runs

    infos = {i.id: i for i in list_runs(ws, check_pid=False)}
    rows = []
    for row in run_rows(ws):
        info = infos.get(row["id"])
        row["name"] = info.name if info else None
        row["tags"] = list(info.tags) if info else []
        row["archived"] = bool(info and info.archived)
        row["note"] = info.note if info else ""
        started = info.started if info else None
        row["started"] = started if started is not None and math.isfinite(started) else None
        rows.append(row)
    rows.sort(key=lambda r: (r["started"] if r["started"] is not None else -math.inf, r["id"]), reverse=True)
    kept = [r for r in rows if include_archived or not r["archived"]]
    return kept, len(rows) - len(kept)


def _best(r: dict[str, Any]) -> str:
    if r["best"] is None:
        return ""
    at = f"epoch {r['best_epoch']:g}" if r["best_epoch"] is not None else f"step {r['best_step']:g}"
    return f"{r['best']:.4g} at {at}" + ("" if r["best_is_last"] else " (not the last)")


def table(rows: list[dict[str, Any]], header: bool) -> list[str]:
    """Aligned lines: a column is as wide as its widest cell, never cut (a long name makes the
    line long); control characters are made visible first; empty columns are left out."""
    from rich.cells import cell_len

    from trainledger.engines.metrics.series import MAX_METRICS
    from trainledger.engines.safetext import clean

    cols: list[tuple[str, list[str]]] = [
        ("RUN", [clean(r["name"] or r["id"]) for r in rows]),
        ("ID", [clean(r["id"]) if r["name"] and r["name"] != r["id"] else "" for r in rows]),
        ("STATUS", [clean(r["status"]) + (" (archived)" if r["archived"] else "") for r in rows]),
        ("MODEL", [clean(r["model"] or "") for r in rows]),
        ("ROWS", [f"{r['rows']} rows" for r in rows]),
        ("METRIC", [clean(r["metric"] or "") for r in rows]),
        ("LAST", [f"{r['last']:.4g}" if r["metric"] and r["last"] is not None else "" for r in rows]),
        ("BEST", [_best(r) if r["metric"] else "" for r in rows]),
        ("TAGS", [clean(",".join(r["tags"])) for r in rows]),
    ]
    cols = [c for i, c in enumerate(cols) if i < 1 or i == 2 or any(c[1])]  # RUN, STATUS always
    widths = [max([cell_len(h) if header else 0, *map(cell_len, cells)]) for h, cells in cols]
    lines = []

    def line(cells: list[str], tail: str = "") -> str:
        text = "  ".join(c + " " * (w - cell_len(c)) for c, w in zip(cells, widths))
        return (text + "  " + tail).rstrip() if tail else text.rstrip()  # the tail after every column

    if header:
        lines.append(line([h for h, _ in cols]))
    for i, r in enumerate(rows):
        tail = []
        if r["ignored_metrics"]:
            tail.append(f"(metric cap {MAX_METRICS:,} reached: {r['ignored_metrics']:,} names ignored)")
        if r["error"]:
            tail.append(f"[{clean(r['error'])}]")
        lines.append(line([cells[i] for _, cells in cols], "  ".join(tail)))
    return lines


def cmd_list(args: argparse.Namespace) -> int:
    import msgspec

    from trainledger.engines.safetext import clean

    if args.workspace and args.workspace_opt and args.workspace != args.workspace_opt:
        raise Refused(f"two workspaces given: {args.workspace} and --workspace {args.workspace_opt}")
    ws = _workspace(args.workspace or args.workspace_opt)
    rows, hidden = list_rows(ws, include_archived=args.all)
    if args.json:
        text = msgspec.json.format(msgspec.json.encode(rows), indent=2).decode()
        # msgspec escapes C0 controls; DEL and C1 (a raw CSI is 0x9b) are escaped here, so
        # the JSON is still exact and nothing in it is a terminal control.
        sys.stdout.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
        return EXIT_OK
    more = f" ({hidden} archived: --all shows them)" if hidden else ""
    if not rows:
        print(f"no runs in {clean(ws.runs_dir)}{more}")
        return EXIT_OK
    for text in table(rows, header=sys.stdout.isatty()):  # a header on a terminal; a pipe gets rows only
        print(text)
    if hidden and sys.stdout.isatty():
        print(f"{hidden} archived run(s) not shown: --all shows them")
    return EXIT_OK


# ----------------------------------------------------------------------------- tidying
def _resolve(ws: Any, names: Sequence[str]) -> list[Any]:
    """RunInfo of every RUN (an id or a unique name), in order, each once; Refused if any is
    unknown or ambiguous (nothing is changed then)."""
    from trainledger.engines.workspace import resolve_run

    out: dict[str, Any] = {}
    for name in names:
        info = resolve_run(ws, name)  # ValueError: unknown or ambiguous, listing the ids
        out.setdefault(info.id, info)
    return list(out.values())


def cmd_tag(args: argparse.Namespace) -> int:
    from trainledger.engines.runmeta import InvalidMeta, read_meta, validate_tag, write_meta

    ws = _workspace(args.workspace)
    infos = _resolve(ws, args.runs)
    try:
        add = [validate_tag(t) for t in args.add]
        remove = set(args.remove)
        for info in infos:
            if args.add or args.remove or args.note is not None:
                tags = [t for t in read_meta(info.path).tags if t not in remove]
                tags += [t for t in add if t not in tags]
                fields: dict[str, Any] = {"tags": tags}
                if args.note is not None:
                    fields["note"] = args.note
                write_meta(info.path, **fields)
            meta = read_meta(info.path)
            tags_text = ", ".join(meta.tags) if meta.tags else "(no tags)"
            _out(f"{info.id}: {tags_text}" + (f"\n  note: {meta.note}" if meta.note else ""))
    except InvalidMeta as exc:
        raise Refused(str(exc)) from None
    return EXIT_OK


def cmd_rename(args: argparse.Namespace) -> int:
    from trainledger.engines.runmeta import InvalidMeta, write_meta

    ws = _workspace(args.workspace)
    (info,) = _resolve(ws, [args.run])
    try:
        write_meta(info.path, name=args.name)
    except InvalidMeta as exc:
        raise Refused(str(exc)) from None
    _out(f"{info.id}: {info.name or '(no name)'} -> {args.name}")
    return EXIT_OK


def cmd_archive(args: argparse.Namespace) -> int:
    from trainledger.engines.runmeta import write_meta

    ws = _workspace(args.workspace)
    for info in _resolve(ws, args.runs):
        write_meta(info.path, archived=not args.undo)
        _out(f"{info.id}: {'unarchived' if args.undo else 'archived'}")
    return EXIT_OK


def _confirm(expected: str, prompt: str) -> bool:
    """Ask on the terminal for `expected` typed exactly; Refused without a terminal."""
    if not sys.stdin.isatty():
        raise Refused(f"{prompt}: not a terminal, nothing asked and nothing done; pass --yes to do it")
    print(f"{prompt}. Type {expected} to confirm: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip() == expected


def cmd_delete(args: argparse.Namespace) -> int:
    from trainledger.engines.trash import RunIsLive, delete_run, live_reason

    ws = _workspace(args.workspace)
    infos = _resolve(ws, args.runs)
    live = [why for info in infos if (why := live_reason(ws, info.id))]
    if live:  # nothing is deleted when one of them runs
        raise Refused("; ".join(live) + "; nothing deleted")
    if not args.yes:
        n = len(infos)
        what = f"run {infos[0].id}" if n == 1 else f"{n} runs ({', '.join(i.id for i in infos)})"
        expected = infos[0].id if n == 1 else f"delete {n} runs"
        if not _confirm(expected, f"delete {what} (moved to the workspace's trash)"):
            print("not deleted", file=sys.stderr)
            return EXIT_DECLINED
    for info in infos:
        try:
            dest = delete_run(ws, info.id)
        except RunIsLive as exc:  # it started since the check
            raise Refused(f"{exc}; not deleted") from None
        _out(f"{info.id}: moved to {dest}")
    _out("`trainledger runs purge` empties the trash")
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    from trainledger.engines.trash import list_trash, purge, trash_dir

    ws = _workspace(args.workspace)
    entries = list_trash(ws)
    if not entries:
        _out(f"the trash is empty ({trash_dir(ws)})")
        return EXIT_OK
    n = len(entries)
    if not args.yes and not _confirm(f"purge {n} runs", f"remove {n} run(s) in {trash_dir(ws)} for good"):
        print("not purged", file=sys.stderr)
        return EXIT_DECLINED
    _out(f"removed {purge(ws)} run(s) from the trash")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from trainledger.engines.metrics.export import export_runs
    from trainledger.engines.workspace import atomic_write_bytes

    ws = _workspace(args.workspace)
    ids = [info.id for info in _resolve(ws, args.runs)]
    text = export_runs(ws, ids, metrics_regex=args.metrics, fmt=args.fmt or "csv", layout=args.layout)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    out = Path(args.output).expanduser()
    if out.is_dir():
        raise Refused(f"-o {out}: is a folder; name a file")
    try:
        atomic_write_bytes(out, text.encode())
    except OSError as exc:
        raise Refused(f"-o {out}: {exc.strerror or exc}") from None
    print(f"wrote {len(ids)} run(s) to {os.fspath(out)}", file=sys.stderr)
    return EXIT_OK


COMMANDS = {"tag": cmd_tag, "rename": cmd_rename, "archive": cmd_archive, "delete": cmd_delete,
            "purge": cmd_purge, "export": cmd_export}  # fmt: skip
