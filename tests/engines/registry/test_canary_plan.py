"""`registry canary --steps 10,25,50,100 --interval 60s`: the plan is validated and kept in the
canary's audit entry, where the port server reads which step it is on (engines/serving/analysis.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engines.registry.registry_driver import candidate, write_artifact
from trainledger.engines.registry.cli import main
from trainledger.engines.registry.live import canary_plan
from trainledger.engines.registry.store import Registry
from trainledger.engines.registry.types import RegistryUsageError
from trainledger.engines.workspace import Workspace, init_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = init_workspace(tmp_path / "ws")
    with Registry(ws) as reg:
        for i in range(2):
            reg.deploy("m", candidate(write_artifact(tmp_path / f"f{i}" / "model.safetensors", seed=i)))
        reg.promote("m", "v1")
    return ws


def test_a_plan_is_kept_in_the_canary_audit_entry_with_its_step(ws: Workspace) -> None:
    assert main(["canary", "m", "v2", "--steps", "10,25,50,100", "--interval", "2m", "--workspace", str(ws.root)]) == 0
    with Registry(ws) as reg:
        assert (reg.model("m").canary, reg.model("m").traffic) == ("v2", 10)
        entry = reg.audit("m", limit=1, newest_first=True)[0]
        assert entry.action == "canary"
        assert entry.details["plan"] == {"steps": [10, 25, 50, 100], "interval_s": 120.0, "step": 0}
        reg.canary("m", "v2", 25, plan=entry.details["plan"])  # the next step keeps the plan
        assert reg.audit("m", limit=1, newest_first=True)[0].details["plan"]["step"] == 1


@pytest.mark.parametrize("args", [
    ["--steps", "50,25"], ["--steps", "0,50"], ["--steps", "100"], ["--steps", "10,x"], ["--steps", "10,101"],
    ["--steps", "10,50", "--interval", "0"], ["--steps", "10,50", "--interval", "soon"], ["--interval", "60s"],
    [],
])  # fmt: skip
def test_a_bad_plan_is_bad_usage_and_changes_nothing(ws: Workspace, args: list[str]) -> None:
    assert main(["canary", "m", "v2", *args, "--workspace", str(ws.root)]) == 2
    with Registry(ws) as reg:
        assert reg.model("m").canary is None


def test_traffic_outside_the_steps_is_refused(ws: Workspace) -> None:
    with Registry(ws) as reg, pytest.raises(RegistryUsageError):
        reg.canary("m", "v2", 30, plan=canary_plan([10, 50], 60))
    with pytest.raises(RegistryUsageError):
        canary_plan([10, 20], float("nan"))
