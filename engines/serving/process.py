"""Port servers as background processes: `trainledger ports up` / `ports down`, and the pane's keys.

Each port runs `python -m trainledger.engines.serving serve ...` in a process of its own,
started through engines/procs.launch with its output appended to
`.trainledger/logs/port-<port>.log`. The server records itself (records.py) once it listens;
`start_port` returns once that record names the child's pid and GET /health answers 200.
A token travels in $TRAINLEDGER_SERVE_TOKEN, never on the command line (where `ps` shows it).

Stopping sends SIGTERM (the server drains in-flight requests, removes its record and exits)
and SIGKILL at the deadline, and only to a process that is the recorded one (pid, start time,
command line) and whose command line is a port server's for that port: a stale or forged
record is never acted on beyond removing a stale file.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from trainledger.engines.procs import Expect, Launched, StopResult, launch, stop, why_not_same
from trainledger.engines.serving import records
from trainledger.engines.serving.portsfile import PortSpec, read_ports
from trainledger.engines.serving.records import PortRecord
from trainledger.engines.workspace import Workspace

TOKEN_ENV = "TRAINLEDGER_SERVE_TOKEN"
MODULE = "trainledger.engines.serving"
HEALTH_TIMEOUT_S = 0.5


class PortsError(RuntimeError):
    """A port could not be started or stopped (or is refused); the message says why."""


@dataclass(frozen=True)
class Outcome:
    """What `up` or `down` did for one port."""

    port: int
    ok: bool
    message: str
    record: PortRecord | None = None


# --------------------------------------------------------------------------- recognising


def _port_arg(args: Sequence[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--port" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--port="):
            return arg.partition("=")[2]
    return None


def serves_port(cmdline: Sequence[str], port: int | None = None) -> bool:
    """`python -m trainledger.engines.serving serve ... --port P` or `trainledger serve ... --port P`."""
    args = [os.path.basename(a) for a in cmdline]
    ours = MODULE in args and "serve" in args[args.index(MODULE) :]
    ours = ours or any(a == "trainledger" and args[i + 1 : i + 2] == ["serve"] for i, a in enumerate(args))
    return ours and (port is None or _port_arg(list(cmdline)) == str(port))


def server_expect(port: int) -> Expect:
    return Expect(f"a port server's for port {port}", lambda cmdline: serves_port(cmdline, port))


def why_not_ours(rec: PortRecord) -> str | None:
    """None if `rec` names a live port server of its port, else why not (then it is never signalled)."""
    launched = Launched(rec.pid, rec.started_at, rec.argv)
    if not rec.argv:
        return "the record has no command line"
    why = why_not_same(launched)  # the pid runs, started by then, with the recorded command line
    if why is None:
        why = why_not_same(launched, server_expect(rec.port))  # and that command line is a port server's
    return why


def record_of(ws: Workspace, port: int) -> PortRecord | None:
    for rec in records.read_records(ws):
        if rec.port == port:
            return rec
    return None


# --------------------------------------------------------------------------- starting


def health(url: str, token: str | None = None, timeout: float = HEALTH_TIMEOUT_S) -> int | None:
    """The HTTP status of GET url/health (None: no answer within `timeout`)."""
    import urllib.error
    import urllib.request  # lazily: the console imports this module's users at start

    req = urllib.request.Request(f"{url}/health", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(1 << 20)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"


def serve_argv(ws: Workspace, spec: PortSpec) -> list[str]:
    """The command line of the server for `spec` (no token: that goes in the environment)."""
    argv = [sys.executable, "-m", MODULE, "serve", "--workspace", str(ws.root), "--port", str(spec.port),
            "--host", spec.host, "--log", str(records.log_path(ws, spec.port))]  # fmt: skip
    if spec.passthrough:
        argv.append("--passthrough")
        if spec.dim is not None:
            argv += ["--dim", str(spec.dim)]
    else:
        argv += ["--model", str(spec.model)]
    for fault in spec.faults:
        argv += ["--fault", fault]
    return argv


def check_spec_token(spec: PortSpec, token: str | None) -> None:
    """ValueError when `spec`'s host is beyond loopback and `token` is missing or short."""
    from trainledger.engines.capture.server import check_token

    try:
        check_token(spec.host, token)
    except ValueError as exc:  # its text names the capture server's variable: say ours
        raise ValueError(f"port {spec.port}: {exc}".replace("TRAINLEDGER_CAPTURE_TOKEN", TOKEN_ENV)) from None


def start_port(ws: Workspace, spec: PortSpec, *, exit_with_parent: bool = False, timeout: float = 20.0,
               token: str | None = None) -> PortRecord:  # fmt: skip
    """Start the server for `spec` in the background; return its record once /health answers 200.

    `token` defaults to $TRAINLEDGER_SERVE_TOKEN. Refused (PortsError) when a live recorded
    server already has the port; PortsError with the log's tail when the server exits first
    or does not answer within `timeout` (it is then stopped). With `exit_with_parent` the
    server stops when this process exits, even by SIGKILL (the demo, tests).
    """
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    try:
        check_spec_token(spec, token)
    except ValueError as exc:
        raise PortsError(str(exc)) from None
    current = record_of(ws, spec.port)
    if current is not None and current.alive:
        raise PortsError(f"port {spec.port} is already served by pid {current.pid} at {current.url} "
                         f"({current.model or 'passthrough'}); stop it first: trainledger ports down {spec.port}")
    log = records.log_path(ws, spec.port)
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if token:
        env[TOKEN_ENV] = token
    child = launch(serve_argv(ws, spec), log, env=env, exit_with_parent=exit_with_parent, cwd=ws.root)
    proc = child.proc
    assert proc is not None
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise PortsError(f"the server for port {spec.port} exited with code {code}; the end of {log}:\n"
                             f"{log_tail(log)}")  # fmt: skip
        rec = record_of(ws, spec.port)
        if rec is not None and rec.pid == proc.pid and health(rec.url, token) == 200:
            return rec
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    stop(child, 2.0)
    raise PortsError(f"the server for port {spec.port} did not answer /health within {timeout:g} s "
                     f"(stopped it); the end of {log}:\n{log_tail(log)}")  # fmt: skip


