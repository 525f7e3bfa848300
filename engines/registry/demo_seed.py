"""The demo's registry: a newcomer finds a model with an active version, a rollback target and a
canary at 10 % in the Versions pane without typing anything.

`trainledger demo` starts this as a process of its own (engines/demo.py, beside the trainer), so
the console's UI thread never waits on a copy or a database lock and the console never imports
torch (the checks are sanity.file_checks only; the weights are not loaded). It watches the
demo run's best checkpoint and, each time the best moves to new bytes, takes the next step:

    deploy v1 -> promote v1 -> deploy v2 -> promote v2 (v1 stays the rollback target)
    -> deploy v3 -> canary v3 at 10 %

and exits. Each step is chosen from what the registry holds, so a second demo on the same
workspace adds nothing, and a demo killed half way is finished by the next one. A lock file
keeps two demos on one workspace from seeding at once.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from trainledger.engines.registry.store import Registry, version_checksum
from trainledger.engines.registry.types import Candidate, RegistryError
from trainledger.engines.workspace import Workspace, open_workspace, read_run_info, validate_id

MODEL = "demo-vae"
CANARY_TRAFFIC = 10
LOCK_FILE = "demo-seed.lock"  # in the workspace's .trainledger/ state folder
POLL_S = 0.5
TIMEOUT_S = 900.0

DONE, WAITING = "done", "waiting"


def step(ws: Workspace, reg: Registry, run_id: str) -> str:
    """Take the next seeding step, if one can be taken now: its message, WAITING (for a new best
    checkpoint) or DONE (the model has its active version, rollback target and canary, or an
    operator has moved it on: nothing is touched then)."""
    state = next((m for m in reg.models() if m.name == MODEL), None)
    versions = reg.versions(MODEL) if state else []
    names = [v.version for v in versions]
    if not versions:
        return _deploy(ws, reg, run_id, set(), "the first best checkpoint")
    assert state is not None
    if len(versions) == 1:
        if state.active is None:
            return reg.promote(MODEL, names[0], reason="demo: the first version goes live").message
        return _deploy(ws, reg, run_id, {v.checksum for v in versions}, "a better checkpoint")
    if len(versions) == 2:
        if state.active == names[0] and state.canary is None:
            return reg.promote(MODEL, names[1], reason=f"demo: a better checkpoint; {names[0]} stays the "
                               "rollback target").message  # fmt: skip
        if state.active == names[1] and state.canary is None:
            return _deploy(ws, reg, run_id, {v.checksum for v in versions}, "the newest best checkpoint")
        return DONE
    newest = versions[2]
    if (len(versions) == 3 and state.active == names[1] and state.canary is None and newest.status == "inactive"
            and newest.deployed_at is None):  # fmt: skip
        return reg.canary(MODEL, newest.version, CANARY_TRAFFIC,
                          reason=f"demo: the newest best on canary at {CANARY_TRAFFIC} %").message  # fmt: skip
    return DONE


def _deploy(ws: Workspace, reg: Registry, run_id: str, known: set[str], what: str) -> str:
    """Deploy the run's best checkpoint (or, once the run has ended, its last) if its bytes are new."""
    from trainledger.engines.registry import sanity, source

    for checkpoint in ("best", "last") if _ended(ws, run_id) else ("best",):
        try:
            candidate = source.candidate_from_run(ws, run_id, checkpoint=checkpoint)
        except (RegistryError, OSError):
            continue  # no such checkpoint yet
        if _checksum(candidate) in known:
            continue  # the best has not moved since the last version
        checks = sanity.file_checks(candidate)
        reason = f"demo: {what} of run {run_id}"
        return reg.deploy(MODEL, candidate, reason=reason, checks=checks).message
    return WAITING


def _ended(ws: Workspace, run_id: str) -> bool:
    """The run has finished, stopped or was lost (not: running, or no run.json yet)."""
    info = read_run_info(ws.run_dir(run_id))
    return info.problem is None and info.status not in ("running", "unknown")


def _checksum(candidate: Candidate) -> str:
    pairs = []
    for f in candidate.files:
        sha = f.sha256
        if sha is None:
            h = hashlib.sha256()
            with open(f.path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            sha = h.hexdigest()
        pairs.append((f.name, sha))
    return version_checksum(pairs)


def seed(ws: Workspace, run_id: str, *, poll_s: float = POLL_S, timeout_s: float = TIMEOUT_S,
         keep_going: Callable[[], bool] = lambda: True, log: Callable[[str], None] = print) -> bool:  # fmt: skip
    """Step until DONE (True); False when the run ended with no new checkpoint, at the timeout, or
    when `keep_going` says stop. A refused step (a checkpoint rewritten while it was copied) is
    said once and tried again at the next poll."""
    validate_id(run_id, "run id")
    lock = _lock(ws)
    if lock is None:
        log("another demo is seeding this workspace's registry; leaving it to that one")
        return False
    deadline = time.monotonic() + timeout_s
    said = ""
    with lock, Registry(ws) as reg:
        while keep_going() and time.monotonic() < deadline:
            ended = _ended(ws, run_id)  # before the step, which then takes the last checkpoint too
            try:
                result = step(ws, reg, run_id)
            except RegistryError as exc:
                result = f"not yet: {exc}"
            if result == DONE:
                log(f"{MODEL}: active version, rollback target and canary at {CANARY_TRAFFIC} % are in place")
                return True
            if result == WAITING and ended:
                log(f"run {run_id} ended before it gave {MODEL} enough checkpoints; stopping")
                return False
            if result not in (WAITING, said):
                log(result)
                said = result
            if result == WAITING or result.startswith("not yet"):
                time.sleep(poll_s)
    return False


def _lock(ws: Workspace):  # noqa: ANN202 - an open file holding the lock, or None
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    fh = open(ws.state_dir / LOCK_FILE, "a")  # noqa: SIM115 - held for the whole seeding
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainledger.engines.registry.demo_seed",
                                description=f"register a demo run's checkpoints as {MODEL}: active, rollback "
                                f"target, canary at {CANARY_TRAFFIC} %")  # fmt: skip
    p.add_argument("--workspace", required=True, type=Path)
    p.add_argument("--run", required=True, help="the demo run whose best checkpoints become versions")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"give up after this many seconds ({TIMEOUT_S:g})")
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the parent process goes away")
    args = p.parse_args(argv)
    from trainledger.engines.pids import parent_alive

    parent = os.getppid()

    def log(text: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)

    ok = seed(open_workspace(args.workspace), args.run, timeout_s=args.timeout, log=log,
              keep_going=(lambda: parent_alive(parent)) if args.exit_with_parent else (lambda: True))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
