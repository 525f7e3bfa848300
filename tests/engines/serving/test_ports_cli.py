"""`trainledger serve` and `trainledger ports up|down|status|list` with real processes on real ports.

The passthrough port needs no trained model, so these run on a bare workspace. Every server
a test starts is stopped at its end (by the test, or by the fixture if the test failed).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from trainledger.console.cli import main as console_main
from trainledger.engines.serving import records
from trainledger.engines.serving.cli import fallback_status, main
from trainledger.engines.serving.portsfile import PortSpec, write_ports
from trainledger.engines.serving.process import PortsError, start_port, stop_port, up, why_not_ours
from trainledger.engines.workspace import Workspace

pytestmark = pytest.mark.slow
TOKEN = "a-token-of-twenty-four-c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`trainledger ARGS` in a process of its own, as a user runs it."""
    full = {k: v for k, v in os.environ.items() if k != "TRAINLEDGER_SERVE_TOKEN"} | (env or {})
    return subprocess.run([sys.executable, "-m", "trainledger", *args], capture_output=True, text=True,
                          env=full, timeout=timeout)  # fmt: skip


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def post(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def can_bind(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def ws(ws: Workspace) -> Iterator[Workspace]:
    """The workspace; at the end every port server recorded in it is stopped (only real ones)."""
    yield ws
    for rec in records.read_records(ws):
        if rec.alive and why_not_ours(rec) is None:
            os.kill(rec.pid, signal.SIGKILL)


def test_serve_argument_errors_are_bad_usage(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    port = str(free_port())
    w = ["--workspace", str(ws.root)]
    bad = [
        ["--model", "../x", "--port", port],
        ["--model", "m", "--passthrough", "--port", port],
        ["--port", port],
        ["--model", "m"],
        ["--model", "m", "--port", "0"],
        ["--model", "m", "--port", "70000"],
        ["--model", "m", "--dim", "4", "--port", port],
        ["--passthrough", "--dim", "0", "--port", port],
        ["--model", "m", "--port", port, "--fault", "v3:error=2"],
        ["--model", "m", "--port", port, "--fault", "v3"],
        ["--model", "m", "--port", port, "--fault", "v3:error=0.1", "--fault", "v3:latency_ms=1"],
        ["--model", "m", "--port", port, "--host", "0.0.0.0"],
        ["--model", "m", "--port", port, "--host", "0.0.0.0", "--token", "short"],
        ["--model", "m", "--port", port, "--host", "bad host"],
    ]
    for args in bad:
        assert main(["serve", *args, *w]) == 2, args
        assert console_main(["serve", *args, *w]) == 2, args
        err = capsys.readouterr().err
        assert err.strip(), args
    assert records.read_records(ws) == []
    assert main(["ports"]) == 2 and main(["ports", "up", "--workspace", str(ws.root), "x"]) == 2
    assert main(["ports", "list", "--workspace", str(ws.root / "missing")]) == 2  # never made a workspace
    assert not (ws.root / "missing").exists()


def test_ports_list_and_a_bad_ports_toml(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    write_ports(ws, [PortSpec(9005, None, True, 64), PortSpec(9001, "lvm-amn", faults=("v3:error=0.3",))])
    assert main(["ports", "list", "--json", "--workspace", str(ws.root)]) == 0
    listed = json.loads(capsys.readouterr().out)["ports"]
    assert [(p["port"], p["model"], p["passthrough"], p["dim"], p["faults"]) for p in listed] == [
        (9005, None, True, 64, []), (9001, "lvm-amn", False, None, ["v3:error=0.3"])]  # fmt: skip
    assert main(["ports", "list", "--workspace", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "9005" in out and "passthrough" in out and "lvm-amn" in out

    ws.ports_file.write_text('[[port]]\nport = 9001\nmodel = "lvm-amn"\nwieghts = "x"\n')
    for action in ("list", "up", "down", "status"):
        assert main(["ports", action, "--workspace", str(ws.root)]) == 2, action
        err = capsys.readouterr().err
        assert "ports.toml" in err and "wieghts" in err and "line 1" in err, err

    ws.ports_file.write_text('[[port]]\nport = 9001\nmodel = "lvm-amn"\nhost = "0.0.0.0"\n')
    assert main(["ports", "up", "--workspace", str(ws.root)]) == 2  # beyond loopback, no token: nothing starts
    assert "token" in capsys.readouterr().err
    assert main(["ports", "up", "9002", "--workspace", str(ws.root)]) == 1  # not in ports.toml: refused
    assert "9002" in capsys.readouterr().err
    assert records.read_records(ws) == []


def test_ports_up_status_down_a_passthrough_port(ws: Workspace) -> None:
    port = free_port()
    write_ports(ws, [PortSpec(port, None, True, 4)])
    w = ("--workspace", str(ws.root))
    t0 = time.monotonic()
    started = cli("ports", "up", *w, env={"TRAINLEDGER_SERVE_TOKEN": TOKEN})
    assert started.returncode == 0, started.stderr + started.stdout
    assert f"port {port}: up at http://127.0.0.1:{port}" in started.stdout
    started_s = time.monotonic() - t0
    [rec] = records.read_records(ws)
    assert rec.port == port and rec.alive and rec.model is None and rec.kind == "passthrough"
    assert rec.token_required and TOKEN not in " ".join(rec.argv)  # the token went in the environment
    assert rec.log == str(records.log_path(ws, port)) and Path(rec.log).is_file()
    assert psutil.Process(rec.pid).ppid() != os.getpid()  # in the background: `ports up` has exited

    url = f"http://127.0.0.1:{port}"
    assert get(f"{url}/health")[0] == 401
    code, body = post(f"{url}/predict", {"context": [[1, 2, 3, 4], [5, 6, 7, 8]]}, TOKEN)
    assert code == 200 and body["vector"] == [5, 6, 7, 8], body

    again = cli("ports", "up", str(port), *w, env={"TRAINLEDGER_SERVE_TOKEN": TOKEN})
    assert again.returncode == 0 and "already up" in again.stdout, again.stderr
    with pytest.raises(PortsError, match="already served"):
        start_port(ws, PortSpec(port, None, True, 4), token=TOKEN)

    status = cli("ports", "status", "--json", *w, env={"TRAINLEDGER_SERVE_TOKEN": TOKEN})
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)["ports"]
    assert (row["port"], row["state"], row["pid"], row["configured"]) == (port, "up", rec.pid, True), row
    assert cli("ports", "status", *w, env={"TRAINLEDGER_SERVE_TOKEN": TOKEN}).stdout.count(str(port)) >= 1

    # A record under another port that names this server is forged: that port's `down` never signals it.
    other = free_port()
    records.record_path(ws, other).write_text(json.dumps({**rec.to_json(), "port": other}))
    with pytest.raises(PortsError, match="not stopping"):
        stop_port(ws, other)
    assert get(f"{url}/health", TOKEN)[0] == 200
    records.record_path(ws, other).unlink()

    t1 = time.monotonic()
    down = cli("ports", "down", *w)
    assert down.returncode == 0 and f"port {port}: stopped pid {rec.pid}" in down.stdout, down.stderr + down.stdout
    stopped_s = time.monotonic() - t1
    assert gone(rec.pid) and records.read_records(ws) == [] and can_bind(port)
    assert "not running" in cli("ports", "down", *w).stdout
    print(f"ports up {started_s:.2f} s, ports down {stopped_s:.2f} s")


def test_a_server_started_by_hand_shows_and_is_stopped_only_when_named(ws: Workspace) -> None:
    port = free_port()
    configured = free_port()
    write_ports(ws, [PortSpec(configured, None, True)])
    log = open(ws.root / "by-hand.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "trainledger.engines.serving", "serve", "--passthrough",
                             "--port", str(port), "--workspace", str(ws.root), "--exit-with-parent"],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not any(r.port == port and r.pid == proc.pid for r in records.read_records(ws)):
            assert proc.poll() is None and time.monotonic() < deadline, (ws.root / "by-hand.log").read_text()
            time.sleep(0.05)
        assert b"serving the passthrough on http://127.0.0.1:" in (ws.root / "by-hand.log").read_bytes()
        rows = {r["port"]: r for r in json.loads(cli("ports", "status", "--json", "--workspace", str(ws.root)).stdout)
                ["ports"]}  # fmt: skip
        assert rows[port]["state"] == "up" and rows[port]["configured"] is False and rows[port]["pid"] == proc.pid
        assert rows[configured]["state"] == "stopped" and rows[configured]["pid"] is None
        plain = {r["port"]: r for r in fallback_status(ws)}  # what status says without the prober
        assert (plain[port]["state"], plain[port]["pid"], plain[port]["configured"]) == ("up", proc.pid, False)
        assert (plain[configured]["state"], plain[configured]["pid"]) == ("stopped", None)

        assert main(["serve", "--passthrough", "--port", str(port), "--workspace", str(ws.root)]) == 1  # taken

        down_all = cli("ports", "down", "--workspace", str(ws.root))  # ports.toml's ports only
        assert down_all.returncode == 0 and proc.poll() is None
        named = cli("ports", "down", str(port), "--workspace", str(ws.root))
        assert named.returncode == 0 and f"stopped pid {proc.pid}" in named.stdout, named.stderr
        assert proc.wait(timeout=10) == 0  # SIGTERM: drained and exited cleanly
        assert records.read_records(ws) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_a_forged_record_is_never_signalled(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = psutil.Process(sleeper.pid)
        while not live.cmdline():
            time.sleep(0.01)
        fake = {"schema": records.SCHEMA, "port": port, "host": "127.0.0.1", "url": f"http://127.0.0.1:{port}",
                "model": None, "kind": "passthrough", "pid": sleeper.pid, "started_at": live.create_time(),
                "token_required": False, "log": None}  # fmt: skip
        path = records.record_path(ws, port)
        path.parent.mkdir(parents=True, exist_ok=True)
        forgeries = [
            live.cmdline(),  # exactly the sleeper's command line: "alive", but not a port server
            [sys.executable, "-m", "trainledger.engines.serving", "serve", "--port", str(port)],  # a server's words
        ]
        for argv in forgeries:
            path.write_text(json.dumps({**fake, "argv": argv}))
            for args in (["ports", "down", str(port)], ["ports", "status", "--json"], ["ports", "up", str(port)]):
                main([*args, "--workspace", str(ws.root)])
            err = capsys.readouterr().err
            assert f"not stopping pid {sleeper.pid}" in err, err
            assert sleeper.poll() is None and live.status() != psutil.STATUS_ZOMBIE
            assert path.exists()  # a record naming a live process is left for a person to judge
            with pytest.raises(PortsError):
                stop_port(ws, port)
            assert sleeper.poll() is None
        sleeper.kill()
        sleeper.wait()
        assert "removed the stale record" in stop_port(ws, port) and not path.exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_up_reports_a_server_that_cannot_listen_with_its_log(ws: Workspace) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_ports(ws, [PortSpec(port, None, True)])
        t0 = time.monotonic()
        failed = cli("ports", "up", "--workspace", str(ws.root))
        assert failed.returncode == 1, failed.stdout
        err = failed.stderr
        assert f"port {port}" in err and "exited with code" in err and f"port-{port}.log" in err, err
        assert time.monotonic() - t0 < 30
        assert records.read_records(ws) == []


def test_a_server_that_does_not_answer_in_time_is_stopped(ws: Workspace) -> None:
    port = free_port()
    with pytest.raises(PortsError, match=f"port {port} did not answer"):
        start_port(ws, PortSpec(port, None, True), timeout=0.01)
    left = [p for p in psutil.process_iter(["cmdline"]) if "--port" in (p.info["cmdline"] or [])
            and str(port) in p.info["cmdline"]]  # fmt: skip
    assert all(gone(p.pid) for p in left)
    assert records.read_records(ws) == [] and can_bind(port)


def test_ports_down_drains_a_request_in_flight(ws: Workspace) -> None:
    import threading

    port = free_port()
    write_ports(ws, [PortSpec(port, None, True, 2, faults=("passthrough:latency_ms=1500",))])
    [started] = up(ws)
    assert started.ok, started.message
    answers: list[tuple[int, Any]] = []
    client = threading.Thread(target=lambda: answers.append(
        post(f"http://127.0.0.1:{port}/predict", {"context": [[1.0, 2.0]]})))  # fmt: skip
    client.start()
    time.sleep(0.5)  # the request waits out its injected latency inside the server
    t0 = time.monotonic()
    assert "drained" in stop_port(ws, port)
    client.join(10)
    assert answers and answers[0][0] == 200 and answers[0][1]["vector"] == [1.0, 2.0], answers
    assert 0.5 < time.monotonic() - t0 < 8 and gone(started.record.pid) and can_bind(port)
