"""The process launcher (engines/procs.py) with real processes: detached children with their
output in the log, stop by SIGTERM then SIGKILL, a reused pid never recognised or signalled,
children that go when their parent is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.engines.test_demo_capture import gone, wait_for
from trainledger.engines import procs
from trainledger.engines.procs import Expect, Launched, StopResult
from trainledger.engines.workspace import Workspace

pytestmark = pytest.mark.slow

# A child that says it is ready (after setting up what the test needs), then waits.
IGNORES_TERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)
EXITS_ON_TERM = "import time\nprint('ready', flush=True)\ntime.sleep(120)\n"


def log_says(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.exists() and text in path.read_text(errors="replace")


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def started(argv: list[str], log: Path, track: Callable[[int], None]) -> Launched:
    """Launch `argv` (a child that prints `ready` once set up) and wait until it is ready."""
    child = procs.launch(argv, log)
    track(child.pid)
    wait_for(log_says(log, "ready"), 30, "the child to be ready")
    return child


@pytest.fixture
def track() -> Callable[[int], None]:
    """track(pid): SIGKILL it after the test, whatever happened (through psutil, which refuses
    a pid that another process took meanwhile)."""
    known: list[psutil.Process] = []

    def add(pid: int) -> None:
        try:
            known.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass

    yield add
    for proc in known:
        try:
            proc.kill()
        except psutil.Error:
            pass


def test_launch_detaches_the_child_and_records_it(
    tmp_path: Path, track: Callable[[int], None]
) -> None:
    log = tmp_path / "logs" / "child.log"  # the folder does not exist yet
    code = (
        "import os, sys, time\n"
        "print('out', os.environ.get('PROC_TEST'), flush=True)\n"
        "print('err', file=sys.stderr, flush=True)\n"
        "time.sleep(120)\n"
    )
    child = procs.launch(python(code), log, env={**os.environ, "PROC_TEST": "given"})
    track(child.pid)
    assert child.proc is not None and child.proc.pid == child.pid
    assert child.log_path == log and child.argv == tuple(python(code))
    # a session and process group of its own
    assert os.getsid(child.pid) == child.pid == os.getpgid(child.pid)
    assert abs(psutil.Process(child.pid).create_time() - child.started_at) < 0.01
    # stdout and stderr, unbuffered (the child still runs), with the environment given
    wait_for(log_says(log, "err"), 30, "the child's output in its log")
    assert "out given" in log.read_text()
    assert procs.is_same_process(child)
    child.proc.kill()
    child.proc.wait(10)
    assert not procs.is_same_process(child)
    assert procs.why_not_same(child) is not None


def test_the_log_is_appended_to(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("earlier\n")
    child = procs.launch(python("print('later')"), log)
    assert child.proc is not None and child.proc.wait(30) == 0
    assert log.read_text().splitlines() == ["earlier", "later"]


def test_a_run_the_child_makes_names_the_log_it_was_given(tmp_path: Path) -> None:
    """run_log=<id>: that run's run.json names the log; another run of the child does not;
    a process launched without run_log never gets one from its parent's environment."""
    ws = tmp_path / "ws"
    code = (
        "import json, os, subprocess, sys\n"
        "from trainledger.engines.metrics.writer import MetricsWriter\n"
        f"ws = {str(ws)!r}\n"
        "MetricsWriter(ws, 'mine').finish(); MetricsWriter(ws, 'other').finish()\n"
        "subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"TRAINLEDGER_RUN_LOG\"))'])\n"
    )
    log = tmp_path / "logs" / "mine.log"
    child = procs.launch(python(code), log, run_log="mine")
    assert child.proc is not None and child.proc.wait(60) == 0, log.read_text()
    mine = json.loads((ws / "runs" / "mine" / "run.json").read_text())
    other = json.loads((ws / "runs" / "other" / "run.json").read_text())
    assert mine["log"] == str(log.resolve()) and "log" not in other
    assert log.read_text().splitlines()[-1] == f"mine={log.resolve()}"  # the child's own child saw it
    grand = tmp_path / "grand.log"  # a launch without run_log clears it for its child
    os.environ[procs.RUN_LOG_ENV] = f"*={log}"
    try:
        child = procs.launch(python("import os; print(os.environ.get('TRAINLEDGER_RUN_LOG'))"), grand)
        assert child.proc is not None and child.proc.wait(30) == 0
    finally:
        del os.environ[procs.RUN_LOG_ENV]
    assert grand.read_text().strip() == "None"


def test_stop_ends_a_child_with_sigterm(
    tmp_path: Path, track: Callable[[int], None]
) -> None:
    child = started(python(EXITS_ON_TERM), tmp_path / "child.log", track)
    assert procs.stop(child, 30) is StopResult.STOPPED
    assert child.proc is not None and child.proc.returncode == -signal.SIGTERM
    assert procs.stop(child, 30) is StopResult.GONE  # a second stop signals nothing