# --------------------------------------------------------------------------- stopping


def _remove_stale(ws: Workspace, rec: PortRecord) -> None:
    """Remove `rec`'s file if it still names the same (gone) process: a newer server's stays."""
    again = record_of(ws, rec.port)
    if again is not None and again.pid == rec.pid and again.started_at == rec.started_at and not again.alive:
        records.record_path(ws, rec.port).unlink(missing_ok=True)


def stop_port(ws: Workspace, port: int, timeout: float = 10.0) -> str:
    """Drain and stop the recorded server of `port`; what happened, in a line.

    SIGTERM, then SIGKILL if it is still there after `timeout` seconds. A record whose process
    is gone is removed ("not running"); one naming a live process that is not this port's
    server (a reused pid, a forged file) is refused with PortsError and nothing is signalled.
    """
    rec = record_of(ws, port)
    if rec is None:
        return f"port {port}: not running"
    why = why_not_ours(rec)
    if why is not None:
        from trainledger.engines.pids import pid_alive

        if not rec.alive and not pid_alive(rec.pid, rec.started_at):
            _remove_stale(ws, rec)
            return f"port {port}: not running (removed the stale record of pid {rec.pid})"
        raise PortsError(f"port {port}: not stopping pid {rec.pid}: {why}; {records.record_path(ws, port)} "
                         "names it but is stale or was not written by a port server "
                         "(remove the file if no server runs)")  # fmt: skip
    launched = Launched(rec.pid, rec.started_at, rec.argv)
    result = stop(launched, timeout, expect=server_expect(port))
    if result is StopResult.GONE:
        _remove_stale(ws, rec)
        return f"port {port}: not running (pid {rec.pid} had exited)"
    if result is StopResult.KILLED:
        _remove_stale(ws, rec)  # SIGKILL left its record behind
        return f"port {port}: killed pid {rec.pid} (it did not drain within {timeout:g} s)"
    _remove_stale(ws, rec)
    return f"port {port}: stopped pid {rec.pid} (drained)"


# --------------------------------------------------------------------------- many ports


def _select(specs: Sequence[PortSpec], ports: Iterable[int] | None) -> list[PortSpec]:
    if ports is None:
        return list(specs)
    by_port = {s.port: s for s in specs}
    missing = [p for p in ports if p not in by_port]
    if missing:
        raise PortsError(f"port {missing[0]} is not in ports.toml (configured: "
                         f"{', '.join(str(p) for p in by_port) or 'none'})")  # fmt: skip
    return [by_port[p] for p in dict.fromkeys(ports)]


def _up_one(ws: Workspace, spec: PortSpec, exit_with_parent: bool, timeout: float) -> Outcome:
    current = record_of(ws, spec.port)
    if current is not None and current.alive:
        if current.model == spec.model:
            return Outcome(spec.port, True, f"port {spec.port}: already up at {current.url} (pid {current.pid})",
                           current)  # fmt: skip
        return Outcome(spec.port, False, f"port {spec.port}: pid {current.pid} serves "
                       f"{current.model or 'passthrough'} there, ports.toml says {spec.describe()}; "
                       f"to change it: trainledger ports down {spec.port}, then ports up {spec.port}")  # fmt: skip
    try:
        rec = start_port(ws, spec, exit_with_parent=exit_with_parent, timeout=timeout)
    except PortsError as exc:  # its message names the port
        return Outcome(spec.port, False, str(exc))
    except OSError as exc:
        return Outcome(spec.port, False, f"port {spec.port}: cannot start its server: {exc}")
    return Outcome(spec.port, True, f"port {spec.port}: up at {rec.url} serving {spec.describe()} "
                   f"(pid {rec.pid}, log {rec.log or records.log_path(ws, spec.port)})", rec)  # fmt: skip


def up(ws: Workspace, ports: Iterable[int] | None = None, *, exit_with_parent: bool = False,
       timeout: float = 20.0) -> list[Outcome]:  # fmt: skip
    """Start every port of ports.toml (or those named) that does not run yet, all at once.

    PortsError (nothing started) when a named port is not in ports.toml; PortsFileError when
    ports.toml is bad. One Outcome per port, in the order asked.
    """
    specs = _select(read_ports(ws), None if ports is None else list(ports))
    if not specs:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool:
        return list(pool.map(lambda s: _up_one(ws, s, exit_with_parent, timeout), specs))


def down(ws: Workspace, ports: Iterable[int] | None = None, *, timeout: float = 10.0) -> list[Outcome]:
    """Drain and stop the ports of ports.toml (or those named, configured or only recorded)."""
    if ports is None:
        targets = [s.port for s in read_ports(ws)]
    else:
        targets = list(dict.fromkeys(ports))

    def one(port: int) -> Outcome:
        try:
            return Outcome(port, True, stop_port(ws, port, timeout))
        except (PortsError, OSError) as exc:
            return Outcome(port, False, str(exc))

    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        return list(pool.map(one, targets))
