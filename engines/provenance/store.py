"""Where reports are kept: a run's in `runs/<run-id>/report.json`, a version's in
`registry/reports/<model>/<version>.json`. Written atomically; every id that names a path is
validated first. Torch-free (the console loads reports).
"""

from __future__ import annotations

import json
from pathlib import Path

from trainledger.engines.provenance.model import Report
from trainledger.engines.provenance.subject import Subject
from trainledger.engines.safeio import read_regular
from trainledger.engines.workspace import Workspace, atomic_write_json, validate_id

REPORT_FILE = "report.json"
REPORTS_DIR = "reports"  # under registry/
REPORT_LIMIT = 64 << 20


class StoreError(ValueError):
    """The subject has nowhere to keep a report (a version with no model name)."""


def report_path(ws: Workspace, subject: Subject) -> Path:
    if subject.version is not None:
        model = validate_id(subject.model or subject.version.model, "model name")
        version = validate_id(subject.version.version, "version")
        return ws.registry_dir / REPORTS_DIR / model / f"{version}.json"
    if subject.run_dir is None:
        raise StoreError(f"{subject.label}: no run folder to keep its report in")
    if subject.run_id is not None and subject.run_dir == ws.runs_dir / subject.run_id:
        return ws.run_dir(subject.run_id) / REPORT_FILE  # validates the id
    return subject.run_dir / REPORT_FILE  # a run folder given by its path


def save_report(ws: Workspace, subject: Subject, report: Report) -> Path:
    """Write the report where `load_report` finds it; returns the path."""
    path = report_path(ws, subject)
    atomic_write_json(path, report.to_json())
    return path


def load_report(ws: Workspace, subject: Subject) -> Report | None:
    """The stored report, None when there is none. ValueError for one that is not a
    trainledger-report/1 document, OSError for one that cannot be read (not a regular file,
    over the limit)."""
    path = report_path(ws, subject)
    try:
        data = read_regular(path, REPORT_LIMIT)
    except FileNotFoundError:
        return None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path.name}: not JSON ({str(exc)[:120]})") from None
    return Report.from_json(obj)
