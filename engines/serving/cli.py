"""`trainledger serve ...` and `trainledger ports up|down|status|list`: port servers from the command line.

`serve` runs one port server in the foreground (recorded in the workspace, so `ports status`
and the Ports pane show it); `ports` starts and stops the servers ports.toml lists, in the
background, and says how they are. Exit status: 0 done, 1 refused (the reason on stderr),
2 bad usage (argparse, a bad ports.toml, a bad --fault, a host beyond loopback without a token
of 16 characters or more). Start-up is light: torch and the server load only in `serve`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from trainledger.engines.safetext import clean, clean_lines

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
TOKEN_ENV = "TRAINLEDGER_SERVE_TOKEN"


class UsageError(ValueError):
    """Bad usage found after parsing: exit 2 with the message."""


def _threads(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a thread count from 1 to 256")
    return int(text)


def _bake(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text!r}: the bake is 0 to 86400 seconds")
    return value


def _port(text: str) -> int:
    if not text.strip().isdigit() or not 0 < int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")
    return int(text)


def _dim(text: str) -> int:
    if not text.strip().isdigit() or not 0 < int(text) <= 1 << 16:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 65536")
    return int(text)


def _fault(text: str) -> str:
    from trainledger.engines.serving.faults import parse_fault

    try:
        parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainledger", description="Port servers for registry versions.",
                                epilog="exit status: 0 done, 1 refused (the reason is on stderr), 2 bad usage or input")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ws_help = "workspace folder (default: as the console finds one)"

    s = sub.add_parser("serve", help="serve a registry model (or the passthrough) on a port, in the foreground",
                       description="Serve MODEL's active version (and its canary for the canary's share) on PORT "
                                   "until SIGTERM or Ctrl-C; the server records itself in the workspace.")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", metavar="MODEL", help="a registry model name")
    what.add_argument("--passthrough", action="store_true", help="no model: the last context vector back (a baseline)")
    s.add_argument("--dim", type=_dim, metavar="D", help="with --passthrough: the vector size it checks")
    s.add_argument("--port", type=_port, required=True, metavar="PORT")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; beyond loopback "
                                                       "a token of 16+ characters is required)")
    s.add_argument("--workspace", metavar="DIR", help=ws_help)
    s.add_argument("--token", default=None, help=f"bearer token every request must carry (or ${TOKEN_ENV})")
    s.add_argument("--fault", type=_fault, action="append", default=[], metavar="V:error=F,latency_ms=MS",
                   help="testing aid: make version V fail with probability F and answer MS later (repeatable)")
    s.add_argument("--threads", type=_threads, default=1, metavar="N",
                   help="torch threads per forward pass (default 1: several ports share the cores; "
                        "raise it for a large model alone on the machine)")
    s.add_argument("--bake", type=_bake, default=600.0, metavar="SECONDS",
                   help="how long a newly promoted version is watched and rolled back on a failed window (600)")
    s.add_argument("--log", metavar="FILE", help=argparse.SUPPRESS)  # set by `ports up`: recorded for status
    s.add_argument("--exit-with-parent", action="store_true",
                   help="stop when the process that started this one exits (the demo and `ports up` from tests)")

    ports = sub.add_parser("ports", help="the ports in ports.toml: up, down, status, list",
                           description="Start, stop and probe the port servers ports.toml lists.")
    psub = ports.add_subparsers(dest="action", required=True, metavar="ACTION")
    u = psub.add_parser("up", help="start a server for each port (or those named) in the background")
    u.add_argument("ports", nargs="*", type=_port, metavar="PORT")
    u.add_argument("--timeout", type=float, default=30.0, metavar="S", help="how long each may take to answer")
    d = psub.add_parser("down", help="drain and stop each port's server (or those named, configured or not)")
    d.add_argument("ports", nargs="*", type=_port, metavar="PORT")
    d.add_argument("--timeout", type=float, default=10.0, metavar="S", help="drain time before SIGKILL")
    st = psub.add_parser("status", help="probe every configured or recorded port")
    st.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    ls = psub.add_parser("list", help="what ports.toml says")
    ls.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    for c in (u, d, st, ls):
        c.add_argument("--workspace", metavar="DIR", help=ws_help)
    return p


def say(*parts: object) -> None:
    print(clean(" ".join(str(p) for p in parts)))


def emit(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=True, sort_keys=True, default=str))


def _workspace(args: argparse.Namespace, create: bool = False) -> Any:
    from trainledger.engines.workspace import resolve_workspace

    ws, _ = resolve_workspace(args.workspace, create_explicit=create, create_default=create)
    return ws


# --------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from trainledger.engines.capture.server import check_token
    from trainledger.engines.serving.faults import parse_fault
    from trainledger.engines.serving.portsfile import check_host, check_model

    if args.dim is not None and not args.passthrough:
        raise UsageError("--dim goes with --passthrough (a model's size comes from the model)")
    try:
        model = None if args.passthrough else check_model(args.model)
        host = check_host(args.host)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    faults = dict(parse_fault(text) for text in args.fault)
    if len(faults) != len(args.fault):
        raise UsageError("two --fault for one version")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        check_token(host, token)
    except ValueError as exc:
        raise UsageError(str(exc).replace("TRAINLEDGER_CAPTURE_TOKEN", TOKEN_ENV)) from None
    ws = _workspace(args, create=True)  # a server writes (its record, its log): like `capture serve`
    from trainledger.engines.serving.process import record_of

    current = record_of(ws, args.port)
    if current is not None and current.alive and current.pid != os.getpid():
        print(f"trainledger serve: port {args.port} is already served by pid {current.pid} at {clean(current.url)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_REFUSED
    from trainledger.engines.serving.server import run_server  # torch and aiohttp: only here

    def ready(bound: str, port: int) -> None:
        url_host = f"[{bound}]" if ":" in bound else bound
        auth = ' -H "Authorization: Bearer $TRAINLEDGER_SERVE_TOKEN"' if token else ""
        say(f"serving {model or 'the passthrough'} on http://{url_host}:{port}  (pid {os.getpid()}, "
            f"workspace {ws.root})")  # fmt: skip
        say(f"try: curl -s http://{url_host}:{port}/health{auth}")
        sys.stdout.flush()

    try:
        run_server(ws, model=model, port=args.port, host=host, token=token, faults=faults or None,
                   passthrough_dim=args.dim, exit_with_parent=args.exit_with_parent, ready=ready,
                   log=args.log, threads=args.threads, bake_s=args.bake)  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        print(f"trainledger serve: cannot listen on {clean(host)}:{args.port}: {clean(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


# --------------------------------------------------------------------------- ports


def _print_outcomes(outcomes: Sequence[Any], empty: str) -> int:
    if not outcomes:
        say(empty)
        return EXIT_OK
    for o in outcomes:
        print(clean_lines(o.message), file=sys.stdout if o.ok else sys.stderr)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_REFUSED


def _check_tokens(ws: Any, ports: Sequence[int] | None) -> None:
    """Bad usage before anything starts: a port beyond loopback without a good token."""
    from trainledger.engines.serving.portsfile import read_ports
    from trainledger.engines.serving.process import check_spec_token

    token = os.environ.get(TOKEN_ENV) or None
    for spec in read_ports(ws):
        if ports is None or spec.port in ports:
            try:
                check_spec_token(spec, token)
            except ValueError as exc:
                raise UsageError(str(exc)) from None


def cmd_up(args: argparse.Namespace) -> int:
    from trainledger.engines.serving.process import up

    ws = _workspace(args)
    ports = args.ports or None
    _check_tokens(ws, ports)
    return _print_outcomes(up(ws, ports, timeout=args.timeout), f"no ports in {ws.ports_file}: nothing to start")


def cmd_down(args: argparse.Namespace) -> int:
    from trainledger.engines.serving.process import down

    ws = _workspace(args)
    return _print_outcomes(down(ws, args.ports or None, timeout=args.timeout),
                           f"no ports in {ws.ports_file}: nothing to stop (name a port to stop one)")  # fmt: skip


def cmd_list(args: argparse.Namespace) -> int:
    from trainledger.engines.serving.portsfile import read_ports

    ws = _workspace(args)
    specs = read_ports(ws)
    if args.json:
        emit({"file": str(ws.ports_file), "ports": [s.to_json() for s in specs]})
        return EXIT_OK
    if not specs:
        say(f"no ports in {ws.ports_file}")
    for s in specs:
        extra = f"  faults {', '.join(s.faults)}" if s.faults else ""
        say(f"{s.port:<6} {s.describe():<24} {s.host}{extra}")
    return EXIT_OK


def fallback_status(ws: Any, timeout: float = 0.5) -> list[dict[str, Any]]:
    """Each configured or recorded port: recorded and alive, and whether /health answers 200."""
    from concurrent.futures import ThreadPoolExecutor

    from trainledger.engines.serving import records
    from trainledger.engines.serving.portsfile import read_ports
    from trainledger.engines.serving.process import health

    specs = {s.port: s for s in read_ports(ws)}
    recs = {r.port: r for r in records.read_records(ws)}
    token = os.environ.get(TOKEN_ENV) or None
    ports = sorted(set(specs) | set(recs))

    def row(port: int) -> dict[str, Any]:
        spec, rec = specs.get(port), recs.get(port)
        host = rec.host if rec else spec.host if spec else "127.0.0.1"
        url_host = f"[{host}]" if ":" in host else host
        out: dict[str, Any] = {
            "port": port, "host": host, "url": rec.url if rec else f"http://{url_host}:{port}",
            "model": rec.model if rec else spec.model if spec else None,
            "kind": rec.kind if rec else ("passthrough" if spec and spec.passthrough else None),
            "configured": spec is not None, "pid": rec.pid if rec and rec.alive else None,
            "log": rec.log if rec else None, "uptime_s": None,
        }  # fmt: skip
        if rec is None or not rec.alive:
            out["state"] = "stopped" if spec is not None else "down"
            out["detail"] = "not running" if rec is None else f"recorded pid {rec.pid} is gone (stale record)"
            return out
        t0 = time.monotonic()
        code = health(rec.url, token, timeout)
        ms = (time.monotonic() - t0) * 1000
        out["uptime_s"] = round(time.time() - rec.started_at, 1)
        if code == 200:
            out["state"], out["detail"] = "up", f"/health 200 in {ms:.1f} ms"
        elif code is None:
            out["state"], out["detail"] = "hung", f"no answer from /health within {timeout:g} s"
        else:
            out["state"], out["detail"] = "garbage", f"/health answered HTTP {code}"
        return out

    if not ports:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(ports))) as pool:
        return list(pool.map(row, ports))


def _probe_rows(ws: Any) -> list[dict[str, Any]]:
    """The prober's rows (engines/serving/prober.py); records and a /health GET where it is missing or fails."""
    try:
        from trainledger.engines.serving.prober import probe_once
    except ImportError:
        return fallback_status(ws)
    from dataclasses import asdict

    try:
        return [asdict(v) for v in probe_once(ws, token=os.environ.get(TOKEN_ENV) or None)]
    except Exception as exc:  # noqa: BLE001 - a status that cannot probe still says what is recorded
        print(f"trainledger ports status: the prober failed ({type(exc).__name__}: {clean(exc)}); "
              "showing records and /health only", file=sys.stderr)  # fmt: skip
        return fallback_status(ws)


