"""The `trainledger` command: open the console, run the demo, and script-friendly verbs.

Start-up time matters (the console must paint in under a second), so this module
imports nothing heavy at the top: Textual is imported only when a console opens,
and torch never in this process.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# provenance verbs: each an engine CLI with a parser of its own (report, check and reproduce may
# load torch in this process: they are never called from the console)
PROVENANCE = {
    "report": "trainledger.engines.provenance.report_cli",
    "verify": "trainledger.engines.provenance.verify_cli",
    "check": "trainledger.engines.checks.cli",
    "reproduce": "trainledger.engines.provenance.reproduce_cli",
}
COMMANDS = ("open", "demo", "init", "runs", "train", "import", "capture", "san", "registry", "serve", "ports",
            *PROVENANCE)  # fmt: skip

EPILOG = """\
commands:
  trainledger [WORKSPACE]          open the console on a workspace
  trainledger demo                 a live demo: trains a small VAE and opens the console
  trainledger init [DIR]           make DIR (default: the current folder) a workspace
  trainledger runs [WORKSPACE] [--json] [--all]
                                   list runs, newest first: name, status, best/last of the main metric, tags
  trainledger runs tag|rename|archive|delete RUN...
                                   tidy runs (a RUN is an id or a unique name); runs purge empties the trash
  trainledger runs export RUN... --csv|--json [--metrics REGEX] [--layout wide|long] [-o FILE]
                                   the runs' metrics for a spreadsheet or a script (trainledger runs --help)
  trainledger train MODEL [...]    train a model in the foreground (trainledger train --help)
  trainledger import tensorboard LOGDIR
                                   turn a TensorBoard logdir's scalars into read-only runs
  trainledger capture serve [...]  receive SAN frames on 127.0.0.1:9471 (trainledger capture --help)
  trainledger capture send FILE... replay capture JSONL files to a server
  trainledger san export RUN --out DIR
                                   write a trained san run as san_weights.bin + san_manifest.json
  trainledger san load BIN MANIFEST
                                   check a weights pair the way the app loads it (prints the code)
  trainledger registry deploy MODEL --run RUN
                                   register a run's best checkpoint as a new version (checked first)
  trainledger registry canary|promote|abort|rollback MODEL ...
                                   move what is live; list, show, history, verify, export read it
                                   (trainledger registry --help)
  trainledger serve --model MODEL --port PORT
                                   serve a registry model's active version and canary on a port
  trainledger ports up|down|status|list [PORT...]
                                   start, drain and stop, or probe the ports ports.toml lists
  trainledger report RUN|MODEL@VERSION [--format text|json|md]
                                   a training report: every claim with its file and sha256
  trainledger verify RUN|MODEL@VERSION... [--claims FILE]
                                   re-derive every claim: exit 1 if any is stale or contradicted
  trainledger check RUN|MODEL@VERSION [--only NAME] [--json]
                                   the checks (outputs vary, load count, fields kept, data, ...)
  trainledger reproduce RUN [--epochs N]
                                   re-run a run's training and compare its metrics step by step

