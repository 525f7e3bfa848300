"""Run registry operations in a process of their own, for the fault and concurrency tests.

`python registry_driver.py WORKSPACE OPS_JSON` runs a list of operations through
store.Registry and prints one flushed line per operation: `ok ACTION AUDIT_ID`,
`refused ACTION<TAB>reason`, or `error ACTION<TAB>repr` for anything that is neither
(a "database is locked" would show here). It prints `ready` once imported and opened,
so a test can kill it at a random moment of the operations, not of the interpreter's
start. OPS_JSON is the JSON text itself or the path of a file holding it; each
operation is an object: {"op": "deploy", "model", "file", "version"?, "kind"?},
{"op": "canary", "model", "version", "traffic"}, {"op": "promote"|"rollback", "model",
"version"?}, {"op": "abort", "model"}, {"op": "prune", "model", "keep"}, {"op": "verify",
"model"?}; and {"op": "until", "time": T}, which prints nothing and waits until the
clock reads T, so that several drivers start their operations together.

The same module holds what the tests share: artifact files to deploy and the checks of
a registry's consistency after kills and races (`consistency_problems`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainledger.engines.registry import blobs
from trainledger.engines.registry.store import DB_FILE, Registry
from trainledger.engines.registry.types import Candidate, Change, RegistryError, SourceFile
from trainledger.engines.workspace import Workspace

DRIVER = Path(__file__).resolve()


def candidate(path: Path, run_id: str | None = "r1", kind: str | None = "lvm-gru") -> Candidate:
    return Candidate(kind=kind, files=(SourceFile("model.safetensors", Path(path)),), source="test", run_id=run_id)


def write_artifact(path: Path, seed: int, shape: tuple[int, int] = (64, 64)) -> Path:
    """A small safetensors file whose bytes depend on `seed` (numpy only, no torch)."""
    import numpy as np
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"w": rng.random(shape).astype(np.float32)}, str(path))
    return path


def run_op(reg: Registry, op: dict[str, Any]) -> Change | list[Any]:
    kind = op["op"]
    model = op.get("model", "m")
    if kind == "deploy":
        cand = candidate(Path(op["file"]), op.get("run_id", "r1"), op.get("kind", "lvm-gru"))
        return reg.deploy(model, cand, version=op.get("version"), reason=op.get("reason", ""))
    if kind == "canary":
        return reg.canary(model, op["version"], op["traffic"])
    if kind == "promote":
        return reg.promote(model, op.get("version"))
    if kind == "abort":
        return reg.abort(model)
    if kind == "rollback":
        return reg.rollback(model, op.get("version"))
    if kind == "prune":
        return reg.prune(model, op["keep"])
    if kind == "verify":
        return reg.verify(op.get("model"))
    raise ValueError(f"unknown operation {kind!r}")


def main(argv: list[str]) -> int:
    root, spec = Path(argv[0]), argv[1]
    ops = json.loads(spec if spec.lstrip().startswith("[") else Path(spec).read_text())
    out = sys.stdout
    failed = 0
    with Registry(Workspace(root)) as reg:
        reg.models()  # opens the database when there is one; creates nothing
        print("ready", file=out, flush=True)
        for op in ops:
            if op["op"] == "until":
                time.sleep(max(0.0, op["time"] - time.time()))
                continue
            try:
                done = run_op(reg, op)
            except RegistryError as exc:
                print(f"refused {op['op']}\t{str(exc)!r}", file=out, flush=True)
                continue
            except Exception as exc:  # noqa: BLE001 - said, and the test fails on it
                print(f"error {op['op']}\t{exc!r}", file=out, flush=True)
                failed += 1
                continue
            audit_id = done.audit_id if isinstance(done, Change) else "-"
            print(f"ok {op['op']} {audit_id}", file=out, flush=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------- shared checks

def ok_ids(lines: Iterable[str]) -> list[int]:
    """The audit ids of the `ok` lines (an `ok` of verify carries `-`: not counted here)."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ok" and parts[2].isdigit():
            out.append(int(parts[2]))
    return out


