"""Every registry write survives `kill -9` at any point (issue 11, Reliability: fault injection).

Real processes are SIGKILLed at real random moments, no fault hook: the CLI
(`python -m trainledger.engines.registry deploy|canary|promote|rollback|abort ...`), and
registry_driver.py, which runs a long random list of deploys, canaries, promotes, aborts
and rollbacks and is killed somewhere in the middle of it. After each kill the registry
must open, pass SQLite's integrity check, keep every committed audit entry unchanged,
have one audit entry for each operation that said `ok` (and at most one more: a kill
after the commit, before the line), keep its active and canary verifying, and name no
blob that is missing or half written (leftovers in artifacts/tmp are allowed, unnamed).

Three workspaces are killed in parallel so that 210 kills fit in well under a minute on
two cores; each kill is checked on its own.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.engines.registry.registry_driver import DRIVER, candidate, consistency_problems, write_artifact
from trainledger.engines.registry.store import DB_FILE, Registry
from trainledger.engines.registry.types import AuditEntry
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow

WORKSPACES = 3
KILLS = 70  # per workspace, of processes still running when killed: 210 in all
MAX_ROUNDS = 250  # per workspace; a process that finished before its kill does not count
CLI_SHARE = 0.5  # of the rounds kill the real CLI; the rest kill the driver mid-list
ENV = {**os.environ, "TRAINLEDGER_USER": "chaos"}
CLI = [sys.executable, "-m", "trainledger.engines.registry"]


def pool(root: Path) -> list[Path]:
    """Artifacts to deploy: mostly small, a few of 1 and 4 MB so kills land mid-copy too."""
    shapes = [(64, 64)] * 8 + [(512, 512)] * 3 + [(1024, 1024)]
    return [write_artifact(root / "incoming" / f"f{i}" / "model.safetensors", seed=i, shape=s)
            for i, s in enumerate(shapes)]  # fmt: skip


def read_audit(root: Path) -> list[AuditEntry]:
    with Registry(Workspace(root)) as reg:
        return reg.audit()


def known_versions(root: Path) -> list[str]:
    with Registry(Workspace(root)) as reg:
        return [v.version for v in reg.versions("m")]


def random_ops(rng: random.Random, files: list[Path], versions: list[str], n: int,
               only: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """A list of operations on model m (of kind `only` if given), most of them possible, some refused."""
    names = list(versions)
    ops: list[dict[str, Any]] = []
    for _ in range(n):
        pick = only or rng.choices(["deploy", "canary", "promote", "rollback", "abort"], weights=[3, 4, 3, 3, 1])[0]
        if pick == "deploy" or not names:
            op: dict[str, Any] = {"op": "deploy", "model": "m", "file": str(rng.choice(files))}
            if rng.random() < 0.2:
                op["version"] = f"n{rng.randint(1, 300)}"
            ops.append(op)
            names.append(op.get("version", f"v{len(names) + 1}"))
        elif pick == "canary":
            ops.append({"op": "canary", "model": "m", "version": rng.choice(names), "traffic": rng.randint(1, 99)})
        elif pick in ("promote", "rollback"):
            ops.append({"op": pick, "model": "m", "version": rng.choice(names) if rng.random() < 0.5 else None})
        else:
            ops.append({"op": "abort", "model": "m"})
    return ops


def cli_args(op: dict[str, Any], root: Path) -> list[str]:
    args = [op["op"], op["model"]]
    if op["op"] == "deploy":  # the file's folder, inside the workspace; the file checks but no probe (torch)
        args += ["--path", str(Path(op["file"]).parent), "--kind", "lvm-gru", "--no-probe"]
        args += ["--version", op["version"]] if op.get("version") else []
    elif op["op"] == "canary":
        args += [op["version"], "--traffic", str(op["traffic"])]
    elif op.get("version"):
        args.append(op["version"])
    return [*CLI, *args, "--workspace", str(root), "--json"]


def kill_at_random(proc: subprocess.Popen[str], delay: float) -> bool:
    """SIGKILL `proc` after `delay` s; True when it was still running (a real kill)."""
    time.sleep(delay)
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return alive


def check_after(root: Path, before: list[AuditEntry], done: list[tuple[str, int]], where: str) -> list[AuditEntry]:
    """The registry after a kill; `done` are the (action, audit id) that reported success."""
    problems = consistency_problems(root)
    assert problems == [], f"{where}: {problems}"
    audit = read_audit(root) if (root / "registry" / DB_FILE).exists() else []
    assert audit[: len(before)] == before, f"{where}: a committed audit entry changed or vanished"
    new = audit[len(before):]
    assert [(e.action, e.id) for e in new[: len(done)]] == done, f"{where}: an acknowledged operation has no entry"
    assert len(new) - len(done) in (0, 1), f"{where}: {len(new)} new entries for {len(done)} acknowledged"
    assert all(e.action in ("deploy", "canary", "promote", "rollback", "abort") for e in new), where
    return audit


def driver_round(root: Path, rng: random.Random, files: list[Path], before: list[AuditEntry],
                 where: str) -> tuple[str | None, list[AuditEntry]]:  # fmt: skip
    """Kill a driver mid-list; returns what was killed ("driver", or None if it had finished)."""
    ops = random_ops(rng, files, known_versions(root) if before else [], 60)
    proc = subprocess.Popen([sys.executable, str(DRIVER), str(root), json.dumps(ops)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the driver is imported and open: from here on, each moment is an operation
    assert first == "ready\n", f"{where}: {first!r} {proc.stderr.read() if proc.stderr else ''}"
    killed = kill_at_random(proc, rng.uniform(0.0, 0.030))
    out = proc.stdout.read()  # the rest, from the same buffered reader as `ready` (communicate() would skip it)
    err = proc.stderr.read() if proc.stderr else ""
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    lines = [line for line in out.split("\n")[:-1]]  # the last piece has no newline: cut by the kill
    errors = [line for line in lines if line.startswith("error")]
    assert errors == [], f"{where}: {errors} {err}"
    done = [(p[1], int(p[2])) for p in (line.split() for line in lines) if p[0] == "ok"]
    return ("driver" if killed else None), check_after(root, before, done, f"{where} (killed {killed}; said {lines})")


def cli_round(root: Path, rng: random.Random, files: list[Path], before: list[AuditEntry], where: str,
              action: str) -> tuple[str | None, list[AuditEntry]]:  # fmt: skip
    """Kill one CLI command; returns what was killed ("cli deploy", ...), None if it had finished."""
    op = random_ops(rng, files, known_versions(root) if before else [], 1, only=action)[0]
    proc = subprocess.Popen(cli_args(op, root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    # From its start the CLI takes about 0.15 s to deploy (its file checks read the weights) and
    # 0.1 s for the rest, more on a busy machine: kill somewhere in there.
    killed = kill_at_random(proc, rng.uniform(0.02, 0.2) if op["op"] == "deploy" else rng.uniform(0.02, 0.14))
    out, err = proc.communicate()
    done: list[tuple[str, int]] = []
    if not killed:
        assert proc.returncode in (0, 1), f"{where}: {cli_args(op, root)} exited {proc.returncode}: {err}"
        if proc.returncode == 0:
            done = [(op["op"], int(json.loads(out)["change"]["audit_id"]))]
    audit = check_after(root, before, done, where)
    if not killed and proc.returncode == 1:
        assert audit == before, f"{where}: a refusal wrote an audit entry"
    new = audit[len(before):]
    assert all(e.action == op["op"] for e in new), f"{where}: {op} made {[e.action for e in new]}"
    return (f"cli {op['op']}" if killed else None), audit


def chaos(index: int, base: Path) -> Counter[str]:
    """KILLS kills in one workspace; counts those that landed while the process still ran. The CLI
    rounds take deploy, canary, promote, rollback and abort in turn, so each is killed often."""
    rng = random.Random(1100 + index)
    root = init_workspace(base / f"ws{index}").root
    files = pool(root)
    audit: list[AuditEntry] = []
    kills: Counter[str] = Counter()
    actions = itertools.cycle(["deploy", "canary", "promote", "rollback", "abort"])
    for n in itertools.count():
        if sum(kills.values()) >= KILLS or n >= MAX_ROUNDS:
            break
        where = f"workspace {index}, round {n}"
        if rng.random() < CLI_SHARE:
            killed, audit = cli_round(root, rng, files, audit, where, next(actions))
        else:
            killed, audit = driver_round(root, rng, files, audit, where)
        kills.update([killed] if killed else [])
    with Registry(Workspace(root)) as reg:  # and it still works: one more of each operation
        versions = [v.version for v in reg.versions("m") if v.status != "corrupt"]
        assert versions, "nothing was ever deployed"
    return kills


def test_sigkill_at_random_points_leaves_a_sound_registry(tmp_path: Path) -> None:
    start = time.monotonic()
    with ThreadPoolExecutor(WORKSPACES) as ex:
        kills = sum(ex.map(chaos, range(WORKSPACES), [tmp_path] * WORKSPACES), Counter())
    took = time.monotonic() - start
    total = sum(kills.values())
    assert total >= 200, f"only {total} processes were still running when killed ({MAX_ROUNDS} rounds each)"
    assert all(kills[f"cli {a}"] >= 3 for a in ("deploy", "canary", "promote", "rollback")), kills
    print(f"{total} kills in {took:.1f} s: {dict(sorted(kills.items()))}")


def test_the_registry_works_on_after_the_kills(tmp_path: Path) -> None:
    """After a burst of kills mid-deploy, every operation still works and the leftovers are harmless."""
    root = init_workspace(tmp_path / "ws").root
    files = pool(root)
    rng = random.Random(7)
    audit: list[AuditEntry] = []
    for n in range(12):
        _, audit = driver_round(root, rng, files[-4:], audit, f"round {n}")  # the large files: kills mid-copy
    with Registry(Workspace(root)) as reg:
        change = reg.deploy("m", candidate(files[0]), version="after")
        reg.promote("m", "after")
        assert reg.model("m").active == "after" and change.audit_id == reg.audit()[-1].id - 1
        assert [p for _, p in reg.verify("m") if p] == []
        orphans = set(reg.orphans())
        referenced = {v.checksum for v in reg.versions()}
        assert not orphans & referenced
    assert consistency_problems(root) == []


KILL_MID_SCHEMA = """
import os, signal, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how", ["empty file", "killed mid-schema"])
def test_a_database_file_killed_before_its_schema_reads_as_empty(tmp_path: Path, how: str) -> None:
    """A kill while the first deploy creates registry.db can leave the file without its tables."""
    ws = init_workspace(tmp_path / "ws")
    db = ws.registry_dir / DB_FILE
    if how == "empty file":
        db.write_bytes(b"")
    else:
        proc = subprocess.run([sys.executable, "-c", KILL_MID_SCHEMA, str(db)], timeout=30)
        assert proc.returncode == -signal.SIGKILL and db.exists()
    with Registry(ws) as reg:
        assert (reg.models(), reg.versions(), reg.audit(), reg.verify(), reg.snapshot()) == ([], [], [], [],
                                                                                            ([], [], []))
    with Registry(ws) as reg:
        reg.deploy("m", candidate(write_artifact(tmp_path / "a.safetensors", seed=1)))
        assert [v.version for v in reg.versions("m")] == ["v1"]
    assert consistency_problems(ws.root) == []