The workspace is the argument, else $TRAINLEDGER_WORKSPACE, else the current folder if it
holds a .trainledger-workspace marker, else a default workspace in your user data folder.
"""


def _parser() -> argparse.ArgumentParser:
    from trainledger import __version__

    parser = argparse.ArgumentParser(
        prog="trainledger",
        description="Watch and govern model training from the terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"trainledger {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    theme_help = (
        "theme: trainledger-dark, -light, -high-contrast or -mono (NO_COLOR picks mono)"
    )
    p_open = sub.add_parser("open", help="open the console on a workspace")
    p_open.add_argument("workspace", nargs="?", help="workspace folder")
    p_open.add_argument("--theme", help=theme_help)
    p_open.add_argument(
        "--no-watch", action="store_true", help="do not watch for changes"
    )
    readonly_help = "read-only: every key that changes something (promote, rollback, ...) is hidden and refused"
    p_open.add_argument("--readonly", action="store_true", help=readonly_help)

    p_demo = sub.add_parser(
        "demo", help="start a demo training run and open the console on it"
    )
    p_demo.add_argument(
        "--workspace", help="demo workspace (default: one in your user data folder)"
    )
    p_demo.add_argument("--theme", help=theme_help)
    p_demo.add_argument("--readonly", action="store_true", help=readonly_help)
    p_demo.add_argument(
        "--headless-seconds",
        type=float,
        metavar="N",
        help="no terminal: run the console headless for N seconds, print a summary, stop everything",
    )

    p_init = sub.add_parser("init", help="create a workspace")
    p_init.add_argument("dir", nargs="?", default=".", help="folder (default: current)")

    # Only listed here: `runs` and its subcommands have a parser of their own (console/cli_runs.py).
    sub.add_parser("runs", help="list, tag, rename, archive, delete and export runs (see trainledger runs --help)",
                   add_help=False)  # fmt: skip

    p_import = sub.add_parser(
        "import", help="import other tools' logs as read-only runs"
    )
    p_import.add_argument(
        "source", choices=["tensorboard"], help="log format (tensorboard)"
    )
    p_import.add_argument(
        "logdir",
        help="TensorBoard logdir (every folder with events.out.tfevents.* is a run)",
    )
    p_import.add_argument(
        "--workspace", help="workspace folder (default: as for `trainledger open`)"
    )
    p_import.add_argument(
        "--prefix", default="tb-", help="run id prefix (default: tb-)"
    )

    # Only listed here: `train` is handed to the engine's own parser before parsing (see main).
    sub.add_parser(
        "train",
        help="train a model in the foreground (see trainledger train --help)",
        add_help=False,
    )
    sub.add_parser(
        "capture",
        help="the SAN capture server and client (see trainledger capture --help)",
        add_help=False,
    )
    sub.add_parser(
        "san",
        help="SAN weights: export, load, infer (see trainledger san --help)",
        add_help=False,
    )
    sub.add_parser(
        "registry",
        help="the model registry: deploy, canary, promote, rollback, history (see trainledger registry --help)",
        add_help=False,
    )
    for verb, text in (
        ("report", "a training report whose every claim names its file (see trainledger report --help)"),
        ("verify", "re-derive a report's or a claims file's claims; exit 1 if stale or contradicted"),
        ("check", "the file and model checks of a run or version (see trainledger check --help)"),
        ("reproduce", "re-run a run's training and compare the metrics step by step"),
    ):
        sub.add_parser(verb, help=text, add_help=False)
    sub.add_parser("serve", help="serve a registry model on a port (see trainledger serve --help)", add_help=False)
    sub.add_parser("ports", help="the ports in ports.toml: up, down, status, list (see trainledger ports --help)",
                   add_help=False)  # fmt: skip
    return parser


def _normalise(argv: Sequence[str]) -> list[str]:
    """`trainledger [WORKSPACE] [--theme T]` is `trainledger open [WORKSPACE] [--theme T]`."""
    args = list(argv)
    if args and (args[0] in COMMANDS or args[0] in ("-h", "--help", "--version")):
        return args
    return ["open", *args]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if (
        argv and argv[0] == "train"
    ):  # this process becomes the trainer: torch is allowed here
        from trainledger.engines.training.cli import main as train_main

        return train_main(argv[1:])
    if argv and argv[0] in ("capture", "san", "registry"):  # engine CLIs with parsers of their own
        from importlib import import_module

        return int(
            import_module(f"trainledger.engines.{argv[0]}.cli").main(argv[1:]) or 0
        )
    if argv and argv[0] in PROVENANCE:
        from importlib import import_module

        return int(import_module(PROVENANCE[argv[0]]).main(argv[1:]) or 0)
    if argv and argv[0] == "runs":  # `runs [WORKSPACE]` and `runs tag|rename|...`: a parser of its own
        from trainledger.console.cli_runs import main as runs_main

        return runs_main(argv[1:])
    if argv and argv[0] in ("serve", "ports"):  # one engine CLI for both verbs: it parses them itself
        from trainledger.engines.serving.cli import main as serving_main

        return int(serving_main(argv) or 0)
    args = _parser().parse_args(_normalise(argv))
    from trainledger.engines.workspace import InvalidId, NotAWorkspace

    try:
        if args.command == "init":
            return _cmd_init(args)
        if args.command == "import":
            return _cmd_import(args)
        if args.command == "demo":
            return _cmd_demo(args)
        return _cmd_open(args)
    except (NotAWorkspace, InvalidId, NotADirectoryError, ValueError) as exc:
        print(f"trainledger: {exc}", file=sys.stderr)
        return 2


def _cmd_init(args: argparse.Namespace) -> int:
    from trainledger.engines.workspace import init_workspace, is_workspace

    existed = is_workspace(Path(args.dir))
    ws = init_workspace(args.dir)
    print(f"{'workspace already here' if existed else 'created workspace'}: {ws.root}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from trainledger.engines.interop.tensorboard import (
        TensorBoardImportError,
        import_logdir,
    )
    from trainledger.engines.workspace import resolve_workspace

    ws, _ = resolve_workspace(args.workspace)
    try:
        results = import_logdir(Path(args.logdir), ws, prefix=args.prefix)
    except TensorBoardImportError as exc:
        print(f"trainledger: {exc}", file=sys.stderr)
        return 2
    for r in results:
        detail = f" ({r.message})" if r.message else ""
        print(f"{r.status:<9} {r.run_id}  <- {r.tb_run}{detail}")
        if r.skipped_tags:
            print(
                f"          skipped non-scalar tensor tags: {', '.join(r.skipped_tags)}"
            )
    conflicts = sum(r.status == "conflict" for r in results)
    print(f"{len(results)} run(s) from {args.logdir} into {ws.root}")
    return 1 if conflicts else 0


def _cmd_open(args: argparse.Namespace) -> int:
    from trainledger.engines.workspace import resolve_workspace
    from trainledger.themes import choose_theme

    choose_theme(
        args.theme, os.environ
    )  # a bad name fails before any folder is created

    # Only the default workspace is made on first use; a named folder must be one already.
    ws, origin = resolve_workspace(args.workspace, create_explicit=False)
    from trainledger.console.prefetch import Prefetch

    prefetch = Prefetch(ws).start()  # reads while Textual imports and starts
    from trainledger.console.app import TrainledgerApp

    app = TrainledgerApp(
        ws, theme=args.theme, watch=not args.no_watch, origin=origin, prefetch=prefetch, readonly=args.readonly
    )
    app.run()
    return _exit_status(app)


def _cmd_demo(args: argparse.Namespace) -> int:
    from trainledger.engines.demo import DemoProcesses, prepare_demo_workspace
    from trainledger.themes import choose_theme

    choose_theme(args.theme, os.environ)

    ws = prepare_demo_workspace(Path(args.workspace) if args.workspace else None)
    procs = DemoProcesses(ws)
    capture = _DemoCapture(procs)
    report: list[str] = []  # headless: printed once the processes are stopped
    trainer = None
    try:
        trainer = procs.start_trainer()
        capture.start()  # in the background: the console paints meanwhile
        taken: list[str] = []
        if args.headless_seconds is None:
            from trainledger.engines.serving.demo import taken_ports  # sockets only: no torch here

            taken = taken_ports()
            procs.start_serving()  # trains, registers and serves seed 003's six ports (a child process)
        from trainledger.console.app import TrainledgerApp

        app = TrainledgerApp(ws, theme=args.theme, origin="demo", demo=procs, readonly=args.readonly)
        app.startup_notes = taken
        if args.headless_seconds is not None:
            app.exit_after = args.headless_seconds
            app.run(headless=True, size=(120, 40))
            report.append(app.summary)
            return _exit_status(app)
        app.run()
        return _exit_status(app)
    finally:
        capture.join()  # so stop_all() sees a server that was still starting
        procs.stop_all()
        if report and trainer is not None:  # this demo's run, with the status it ended in
            from trainledger.engines.demo import demo_report

            print(f"workspace: {ws.root}")
            print(report[0])  # what the console saw
            print(demo_report(ws, procs.run_id(trainer), trainer.pid, procs.log_path(trainer)))
        if capture.error:
            print(f"trainledger demo: capture was off: {capture.error}", file=sys.stderr)


def _exit_status(app: object) -> int:
    """0 after `q`; Textual's non-zero code (1) when the console died of an exception."""
    code = getattr(app, "return_code", None)
    return int(code) if code else 0


class _DemoCapture:
    """Start the demo's capture server (a free port) and its sender on a thread.

    Starting waits for the server to answer (about half a second), which would delay the
    console's first paint. The console works without them: the Capture pane shows the server
    as stopped with the command to start it, and the error is printed once the console exits.
    """

    def __init__(self, procs: object) -> None:
        import threading

        self.procs = procs
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="demo-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join(timeout=20)

    def _run(self) -> None:
        from trainledger.engines.capture.process import CaptureServerError

        try:
            self.procs.start_capture()  # type: ignore[attr-defined]
        except CaptureServerError as exc:
            self.error = str(exc)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
