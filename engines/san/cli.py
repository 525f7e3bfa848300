"""`trainledger san export|load|infer`: the SAN weights pair from the command line.

`load` answers as the app's loader does (the code is the last line printed; exit 0 only
for a positive count) so scripts and CI can check an artifact before it ships; `export`
turns a trained `san` run into the pair plus its report; `infer` runs the pair over
capture frames in numpy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_USAGE = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trainledger san", description="SAN weights: export, load, infer."
    )
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser(
        "export",
        help="export a trained san run to san_weights.bin + san_manifest.json + report",
    )
    e.add_argument(
        "run",
        metavar="RUN",
        help="a run id of the workspace, or a path to a run folder",
    )
    e.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the three files"
    )
    e.add_argument(
        "--workspace",
        metavar="DIR",
        help="workspace folder (default: as the console finds one)",
    )
    e.add_argument(
        "--checkpoint", default="best", choices=("best", "last"), help="default best"
    )
    ld = sub.add_parser(
        "load", help="load BIN and MANIFEST as the app does; the last line is the code"
    )
    ld.add_argument("bin", metavar="BIN")
    ld.add_argument("manifest", metavar="MANIFEST")
    i = sub.add_parser(
        "infer", help="predict each frame of a JSONL capture, one JSON line per frame"
    )
    i.add_argument("bin", metavar="BIN")
    i.add_argument("manifest", metavar="MANIFEST")
    i.add_argument("frames", metavar="FRAMES.jsonl")
    i.add_argument(
        "--mix",
        type=float,
        default=1.0,
        help="mixFactor: 0.0 the frame's own heads, 1.0 the model (default 1.0)",
    )
    i.add_argument("--limit", type=int, metavar="N", help="at most N frames")
    return p


def _read(path: str) -> bytes | None:
    """A file's bytes; a file that cannot be read is empty input (the loader's -1)."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _run_dir(run: str, workspace: str | None) -> Path:
    path = Path(run)
    if (path / "run.json").is_file():
        return path
    from trainledger.engines.workspace import resolve_workspace, validate_id

    validate_id(run, "run id")
    # reading a run: a mistyped workspace must not be created
    ws, _ = resolve_workspace(workspace, create_explicit=False, create_default=False)
    return ws.run_dir(run)


def cmd_export(args: argparse.Namespace) -> int:
    from trainledger.engines.san.export import export_run

    result = export_run(
        _run_dir(args.run, args.workspace), Path(args.out), args.checkpoint
    )
    print(
        f"weights  {result.bin_path}\nmanifest {result.manifest_path}\nreport   {result.report_path}"
    )
    print(f"load count {result.parameters}")
    return 0 if result.parameters > 0 else 1


def cmd_load(args: argparse.Namespace) -> int:
    from trainledger.engines.san.weights import describe, load_weights

    code = load_weights(_read(args.bin), _read(args.manifest))
    print(f"{args.bin} + {args.manifest}: {describe(code)}")
    print(code)
    return 0 if code > 0 else 1


def cmd_infer(args: argparse.Namespace) -> int:
    from trainledger.engines.capture.schema import FrameError, decode_frame, to_dict
    from trainledger.engines.san.infer import SANInference
    from trainledger.engines.san.weights import describe, load_tensors

    if not 0.0 <= args.mix <= 1.0:
        raise ValueError(f"--mix {args.mix}: expected 0.0 to 1.0")
    tensors = load_tensors(_read(args.bin), _read(args.manifest))
    if isinstance(tensors, int):
        print(f"{args.bin} + {args.manifest}: {describe(tensors)}", file=sys.stderr)
        return 1
    model = SANInference(tensors)
    done = 0
    with open(args.frames, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if args.limit is not None and done >= args.limit:
                break
            if not line.strip():
                continue
            try:
                frame = to_dict(decode_frame(line))
            except FrameError as exc:
                print(json.dumps({"line": number, "error": exc.reason}))
                continue
            out = model.predict_frame(frame, args.mix)
            print(
                json.dumps(
                    {"line": number, "frame": frame["frame"], "mix": args.mix, **out}
                )
            )
            done += 1
    return 0


def main(argv: list[str]) -> int:
    """Run one `trainledger san` command; the exit status (2 for a usage or input error)."""
    args = parser().parse_args(argv)
    from trainledger.engines.workspace import InvalidId, NotAWorkspace

    try:
        return {"export": cmd_export, "load": cmd_load, "infer": cmd_infer}[
            args.command
        ](args)
    except (ValueError, InvalidId, NotAWorkspace, OSError) as exc:
        print(f"trainledger san {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