@pytest.mark.parametrize(
    "with_popen", [True, False], ids=["launched-here", "read-back"]
)
def test_a_child_that_ignores_sigterm_is_killed_after_the_deadline(
    tmp_path: Path, track: Callable[[int], None], with_popen: bool
) -> None:
    child = started(python(IGNORES_TERM), tmp_path / "child.log", track)
    # read back (as from a state file): no Popen, so stop itself must collect the exit status
    record = child if with_popen else Launched(child.pid, child.started_at, child.argv)
    assert procs.stop(record, 0.5) is StopResult.KILLED
    if with_popen:
        assert child.proc is not None and child.proc.returncode == -signal.SIGKILL
    else:
        assert not psutil.pid_exists(child.pid)  # killed and reaped: no zombie left


def test_a_reused_pid_is_not_the_process_and_is_never_signalled() -> None:
    other = subprocess.Popen(python(EXITS_ON_TERM), stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "ready"
        argv = tuple(python(EXITS_ON_TERM))
        created = psutil.Process(other.pid).create_time()
        # ours started a minute before this one took its pid; or at the same time, as another command
        older = Launched(other.pid, created - 60, argv)
        foreign = Launched(other.pid, created, ("/usr/bin/sleep", "60"))
        for record in (older, foreign):
            assert not procs.is_same_process(record)
            assert procs.stop(record, 0.2) is StopResult.GONE
        stopped = procs.stop_all([older, foreign], 0.2, group=True)
        assert stopped == [StopResult.GONE, StopResult.GONE]
        # still running: no signal reached it
        with pytest.raises(subprocess.TimeoutExpired):
            other.wait(0.5)
        # the true record passes
        assert procs.is_same_process(Launched(other.pid, created, argv))
    finally:
        other.kill()
        other.wait()


def test_expect_replaces_the_exact_command_line(
    tmp_path: Path, track: Callable[[int], None]
) -> None:
    child = started(python(EXITS_ON_TERM), tmp_path / "child.log", track)
    unknown = Launched(child.pid, None, ())  # pid known, command line not recorded
    assert not procs.is_same_process(unknown)
    python_child = Expect("a python child", lambda argv: "-c" in argv)
    assert procs.is_same_process(unknown, python_child)
    why = procs.why_not_same(unknown, Expect("a capture server's", lambda argv: False))
    # it says what was expected and what it found
    assert why is not None and "a capture server's" in why and "-c" in why


def test_a_script_run_through_its_shebang_is_recognised(
    tmp_path: Path, track: Callable[[int], None]
) -> None:
    script = tmp_path / "tool"
    script.write_text(f"#!{sys.executable}\n" + EXITS_ON_TERM)
    script.chmod(0o755)
    child = started([str(script), "--flag"], tmp_path / "tool.log", track)
    # the kernel put the interpreter first
    assert psutil.Process(child.pid).cmdline() != list(child.argv)
    assert procs.is_same_process(child)
    other_args = Launched(child.pid, child.started_at, (str(script), "--other"))
    assert not procs.is_same_process(other_args)


def test_group_stop_ends_the_childs_own_children(
    tmp_path: Path, track: Callable[[int], None]
) -> None:
    log = tmp_path / "child.log"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print('grandchild', p.pid, flush=True)\ntime.sleep(120)\n"
    )
    child = procs.launch(python(code), log)
    track(child.pid)
    wait_for(log_says(log, "grandchild"), 30, "the grandchild to start")
    grandchild = int(log.read_text().split()[-1])
    track(grandchild)
    assert procs.stop(child, 30, group=True) is StopResult.STOPPED
    wait_for(lambda: gone(grandchild), 30, "the grandchild to go with its group")


PARENT = """\
import sys, time
from pathlib import Path
from trainledger.engines import procs
log = Path(sys.argv[1])
server = procs.launch([sys.executable, "-m", "trainledger.engines.capture", "serve", "--workspace", sys.argv[2],
                       "--port", "0"], log, exit_with_parent=True)
plain = procs.launch([sys.executable, "-c", "import time; time.sleep(120)"], log.with_name("plain.log"))
print(server.pid, plain.pid, " ".join(server.argv), flush=True)
time.sleep(120)
"""


def test_exit_with_parent_children_go_when_the_parent_is_killed(
    ws: Workspace, track: Callable[[int], None]
) -> None:
    log = ws.state_dir / "logs" / "server.log"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(log), str(ws.root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    track(parent.pid)
    try:
        assert parent.stdout is not None
        server_pid, plain_pid, argv = parent.stdout.readline().split(maxsplit=2)
        track(int(server_pid))
        track(int(plain_pid))
        assert argv.split()[-1] == "--exit-with-parent"
        # a real trainledger child: it watches its parent once it listens
        wait_for(log_says(log, "127.0.0.1"), 60, "the server to listen")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_for(
            lambda: gone(int(server_pid)), 30, "the server to notice its parent died"
        )
        assert not gone(
            int(plain_pid)
        )  # without exit_with_parent a child outlives its parent
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
