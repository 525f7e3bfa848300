"""The demo's registry: a real demo ends with an active version, a rollback target and a canary at
10 %, a second demo adds nothing, and the seeder resumes or stands back as the registry says."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from trainledger.engines.demo import DemoProcesses, prepare_demo_workspace
from trainledger.engines.registry import demo_seed
from trainledger.engines.registry.demo_seed import CANARY_TRAFFIC, DONE, MODEL, WAITING, seed, step
from trainledger.engines.registry.store import Registry
from trainledger.engines.workspace import Workspace, init_workspace

FAST = {"epochs": 50, "batch_size": 512, "pace": 50, "log_every": 5}


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def assert_seeded(reg: Registry, run_id: str | None = None) -> None:
    state = reg.model(MODEL)
    assert (state.active, state.previous, state.canary, state.traffic) == ("v2", "v1", "v3", CANARY_TRAFFIC)
    versions = reg.versions(MODEL)
    assert [(v.version, v.status) for v in versions] == [("v1", "inactive"), ("v2", "active"), ("v3", "canary")]
    assert len({v.checksum for v in versions}) == 3
    assert all(v.checkpoint == "best" and v.is_best and v.kind == "ternary-vae" for v in versions)
    if run_id is not None:
        assert {v.run_id for v in versions} == {run_id}
    assert [e.action for e in reg.audit(MODEL)] == ["deploy", "promote", "deploy", "promote", "deploy", "canary"]


# ---------------------------------------------------------------------- a real demo
@pytest.mark.slow
def test_a_real_demo_registers_active_rollback_target_and_canary_once(tmp_path: Path) -> None:
    ws = prepare_demo_workspace(tmp_path / "demo")
    demo = DemoProcesses(ws)
    try:
        run_id = demo.run_id(demo.start_trainer(**FAST))
        seeder = demo.seeder
        assert seeder is not None
        wait_for(lambda: seeder.poll() is not None, 240, "the registry seeder to finish")
        log = (ws.state_dir / "logs" / "registry-seed.log").read_text()
        assert seeder.returncode == 0, log
        with Registry(ws) as reg:
            assert_seeded(reg, run_id)
            epochs = [v.epoch for v in reg.versions(MODEL)]
            assert epochs == sorted(epochs) and len(set(epochs)) == 3  # the best moved twice
    finally:
        demo.stop_all(timeout=30)

    again = DemoProcesses(ws)  # `trainledger demo` a second time on the same workspace
    try:
        again.start_trainer(**FAST)
        seeder = again.seeder
        assert seeder is not None
        wait_for(lambda: seeder.poll() is not None, 120, "the second seeder to finish")
        assert seeder.returncode == 0
    finally:
        again.stop_all(timeout=30)
    with Registry(ws) as reg:
        assert_seeded(reg, run_id)  # the same three versions and six audit entries, nothing added


@pytest.mark.slow
def test_the_seeder_imports_neither_torch_nor_the_console() -> None:
    code = (
        "import sys, trainledger.engines.registry.demo_seed as d, trainledger.engines.registry.sanity, "
        "trainledger.engines.registry.source\n"
        "bad = [m for m in ('torch', 'textual', 'rich', 'trainledger.console') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------- a run written by hand
class HandRun:
    """A running ternary-vae run folder whose best checkpoint a test moves, as a trainer would."""

    def __init__(self, ws: Workspace, run_id: str = "r1") -> None:
        self.ws, self.id, self.epoch = ws, run_id, 0
        self.dir = ws.run_dir(run_id)
        (self.dir / "checkpoints").mkdir(parents=True)
        self.status("running")

    def status(self, status: str) -> None:
        info = {"id": self.id, "model": "ternary-vae", "status": status, "config": {"n_train": 17715}}
        (self.dir / "run.json").write_text(json.dumps(info))

    def better(self, tag: str = "best") -> None:
        self.epoch += 1
        weights = np.random.default_rng(self.epoch).standard_normal(300_000).astype(np.float32)
        data = save({"w": weights})
        (self.dir / "checkpoints" / f"{tag}.safetensors").write_bytes(data)
        sidecar = {"schema": "trainledger-checkpoint/1", "file": f"{tag}.safetensors", "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest(), "epoch": self.epoch, "step": self.epoch * 35,
                   "model": "ternary-vae", "metrics": {"val/loss": 1.0 / self.epoch}}  # fmt: skip
        (self.dir / "checkpoints" / f"{tag}.json").write_text(json.dumps(sidecar))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def test_each_step_waits_for_new_bytes(ws: Workspace) -> None:
    run = HandRun(ws)
    with Registry(ws) as reg:
        assert step(ws, reg, run.id) == WAITING  # no checkpoint yet
        assert not reg.exists  # waiting writes nothing
        run.better()
        assert "deployed" in step(ws, reg, run.id)
        assert "v1 active" in step(ws, reg, run.id)
        assert step(ws, reg, run.id) == WAITING  # the best has not moved: no duplicate version
        run.better()
        assert "deployed" in step(ws, reg, run.id) and "rollback target v1" in step(ws, reg, run.id)
        run.better()
        assert "deployed" in step(ws, reg, run.id)
        assert f"{CANARY_TRAFFIC} %" in step(ws, reg, run.id)
        assert step(ws, reg, run.id) == DONE
        assert_seeded(reg, run.id)


def test_a_demo_killed_half_way_is_finished_by_the_next_and_an_operator_is_left_alone(ws: Workspace) -> None:
    first = HandRun(ws, "r1")
    first.better()
    with Registry(ws) as reg:
        step(ws, reg, first.id)
        step(ws, reg, first.id)  # killed here: v1 active, nothing more
        second = HandRun(ws, "r2")
        second.epoch = 10
        for _ in range(2):
            second.better()
            while step(ws, reg, second.id) not in (WAITING, DONE):
                pass
        assert seed(ws, second.id, poll_s=0.01, timeout_s=5, log=lambda _: None)
        state = reg.model(MODEL)
        assert (state.active, state.previous, state.canary) == ("v2", "v1", "v3")
        reg.promote(MODEL)  # an operator moves on: v3 active
        before = len(reg.audit())
        assert seed(ws, second.id, poll_s=0.01, timeout_s=5, log=lambda _: None)
        assert len(reg.audit()) == before and reg.model(MODEL).active == "v3"


def test_a_run_that_ends_without_new_bytes_stops_the_seeder(ws: Workspace) -> None:
    run = HandRun(ws)
    run.better()
    run.status("finished")
    said: list[str] = []
    with Registry(ws) as reg:
        assert not seed(ws, run.id, poll_s=0.01, timeout_s=10, log=said.append)
        assert [v.version for v in reg.versions(MODEL)] == ["v1"] and reg.model(MODEL).active == "v1"
    assert "ended before" in said[-1]


def test_the_last_checkpoint_counts_once_the_run_has_ended(ws: Workspace) -> None:
    run = HandRun(ws)
    run.better()
    with Registry(ws) as reg:
        step(ws, reg, run.id)
        step(ws, reg, run.id)
        run.better("last")
        assert step(ws, reg, run.id) == WAITING  # running: only the best is taken
        run.status("stopped")
        assert "checkpoint last" in step(ws, reg, run.id)


def test_one_seeder_per_workspace(ws: Workspace) -> None:
    run = HandRun(ws)
    held = demo_seed._lock(ws)
    try:
        said: list[str] = []
        assert not seed(ws, run.id, poll_s=0.01, timeout_s=1, log=said.append)
        assert "another demo" in said[0]
    finally:
        assert held is not None
        held.close()


def test_a_bad_run_id_is_refused(ws: Workspace) -> None:
    from trainledger.engines.workspace import InvalidId

    with pytest.raises(InvalidId):
        seed(ws, "../r1", timeout_s=1)