def consistency_problems(root: Path) -> list[str]:
    """Everything wrong with the registry of workspace `root`, in words; [] when it is sound.

    It opens; PRAGMA integrity_check says ok; audit ids run 1..N without a gap; at most one
    canary per model, never the active one, traffic 1-99 with a canary and 0 without; the
    active, canary and rollback target exist and are not pruned; the active and the canary
    verify; every artifact row names a blob whose bytes hash right; and nothing under
    artifacts/tmp is referenced (a temporary name is never a sha256)."""
    problems: list[str] = []
    db_path = root / "registry" / DB_FILE
    if not db_path.exists():
        return problems
    conn = sqlite3.connect(str(db_path), timeout=60)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            problems.append(f"integrity_check: {check}")
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"foreign_key_check: {fk}")
    except sqlite3.DatabaseError as exc:
        return [f"the database does not open: {exc!r}"]
    finally:
        conn.close()
    reg = Registry(Workspace(root))
    try:
        models, versions, audit = reg.snapshot()
    except Exception as exc:  # noqa: BLE001 - a registry that does not open is the finding
        return [*problems, f"the registry does not open: {exc!r}"]
    finally:
        reg.close()
    ids = [e.id for e in audit]
    if ids != list(range(1, len(ids) + 1)):
        problems.append(f"audit ids have gaps or repeats: {ids}")
    by_name = {(v.model, v.version): v for v in versions}
    for m in models:
        for role in ("active", "canary", "previous"):
            name = getattr(m, role)
            if name is None:
                continue
            v = by_name.get((m.name, name))
            if v is None:
                problems.append(f"{m.name}: {role} {name} has no version record")
            elif v.pruned_at is not None:
                problems.append(f"{m.name}: {role} {name} was pruned")
            elif role != "previous" and reg._verify_bytes(v) is not None:
                problems.append(f"{m.name}: {role} {name} does not verify: {reg._verify_bytes(v)}")
        if m.canary is not None and m.canary == m.active:
            problems.append(f"{m.name}: {m.canary} is both active and canary")
        if (m.canary is None) != (m.traffic == 0) or not 0 <= m.traffic <= 99:
            problems.append(f"{m.name}: canary {m.canary} at {m.traffic} %")
        live = [v.version for v in versions if v.model == m.name and v.status == "canary"]
        if len(live) > (1 if m.canary else 0) or (m.canary and live != [m.canary]):
            problems.append(f"{m.name}: versions with status canary {live}, the model says {m.canary}")
        actives = [v.version for v in versions if v.model == m.name and v.status == "active"]
        if actives != ([m.active] if m.active else []):
            problems.append(f"{m.name}: versions with status active {actives}, the model says {m.active}")
        last = next((e for e in reversed(audit) if e.model == m.name), None)
        if last is not None and (last.active, last.canary, last.traffic) != (m.active, m.canary, m.traffic):
            problems.append(f"{m.name}: the newest audit entry says {last.active}/{last.canary}/{last.traffic}, "
                            f"the model {m.active}/{m.canary}/{m.traffic}")  # fmt: skip
    for v in versions:
        if v.pruned_at is not None:
            continue
        for a in v.artifacts:
            problem = blobs.check(root / "registry", a.sha256, a.bytes)
            if problem:
                problems.append(f"{v.model} {v.version} {a.name}: blob {a.sha256[:12]} {problem}")
            if len(v.artifacts) == 1 and v.checksum != a.sha256:
                problems.append(f"{v.model} {v.version}: checksum {v.checksum[:12]} is not its file's sha256")
    tmp = root / "registry" / blobs.ARTIFACTS / "tmp"
    shas = {a.sha256 for v in versions for a in v.artifacts}
    for p in tmp.iterdir() if tmp.is_dir() else ():
        if p.name in shas:
            problems.append(f"artifacts/tmp/{p.name} is referenced")
    return problems


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


if __name__ == "__main__":
    os.environ.setdefault("TRAINLEDGER_USER", "driver")
    sys.exit(main(sys.argv[1:]))
