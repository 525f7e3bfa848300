"""A script that logs with `trainledger.log` (or inside `with trainledger.run()`) and then
crashes ends `failed` with the exception's type and message; a clean exit stays `finished`
and Ctrl-C ends `stopped`. Real scripts in subprocesses; run.json read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from trainledger.engines.workspace import Workspace, init_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def run_script(ws: Workspace, body: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    script = ws.root.parent / "script.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "TRAINLEDGER_WORKSPACE": str(ws.root), "TRAINLEDGER_RUN_NAME": "scripted"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env,
                         check=False)  # fmt: skip
    runs = list(ws.runs_dir.iterdir())
    assert len(runs) == 1, (runs, out.stderr)
    rows = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[0]["loss"] == 1.0  # what was logged before the end is kept
    return out, json.loads((runs[0] / "run.json").read_text())


BARE = """
import sys
import trainledger
trainledger.log({"loss": 1.0}, step=1)
{ending}
"""
CONTEXT = """
import trainledger
with trainledger.run(model="mlp", config={"lr": 0.1}):
    trainledger.log({"loss": 1.0}, step=1)
    {ending}
"""
INTERRUPTED = -signal.SIGINT  # python ends itself with SIGINT after an uncaught KeyboardInterrupt
ENDINGS = [
    (BARE, "pass", 0, "finished", None),
    (BARE, "sys.exit(0)", 0, "finished", None),
    (BARE, "sys.exit()", 0, "finished", None),
    (BARE, 'raise ValueError("bad value")', 1, "failed", "ValueError: bad value"),
    (BARE, 'sys.exit("boom")', 1, "failed", "SystemExit: boom"),
    (BARE, "sys.exit(3)", 3, "failed", "SystemExit: 3"),
    (BARE, "raise KeyboardInterrupt", INTERRUPTED, "stopped", None),
    (CONTEXT, "pass", 0, "finished", None),
    (CONTEXT, "raise SystemExit(0)", 0, "finished", None),
    (CONTEXT, 'raise SystemExit("boom")', 1, "failed", "SystemExit: boom"),
    (CONTEXT, "raise SystemExit(3)", 3, "failed", "SystemExit: 3"),
    (CONTEXT, 'raise ValueError("bad value")', 1, "failed", "ValueError: bad value"),
    (CONTEXT, "raise KeyboardInterrupt", INTERRUPTED, "stopped", None),
]


@pytest.mark.parametrize(("script", "ending", "code", "status", "error"), ENDINGS,
                         ids=[("log: " if s is BARE else "with run: ") + e for s, e, *_ in ENDINGS])  # fmt: skip
def test_the_run_records_how_the_script_ended(
    ws: Workspace, script: str, ending: str, code: int, status: str, error: str | None
) -> None:
    out, info = run_script(ws, script.replace("{ending}", ending))
    assert out.returncode == code, out.stderr
    assert (info["status"], info["error"]) == (status, error)
    assert info["name"] == "scripted" and info["ended"] is not None
    if script is CONTEXT:
        assert info["model"] == "mlp" and info["config"] == {"lr": 0.1}


def test_the_previous_excepthook_still_runs(ws: Workspace) -> None:
    marker = ws.root.parent / "hook-ran"
    out, info = run_script(ws, f"""
        import sys
        def hook(kind, exc, tb):
            open({str(marker)!r}, "w").write(kind.__name__)
        sys.excepthook = hook
        import trainledger
        trainledger.log({{"loss": 1.0}}, step=1)
        raise RuntimeError("after logging")
    """)
    assert out.returncode == 1
    assert (info["status"], info["error"]) == ("failed", "RuntimeError: after logging")
    assert marker.read_text() == "RuntimeError"
