"""The client half of `trainledger capture`: `send` replays JSONL files, `stream` sends live
synthetic frames (what `trainledger demo` runs so the Capture pane has something to show).

The server's cli.py adds these parsers next to `serve` with add_send_parsers and hands the
parsed arguments to run_send; `python -m trainledger.engines.capture.cli_send` runs them alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from trainledger.engines.capture.client import (
    DEFAULT_URL,
    FileResult,
    SendError,
    SendResult,
    rejected_count,
    send_files,
    send_lines,
)

if TYPE_CHECKING:  # synth needs numpy: imported where frames are made, so that `capture serve`
    # (whose parser this module builds) never loads it; numpy in the server's process cost
    # about a fifth of its 1-frame request rate (docs/benchmarks.md)
    from trainledger.engines.capture.synth import FrameSynth

TOKEN_ENV = "TRAINLEDGER_CAPTURE_TOKEN"
EXIT_OK, EXIT_REJECTS, EXIT_ERROR = 0, 1, 2
REPORT_EVERY_S = 5.0


def add_send_parsers(sub: Any) -> None:
    """Add `send` and `stream` to a subparsers object made with dest="command"."""
    p = sub.add_parser("send", help="replay capture JSONL files to a server",
                       description="POST each file's frames to a capture server as one session.")  # fmt: skip
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="JSONL files, one schema-v2 frame a line",
    )
    _common(p)
    p.add_argument(
        "--session",
        help="session id for every file (default: each file's name without .jsonl)",
    )
    p.add_argument(
        "--rate",
        type=float,
        help="frames per second (default: as fast as the server answers)",
    )

    s = sub.add_parser("stream", help="send generated frames live (what the demo runs)",
                       description="Send synthetic schema-v2 frames at a steady rate until stopped.")  # fmt: skip
    _common(s)
    s.add_argument("--session", help="session id (default: demo-<yyyymmdd-HHMMSS>)")
    s.add_argument(
        "--rate", type=float, default=30.0, help="frames per second (default 30)"
    )
    s.add_argument(
        "--seconds",
        type=float,
        help="stop after this many seconds (default: run until stopped)",
    )
    s.add_argument("--bad-every", type=int, default=0, metavar="N",
                   help="make every Nth frame a broken line, so rejects show (default 0: never)")  # fmt: skip
    s.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic session (default 0)"
    )
    s.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the parent process goes away",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"server or endpoint URL (default {DEFAULT_URL})",
    )
    p.add_argument(
        "--batch", type=int, default=1, help="frames per request (default 1)"
    )
    p.add_argument("--token", help=f"bearer token (default: ${TOKEN_ENV})")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for an answer (default 10)",
    )


def run_send(args: argparse.Namespace) -> int | None:
    """Run `send` or `stream`; None when args.command is neither."""
    if args.command == "send":
        return _send(args)
    if args.command == "stream":
        return _stream(args)
    return None


def _token(args: argparse.Namespace) -> str | None:
    return args.token or os.environ.get(TOKEN_ENV) or None


def summary(name: str, session: str, r: SendResult) -> str:
    """One line: what was sent, what the server made of it, how fast."""
    line = (f"{name}: session {session}: {r.frames_sent} sent, {r.accepted} accepted, "
            f"{r.rejected + r.refused} rejected, {r.frames_per_s:.1f} frames/s")  # fmt: skip
    if r.reasons:
        line += " (" + "; ".join(f"{n}x {why}" for why, n in r.top_reasons(3)) + ")"
    return line


def exit_code(results: list[SendResult]) -> int:
    if any(r.request_failed for r in results):
        return EXIT_ERROR
    if any(r.rejected or r.refused for r in results):
        return EXIT_REJECTS
    return EXIT_OK


def _send(args: argparse.Namespace) -> int:
    def report(fr: FileResult) -> None:
        print(summary(str(fr.path), fr.session, fr.result), flush=True)

    try:
        results = send_files(args.files, args.url, args.session, batch=args.batch, rate_hz=args.rate,
                             token=_token(args), timeout=args.timeout, on_file=report)  # fmt: skip
    except SendError as exc:
        print(f"capture send: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for fr in results:
        if fr.result.first_error:
            print(f"{fr.path}: {fr.result.first_error}", file=sys.stderr)
    return exit_code([fr.result for fr in results])


def synth_lines(synth: FrameSynth, rate: float, seconds: float | None, bad_every: int,
                parent: int | None = None) -> Iterator[bytes]:  # fmt: skip
    """Frames for a live stream: `rate` a second of session time, stopping after `seconds` of
    frames or when `parent` (a pid) is no longer our parent."""
    from trainledger.engines.capture.synth import BAD_KINDS as bad_kinds

    limit = None if seconds is None else max(0, round(seconds * rate))
    i = 0
    while limit is None or i < limit:
        if parent is not None and os.getppid() != parent:
            return
        if bad_every > 0 and i % bad_every == bad_every - 1:
            yield synth.bad_frame(bad_kinds[(i // bad_every) % len(bad_kinds)])
        else:
            yield synth.frame_line(i / rate, i)
        i += 1


def _stream(args: argparse.Namespace) -> int:
    session = args.session or time.strftime("demo-%Y%m%d-%H%M%S")
    if args.rate <= 0:
        print("capture stream: --rate must be above 0", file=sys.stderr)
        return EXIT_ERROR
    parent = os.getppid() if args.exit_with_parent else None
    from trainledger.engines.capture.synth import FrameSynth

    lines = synth_lines(
        FrameSynth(args.seed, session), args.rate, args.seconds, args.bad_every, parent
    )
    totals = {"accepted": 0, "rejected": 0, "sent": 0}
    last = [time.monotonic()]

    def progress(status: int, body: dict[str, Any]) -> None:
        totals["accepted"] += int(body.get("accepted", 0) or 0)
        totals["rejected"] += rejected_count(body)
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S:
            last[0] = now
            print(f"stream {session}: {totals['accepted']} accepted, {totals['rejected']} rejected"
                  f" (last HTTP {status})", flush=True)  # fmt: skip

    print(
        f"streaming session {session} to {args.url} at {args.rate:g} frames/s",
        flush=True,
    )
    try:
        result = send_lines(args.url, session, lines, batch=args.batch, rate_hz=args.rate,
                            token=_token(args), timeout=args.timeout, on_response=progress)  # fmt: skip
    except SendError as exc:
        print(f"capture stream: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    print(summary("stream", session, result), flush=True)
    if result.first_error:
        print(f"stream: {result.first_error}", file=sys.stderr)
    return EXIT_ERROR if result.request_failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainledger.engines.capture.cli_send"
    )
    add_send_parsers(
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    )
    args = parser.parse_args(argv)
    code = run_send(args)
    return EXIT_ERROR if code is None else code


if __name__ == "__main__":
    sys.exit(main())