def cmd_status(args: argparse.Namespace) -> int:
    from trainledger.engines.serving.portsfile import read_ports

    ws = _workspace(args)
    read_ports(ws)  # a bad ports.toml is bad usage, said first
    rows = _probe_rows(ws)
    if args.json:
        emit({"ports": rows})
        return EXIT_OK
    if not rows:
        say(f"no ports configured in {ws.ports_file} and none recorded")
        return EXIT_OK
    say(f"{'PORT':<6} {'STATE':<8} {'MODEL':<18} {'PID':<8} {'ACTIVE':<12} {'CANARY':<10} {'P50':>8}  DETAIL")
    for r in rows:
        model = r.get("model") or ("passthrough" if r.get("kind") == "passthrough" else "-")
        canary = f"{r['canary']} {r.get('traffic') or 0}%" if r.get("canary") else "-"
        p50 = r.get("p50_ms") if r.get("p50_ms") is not None else r.get("probe_p50_ms")
        p50_text = f"{p50:.1f}ms" if isinstance(p50, int | float) else "-"
        conf = "" if r.get("configured") else " (not in ports.toml)"
        say(f"{r['port']:<6} {r.get('state', '?'):<8} {model:<18} {r.get('pid') or '-'!s:<8} "
            f"{r.get('active') or '-'!s:<12} {canary:<10} {p50_text:>8}  {r.get('detail', '')}{conf}")  # fmt: skip
    return EXIT_OK


# --------------------------------------------------------------------------- dispatch


def main(argv: Sequence[str] | None = None) -> int:
    """Run `serve ...` or `ports ACTION ...` and return the exit status (0, 1 or 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from trainledger.engines.serving.portsfile import PortsFileError
    from trainledger.engines.serving.process import PortsError
    from trainledger.engines.workspace import InvalidId, NotAWorkspace

    prog = "trainledger serve" if args.command == "serve" else f"trainledger ports {args.action}"
    commands = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "list": cmd_list}
    try:
        return int(cmd_serve(args) if args.command == "serve" else commands[args.action](args))
    except (UsageError, PortsFileError, InvalidId, NotAWorkspace, NotADirectoryError) as exc:
        print(f"{prog}: {clean_lines(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (PortsError, OSError) as exc:
        print(f"{prog}: {clean_lines(exc)}", file=sys.stderr)
        return EXIT_REFUSED
