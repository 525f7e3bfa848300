"""`trainledger capture ...`: serve in the foreground, show the recorded server, stop it.

The `send` subcommands come from `cli_send` (another module) when it is installed; this
CLI works without it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from trainledger.engines.capture.store import FSYNC_MODES
from trainledger.engines.safetext import clean
from trainledger.engines.workspace import InvalidId, NotAWorkspace, resolve_workspace

DEFAULT_PORT = 9471
TOKEN_ENV = "TRAINLEDGER_CAPTURE_TOKEN"


def _send_module() -> Any | None:
    try:
        from trainledger.engines.capture import cli_send
    except ImportError:
        return None
    return cli_send


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainledger capture",
        description="SAN capture: the ingest server and its sessions.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the ingest server in the foreground")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="0 picks a free port"
    )
    serve.add_argument("--workspace", default=None, help="workspace folder")
    serve.add_argument(
        "--token",
        default=None,
        help=f"bearer token every request must carry (or ${TOKEN_ENV})",
    )
    serve.add_argument("--fsync", choices=FSYNC_MODES, default="batch")
    serve.add_argument("--max-body", type=int, default=8 * 1024 * 1024, metavar="BYTES")
    serve.add_argument("--body-timeout", type=float, default=10.0, metavar="SECONDS")
    serve.add_argument("--exit-with-parent", action="store_true",
                       help="stop when the process that started this one exits (the demo uses it)")  # fmt: skip
    status = sub.add_parser("status", help="show the recorded server and its counters")
    status.add_argument("--workspace", default=None)
    status.add_argument("--token", default=None)
    stop = sub.add_parser("stop", help="stop the recorded background server")
    stop.add_argument("--workspace", default=None)
    stop.add_argument("--timeout", type=float, default=5.0)
    send = _send_module()
    if send is not None:
        send.add_send_parsers(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from trainledger.engines.capture.process import server_state
    from trainledger.engines.capture.server import run_server

    token = args.token or os.environ.get(TOKEN_ENV) or None
    ws, _origin = resolve_workspace(args.workspace)
    current = server_state(ws)
    if current is not None and current.alive and current.pid != os.getpid():
        print(f"a capture server already runs at {current.url} (pid {current.pid})",
              file=sys.stderr)  # fmt: skip
        return 2

    def ready(host: str, port: int) -> None:
        url_host = f"[{host}]" if ":" in host else host
        url = f"http://{url_host}:{port}"
        auth = ' -H "Authorization: Bearer $TOKEN"' if token else ""
        print(f"capture server listening on {url}  (pid {os.getpid()})")
        print(f"sessions folder: {ws.captures_dir}")
        print(f"fsync: {args.fsync}   token required: {'yes' if token else 'no'}")
        print(
            f"try: curl -s {url}/san-frame -H 'Content-Type: application/x-ndjson'"
            " -H 'X-MotionMix-SAN-Session: test' -H 'X-MotionMix-SAN-Schema: 2'"
            f" -H 'X-MotionMix-SAN-Dims: 128'{auth} --data-binary @frames.jsonl",
            flush=True,
        )

    try:
        run_server(
            args.host, args.port, ws, token, args.fsync, ready,
            max_body=args.max_body, body_timeout=args.body_timeout,
            exit_with_parent=args.exit_with_parent,
        )  # fmt: skip
    except ValueError as exc:
        print(f"trainledger capture serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"trainledger capture serve: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    from trainledger.engines.capture.live import fetch_stats
    from trainledger.engines.capture.process import server_state

    ws, _origin = resolve_workspace(args.workspace, create_explicit=False, create_default=False)
    state = server_state(ws)
    if state is None:
        print("no capture server recorded; start one with: trainledger capture serve")
        return 1
    if not state.alive:
        print(
            f"capture server at {state.url} (pid {state.pid}) is gone (stale state file)"
        )
        return 1
    uptime = time.time() - state.started_at
    print(f"capture server at {state.url}  pid {state.pid}  fsync {state.fsync}  "
          f"token {'required' if state.token_required else 'not required'}  "
          f"up {uptime:.0f} s")  # fmt: skip
    stats = fetch_stats(state.url, args.token or os.environ.get(TOKEN_ENV))
    if stats is None:
        print("stats: unavailable (wrong token, or the server does not answer)")
        return 0
    print(f"requests {stats.requests}  frames accepted {stats.frames_accepted}  "
          f"rejected {stats.frames_rejected}  bytes in {stats.bytes_in}")  # fmt: skip
    for sid, s in sorted(stats.sessions.items()):
        print(f"  {clean(sid)}: accepted {s.accepted} rejected {s.rejected}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from trainledger.engines.capture.process import CaptureServerError, stop_server

    ws, _origin = resolve_workspace(args.workspace, create_explicit=False, create_default=False)
    try:
        stopped = stop_server(ws, timeout=args.timeout)
    except CaptureServerError as exc:
        print(f"trainledger capture stop: {exc}", file=sys.stderr)
        return 1
    if stopped:
        print("capture server stopped")
        return 0
    print("no capture server was running")
    return 1


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    commands = {"serve": _serve, "status": _status, "stop": _stop}
    if args.command in commands:
        try:
            return commands[args.command](args)
        except (NotAWorkspace, NotADirectoryError, InvalidId) as exc:
            print(f"trainledger capture {args.command}: {exc}", file=sys.stderr)
            return 2
    send = _send_module()
    if send is not None:
        result = send.run_send(args)
        if result is not None:
            return result
    print(f"unknown capture command {args.command!r}", file=sys.stderr)
    return 2
