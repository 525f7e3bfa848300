"""The capture server as a background process that the console and the demo start and stop.

The server itself writes `<ws>/.trainledger/capture-server.json` once it listens and removes
it on a clean exit, so the file is the one place to learn where a server runs; a `kill -9`
leaves it behind, and `server_state` then reports `alive=False`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from trainledger.engines.pids import pid_alive
from trainledger.engines.procs import Expect, Launched, launch, stop, why_not_same
from trainledger.engines.workspace import Workspace

if TYPE_CHECKING:
    import psutil

TOKEN_ENV = "TRAINLEDGER_CAPTURE_TOKEN"
STATE_FILE = "capture-server.json"  # written by the server (server.py) once it listens
LOG_FILE = "capture-server.log"


class CaptureServerError(RuntimeError):
    """The server could not be started (or is already running); the message says why."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    host: str
    port: int
    url: str
    fsync: str
    token_required: bool
    started_at: float
    alive: bool


def state_file(ws: Workspace) -> Path:
    return ws.state_dir / STATE_FILE


def log_file(ws: Workspace) -> Path:
    return ws.state_dir / "logs" / LOG_FILE


def server_state(ws: Workspace) -> ServerState | None:
    """What the state file says, with `alive` checked; None without a (readable) file."""
    try:
        raw = msgspec.json.decode(state_file(ws).read_bytes())
        pid = int(raw["pid"])
        started_at = float(raw["started_at"])
        return ServerState(
            pid=pid,
            host=str(raw["host"]),
            port=int(raw["port"]),
            url=str(raw["url"]),
            fsync=str(raw["fsync"]),
            token_required=bool(raw["token_required"]),
            started_at=started_at,
            alive=pid_alive(pid, started_at),
        )
    except (OSError, msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None


def _health(url: str, timeout: float = 0.5) -> bool:
    import urllib.request  # lazily: the console imports this module at start

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (OSError, ValueError):
        return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_server(
    ws: Workspace,
    host: str = "127.0.0.1",
    port: int = 9471,
    fsync: str = "batch",
    token: str | None = None,
    timeout: float = 10.0,
    exit_with_parent: bool = False,
) -> ServerState:
    """Start `python -m trainledger.engines.capture serve` detached; return once it answers.

    A server started from the console outlives it; with `exit_with_parent` (the demo) it
    stops when this process exits, even by SIGKILL.

    The token travels in the environment, not on the command line (where `ps` shows it).
    """
    current = server_state(ws)
    if current is not None and current.alive:
        raise CaptureServerError(
            f"a capture server already runs at {current.url} (pid {current.pid}); "
            "stop it first with: trainledger capture stop"
        )
    log_path = log_file(ws)
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)
    if token:
        env[TOKEN_ENV] = token
    cmd = [
        sys.executable, "-m", "trainledger.engines.capture", "serve",
        "--workspace", str(ws.root), "--host", host, "--port", str(port), "--fsync", fsync,
    ]  # fmt: skip
    server = launch(cmd, log_path, env=env, exit_with_parent=exit_with_parent, cwd=ws.root)
    proc = server.proc
    assert proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise CaptureServerError(
                f"the capture server exited with code {code}:\n{_log_tail(log_path)}"
            )
        state = server_state(ws)
        if state is not None and state.pid == proc.pid and _health(state.url):
            return state
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise CaptureServerError(
        f"the capture server did not answer within {timeout:g} s:\n{_log_tail(log_path)}"
    )


def stop_server(ws: Workspace, timeout: float = 5.0) -> bool:
    """SIGTERM the recorded server, SIGKILL it after `timeout`; True if one was running.

    A stale state file (the pid is gone) is removed. A pid whose command line is not a
    capture server's (a reused pid, a forged file) is left alone: CaptureServerError.
    """
    state = server_state(ws)
    path = state_file(ws)
    if state is None:
        return False
    if not state.alive:
        path.unlink(missing_ok=True)
        return False
    record = Launched(state.pid, state.started_at, ())
    why = why_not_same(record, SERVER)
    if why is not None:
        raise CaptureServerError(
            f"not stopping pid {state.pid}: {why}; {path} names it but is stale or was "
            "not written by a capture server (remove the file if no server runs)"
        )
    stop(record, timeout, expect=SERVER)  # SIGTERM, SIGKILL after `timeout`
    path.unlink(missing_ok=True)  # the server removes it itself on a clean exit
    return True


def _serves(cmdline: Sequence[str]) -> bool:
    """`python -m trainledger.engines.capture serve ...` or `trainledger capture serve ...`."""
    args = [os.path.basename(a) for a in cmdline]
    if "trainledger.engines.capture" in args and "serve" in args:
        return True
    return any(arg == "trainledger" and args[i + 1 : i + 3] == ["capture", "serve"]
               for i, arg in enumerate(args))  # fmt: skip


SERVER = Expect("a capture server's", _serves)  # also the user's own `trainledger capture serve`


def not_a_server(proc: psutil.Process) -> str | None:
    """Why `proc` is not a capture server (None if it is): its command line must be
    `python -m trainledger.engines.capture serve ...` or `trainledger capture serve ...`."""
    return why_not_same(Launched(proc.pid, None, ()), SERVER)
