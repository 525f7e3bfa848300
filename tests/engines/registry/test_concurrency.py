"""Four processes changing the same models at once leave one consistent registry (issue 11).

Each of four registry_driver.py processes runs 50 operations drawn from a seeded random
mix (deploys of shared files, canaries, promotes, aborts, rollbacks, prunes, verifies;
some valid, some not) on the same two models, all starting at the same moment. Writers
queue on SQLite's lock (the busy timeout), so no operation fails with "database is
locked"; afterwards the registry passes every consistency check and holds exactly one
audit entry for each operation that said `ok`, none for a refusal.

One race is played out in a single process, exactly: a prune that deletes a blob while a
deploy of the same bytes has copied them in but not yet committed.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engines.registry.registry_driver import DRIVER, candidate, consistency_problems, write_artifact
from trainledger.engines.registry.store import Registry
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow

PROCESSES = 4
OPS = 50
MODELS = ("a", "b")


def mixed_ops(rng: random.Random, files: list[Path]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for _ in range(OPS):
        model = rng.choice(MODELS) if rng.random() < 0.95 else "nope"
        version = f"v{rng.randint(1, 12)}"
        pick = rng.choices(["deploy", "canary", "promote", "abort", "rollback", "prune", "verify"],
                           weights=[3, 5, 3, 2, 3, 1, 1])[0]  # fmt: skip
        if pick == "deploy":
            op: dict[str, Any] = {"op": "deploy", "model": rng.choice(MODELS), "file": str(rng.choice(files))}
            if rng.random() < 0.15:
                op["version"] = f"v{rng.randint(1, 12)}"  # often taken: refused
        elif pick == "canary":
            traffic = rng.choice([rng.randint(1, 99), rng.randint(1, 99), 0, 100])  # a quarter of them bad
            op = {"op": "canary", "model": model, "version": version, "traffic": traffic}
        elif pick in ("promote", "rollback"):
            op = {"op": pick, "model": model, "version": version if rng.random() < 0.6 else None}
        elif pick == "prune":
            op = {"op": "prune", "model": model, "keep": rng.randint(1, 3)}
        elif pick == "verify":
            op = {"op": "verify", "model": model}
        else:
            op = {"op": "abort", "model": model}
        ops.append(op)
    return ops


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Models a and b with v1..v3 each, v1 active; eight shared artifact files."""
    root = init_workspace(tmp_path / "ws").root
    files = [write_artifact(tmp_path / "src" / f"f{i}.safetensors", seed=i) for i in range(8)]
    with Registry(Workspace(root)) as reg:
        for m in MODELS:
            for f in files[:3]:
                reg.deploy(m, candidate(f))
            reg.promote(m, "v1")
    return root, files


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_four_processes_leave_one_consistent_state(seeded: tuple[Path, list[Path]], seed: int) -> None:
    root, files = seeded
    with Registry(Workspace(root)) as reg:
        before = len(reg.audit())
    start = time.time() + 1.0  # every driver imported and waiting: then all at once
    procs = []
    for i in range(PROCESSES):
        ops = [{"op": "until", "time": start}, *mixed_ops(random.Random(seed * 100 + i), files)]
        procs.append(subprocess.Popen([sys.executable, str(DRIVER), str(root), json.dumps(ops)], text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    lines = [line for out, _ in outputs for line in out.splitlines() if line != "ready"]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    assert not [line for line in lines if line.startswith("error") or "locked" in line]
    assert len(lines) == PROCESSES * OPS
    ok = [line.split() for line in lines if line.startswith("ok ")]
    refused = [line for line in lines if line.startswith("refused ")]
    assert len(ok) + len(refused) == PROCESSES * OPS
    assert len(ok) >= 40 and len(refused) >= 40, "the mix should hold both"

    assert consistency_problems(root) == []
    with Registry(Workspace(root)) as reg:
        audit = reg.audit()
        models = {m.name: m for m in reg.models()}
    new = audit[before:]
    assert len(new) == len(ok), f"{len(ok)} operations said ok, {len(new)} audit entries"
    by_id = {e.id: e for e in new}
    for _, action, audit_id in ok:
        if audit_id != "-":  # verify prints no id: its one entry is counted above
            assert by_id[int(audit_id)].action == action
    ids = [int(a) for _, _, a in ok if a != "-"]
    assert len(set(ids)) == len(ids)
    assert sorted(e.action for e in new if e.id not in set(ids)) == ["verify"] * sum(o[1] == "verify" for o in ok)
    assert set(models) == set(MODELS)  # a refusal never created "nope"
    for m in models.values():
        assert m.active is not None


def test_a_prune_between_a_deploys_copy_and_its_commit_keeps_the_blob(tmp_path: Path) -> None:
    """m: v1 active, v2 inactive with f1's bytes. A deploy of f1 copies them in (the blob is
    already there) and, before its transaction, another registry prunes v2 and deletes the
    blob nobody committed names yet. The deploy then commits: its bytes must be there."""
    root = init_workspace(tmp_path / "ws").root
    f0, f1 = (write_artifact(tmp_path / f"f{i}.safetensors", seed=i) for i in range(2))
    with Registry(Workspace(root)) as reg:
        reg.deploy("m", candidate(f0))
        reg.deploy("m", candidate(f1))
        reg.promote("m", "v1")
    pruned: list[list[str]] = []

    def clock() -> float:  # the store reads its clock after the copy, before BEGIN IMMEDIATE
        if not pruned:
            with Registry(Workspace(root)) as other:
                pruned.append(other.prune("m", keep=0).details["pruned"])
        return time.time()

    with Registry(Workspace(root), clock=clock) as reg:
        change = reg.deploy("m", candidate(f1), version="again")
    assert pruned == [["v2"]] and change.to_version == "again"
    assert consistency_problems(root) == []
    with Registry(Workspace(root)) as reg:
        assert [(v.version, p) for v, p in reg.verify("m") if p] == []
        reg.promote("m", "again")
