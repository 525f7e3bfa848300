"""`trainledger registry deploy`: build the candidate, check it, print each check, then register it.

Kept apart from cli.py because it is the one command that reaches outside the registry: it
reads a run folder (or a folder inside the workspace), runs the file checks (sanity.py) and,
unless `--no-probe`, loads the weights with the model kind's code and runs a probe batch
(probe.py). The probe imports torch, so it is imported here, lazily, and only when it runs:
every other registry command starts without torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trainledger.engines.registry.cli import (
    CHECK_GLYPHS,
    EXIT_OK,
    EXIT_REFUSED,
    change_dict,
    emit,
    say,
    workspace,
)
from trainledger.engines.registry.types import Candidate, Check, RegistryError, RegistryUsageError


def check_glyph(c: Check) -> str:
    return CHECK_GLYPHS["skipped" if c.skipped else ("ok" if c.ok else "failed")]


def candidate_text(c: Candidate) -> str:
    """`run r1, checkpoint best (epoch 6 of 10): the best, not the last` (the folder's path otherwise)."""
    if c.epoch is None:
        return c.source
    best = "the best" if c.is_best else "not the best"
    last = "the last" if c.is_last else "not the last"
    if "epoch" in c.source:  # source.py already names the epoch
        return f"{c.source}: {best}, {last}"
    of = f" of {c.last_epoch}" if c.last_epoch is not None else ""
    return f"{c.source}: epoch {c.epoch}{of}, {best}, {last}"


def inside_workspace(ws: Any, path: str) -> Path:
    """`--path` resolved (symlinks followed) and strictly inside the workspace, else RegistryUsageError."""
    root = Path(ws.root).resolve()
    resolved = Path(path).expanduser().resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise RegistryUsageError(f"--path {path}: {resolved} is outside the workspace {root}; "
                                 f"copy the files into a folder of the workspace first")  # fmt: skip
    if not resolved.is_dir():
        raise RegistryUsageError(f"--path {path}: not a folder")
    return resolved


def build_candidate(ws: Any, args: argparse.Namespace) -> Candidate:
    from trainledger.engines.registry import source

    if args.run is not None:
        from trainledger.engines.workspace import validate_id

        run = validate_id(args.run, "run id")
        if not ws.run_dir(run).is_dir():
            known = ws.run_ids()
            listed = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "") if known else "none"
            raise RegistryError(f"no run {run!r} in the workspace {ws.root} (runs: {listed})")
        return source.candidate_from_run(ws, run, checkpoint=args.checkpoint)
    return source.candidate_from_path(inside_workspace(ws, args.path), kind=args.kind)


def run_checks(ws: Any, candidate: Candidate, probe: bool) -> list[Check]:
    """The file checks, then (when they pass and `probe`) the load-and-probe checks."""
    from trainledger.engines.registry import sanity

    checks = list(sanity.file_checks(candidate))
    if not probe:
        return [*checks, *_skipped("not run (--no-probe)")]
    if any(not c.ok and not c.skipped for c in checks):
        return [*checks, *_skipped("not run: a file check failed")]
    from trainledger.engines.registry import probe as probe_mod  # imports torch: only here

    return [*checks, *probe_mod.load_and_probe(ws, candidate)]


def _skipped(why: str) -> list[Check]:
    """The probe's two checks (probe.py names them so), marked skipped: not a failure."""
    return [Check("loads", True, why, skipped=True), Check("probe", True, why, skipped=True)]


def cmd_deploy(args: argparse.Namespace) -> int:
    if args.kind is not None and args.run is not None:
        raise RegistryUsageError("--kind is for --path: a run's kind is the model it trained")
    if args.checkpoint != "best" and args.path is not None:
        raise RegistryUsageError("--checkpoint is for --run")
    ws = workspace(args)
    candidate = build_candidate(ws, args)
    if not args.json:
        say(f"candidate {candidate_text(candidate)}")
        for f in candidate.files:
            say(f"  file {f.name}")
    checks = run_checks(ws, candidate, probe=not args.no_probe)
    if not args.json:
        for c in checks:
            say(f"  {check_glyph(c)} {c.name}" + (f": {c.detail}" if c.detail else ""))
    from trainledger.engines.registry.store import Registry

    with Registry(ws) as reg:
        change = reg.deploy(args.model, candidate, version=args.version, reason=args.reason, checks=checks,
                            dry_run=args.dry_run)  # fmt: skip
    refused = change.dry_run and change.details.get("ok") is False
    if args.json:
        emit({"ok": not refused, "candidate": _candidate_dict(candidate), "checks": [c.to_dict() for c in checks],
              "change": change_dict(change)})  # fmt: skip
        return EXIT_REFUSED if refused else EXIT_OK
    if refused:  # a dry run that would refuse says so the way a refusal does
        raise RegistryError(change.message)
    say(change.message)
    return EXIT_OK


def _candidate_dict(c: Candidate) -> dict[str, Any]:
    return {
        "kind": c.kind, "source": c.source, "run_id": c.run_id, "checkpoint": c.checkpoint, "epoch": c.epoch,
        "step": c.step, "is_best": c.is_best, "is_last": c.is_last, "last_epoch": c.last_epoch,
        "files": [{"name": f.name, "path": str(f.path), "sha256": f.sha256} for f in c.files],
        "dataset_path": c.dataset_path, "dataset_sha256": c.dataset_sha256, "reproduce": c.reproduce,
    }  # fmt: skip
