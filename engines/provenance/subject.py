"""What a report, a verification or a check is about: a run, or a registered version.

`resolve(ws, text)`: `MODEL@VERSION` is a registry version (its run, when it came from one, is
resolved too); anything else is a run id of the workspace or the path of a run folder. Ids
are validated before they name a path; a subject that does not exist is a SubjectError, whose
text is the one line the CLI prints (exit 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainledger.engines.registry.types import Version
from trainledger.engines.safeio import open_regular_file
from trainledger.engines.workspace import InvalidId, Workspace, validate_id

RUN_JSON_LIMIT = 16 << 20


class SubjectError(ValueError):
    """The subject cannot be found or read: one line for the user."""


@dataclass(frozen=True)
class Subject:
    label: str  # "RUN" (the run id) or "MODEL@VERSION"
    run_id: str | None  # the run (a version's source run, when it came from one)
    run_dir: Path | None  # runs/<run_id>/ (or the folder given), None for a version with no run
    run: dict[str, Any]  # run.json, {} when there is no run or it cannot be read
    kind: str | None  # the model kind: run.json's `model`, else the version's kind
    model: str | None = None  # registry model name, for a version
    version: Version | None = None

    @property
    def is_version(self) -> bool:
        return self.version is not None


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """run.json as an object, {} when it is missing or broken (never blocks: regular files only)."""
    try:
        with open_regular_file(run_dir / "run.json") as f:
            data = f.read(RUN_JSON_LIMIT + 1)
    except OSError:
        return {}
    if len(data) > RUN_JSON_LIMIT:
        return {}
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _run(ws: Workspace, text: str) -> tuple[str, Path]:
    path = Path(text)
    if ("/" in text or text.startswith(".")) and path.is_dir():
        return path.resolve().name, path.resolve()
    try:
        run_id = validate_id(text, "run id")
    except InvalidId as exc:
        raise SubjectError(str(exc)) from None
    run_dir = ws.run_dir(run_id)
    if not run_dir.is_dir():
        raise SubjectError(f"no run {run_id!r} in {ws.runs_dir}")
    return run_id, run_dir


def resolve(ws: Workspace, text: str) -> Subject:
    if "@" in text:
        from trainledger.engines.registry.store import Registry
        from trainledger.engines.registry.types import RegistryError

        model, _, label = text.partition("@")
        try:
            validate_id(model, "model name")
            validate_id(label, "version")
        except InvalidId as exc:
            raise SubjectError(str(exc)) from None
        try:
            with Registry(ws) as reg:
                version = reg.version(model, label)
        except RegistryError as exc:
            raise SubjectError(str(exc)) from None
        run_dir = None
        if version.run_id:
            try:
                candidate = ws.run_dir(version.run_id)
                run_dir = candidate if candidate.is_dir() else None
            except InvalidId:
                run_dir = None
        run = read_run_json(run_dir) if run_dir else {}
        kind = run.get("model") if isinstance(run.get("model"), str) else version.kind
        return Subject(f"{model}@{label}", version.run_id, run_dir, run, kind, model, version)
    run_id, run_dir = _run(ws, text)
    run = read_run_json(run_dir)
    kind = run.get("model") if isinstance(run.get("model"), str) else None
    return Subject(run_id, run_id, run_dir, run, kind)
