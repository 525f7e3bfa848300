"""The serving demo end to end: six ports up, a canary with an injected fault aborted by the port
server itself within the first minute, and SIGTERM leaves no server behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainledger.engines.registry.store import Registry
from trainledger.engines.serving import records
from trainledger.engines.serving.demo import CANARY_MODEL
from trainledger.engines.serving.portsfile import read_ports
from trainledger.engines.workspace import init_workspace

pytestmark = pytest.mark.slow


def test_the_demo_serves_six_ports_and_a_failing_canary_rolls_itself_back(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "trainledger.engines.serving.demo", "--workspace",
                                 str(ws.root)], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 150
        aborted = None
        while time.monotonic() < deadline and aborted is None:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
            with Registry(ws) as reg:
                if reg.exists:
                    aborted = next((e for e in reg.audit(CANARY_MODEL) if e.action == "abort"), None) \
                        if CANARY_MODEL in {m.name for m in reg.models()} else None
        assert aborted is not None, log.read_text()
        with Registry(ws) as reg:
            canary = next(e for e in reg.audit(CANARY_MODEL) if e.action == "canary")
        assert aborted.time - canary.time < 60
        assert aborted.details["automatic"] and aborted.details["figures"]["threshold"] == "error_rate"
        ports = read_ports(ws)
        assert len(ports) == 6 and sum(1 for p in ports if p.passthrough) == 1
        live = [r for r in records.read_records(ws) if r.alive]
        assert sorted(r.port for r in live) == sorted(p.port for p in ports)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()
    pids = [r.pid for r in records.read_records(ws)]
    assert not [r for r in records.read_records(ws) if r.alive], pids
