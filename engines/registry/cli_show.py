"""The reading side of `trainledger registry`: list, show, history (and --at), verify, export.

Kept apart from cli.py so the parser and the operations stay short. Reading never creates a
workspace or a registry: with none, `list` and `export` print an empty registry and `show`
or `history` say the model is unknown. Every name and reason is printed through
safetext.clean; JSON is ASCII-only. The dict helpers are the records' JSON form, shared by
`list --json`, `show --json` and `export --json`.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import fields
from datetime import datetime
from typing import Any

from trainledger.engines.registry.cli import (
    EXIT_OK,
    EXIT_REFUSED,
    STATUS_GLYPHS,
    emit,
    registry,
    say,
)
from trainledger.engines.registry.types import AuditEntry, ModelState, RegistryUsageError, Version

EXPORT_SCHEMA = "trainledger-registry-export/1"


# --------------------------------------------------------------------------- records as JSON

_VERSION_FIELDS = tuple(f.name for f in fields(Version))
_MODEL_FIELDS = tuple(f.name for f in fields(ModelState))
_AUDIT_FIELDS = tuple(f.name for f in fields(AuditEntry))


def version_dict(v: Version) -> dict[str, Any]:
    d = {name: getattr(v, name) for name in _VERSION_FIELDS}
    d["artifacts"] = [{"name": a.name, "sha256": a.sha256, "bytes": a.bytes} for a in v.artifacts]
    d["checks"] = [c.to_dict() for c in v.checks]
    return d


def model_dict(m: ModelState) -> dict[str, Any]:
    return {name: getattr(m, name) for name in _MODEL_FIELDS}


def audit_dict(e: AuditEntry) -> dict[str, Any]:
    return {name: getattr(e, name) for name in _AUDIT_FIELDS}


# --------------------------------------------------------------------------- formatting

def when(t: float | None) -> str:
    """A time as local `YYYY-MM-DD HH:MM:SS`, or `-`."""
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def status_word(status: str) -> str:
    return f"{STATUS_GLYPHS.get(status, '?')} {status.replace('_', ' ')}"


def epoch_text(v: Version) -> str:
    """`6 best`, `10 last`, `2 best/last`, `4`, or `-` for a folder."""
    if v.epoch is None:
        return "-"
    marks = [m for m, on in (("best", v.is_best), ("last", v.is_last)) if on]
    return f"{v.epoch} {'/'.join(marks)}".strip()


def live_text(active: str | None, canary: str | None, traffic: int) -> str:
    text = f"active {active or 'none'}"
    return text + (f", canary {canary} at {traffic} %" if canary else "")


def model_line(m: ModelState) -> str:
    kind = f" ({m.kind})" if m.kind else ""
    line = f"{m.name}{kind}: {live_text(m.active, m.canary, m.traffic)}; rollback target {m.previous or 'none'}"
    if m.condition == "aborted":
        line += f"; aborted, serving {m.active or 'nothing'}"
        if m.condition_reason:
            line += f" ({m.condition_reason})"
    return line


def parse_moment(text: str) -> float:
    """`--at`: a unix time, or ISO 8601 (`2026-12-02T10:00:00`, `2026-12-02 10:00`, local unless
    it carries an offset), as a unix time. RegistryUsageError for anything else."""
    value = text.strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        return float(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise RegistryUsageError(
            f"--at {text!r}: expected ISO 8601 (2026-12-02T10:00:00, '2026-12-02 10:00') or a unix time"
        ) from None
    return moment.timestamp()  # a naive time is local time


# --------------------------------------------------------------------------- list

def cmd_list(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        if args.model is not None:
            models = [reg.model(args.model)]  # an unknown model is a refusal
            versions = reg.versions(args.model)
        else:
            models = reg.models()
            versions = reg.versions()
    by_model: dict[str, list[Version]] = {}
    for v in versions:
        by_model.setdefault(v.model, []).append(v)
    if args.json:
        emit({"models": [{**model_dict(m), "versions": [version_dict(v) for v in by_model.get(m.name, [])]}
                         for m in models]})  # fmt: skip
        return EXIT_OK
    if not models:
        say("the registry is empty: trainledger registry deploy MODEL --run RUN")
        return EXIT_OK
    header = ("VERSION", "STATUS", "TRAFFIC", "CREATED", "RUN", "EPOCH", "CHECKSUM")
    for i, m in enumerate(models):
        if i:
            say("")
        say(model_line(m))
        rows = [header]
        for v in by_model.get(m.name, []):
            traffic = m.traffic if v.version == m.canary else (100 - m.traffic if v.version == m.active else None)
            status = status_word("canary" if v.version == m.canary else v.status)
            rows.append((v.version, status, "" if traffic is None else f"{traffic} %", when(v.created_at),
                         v.run_id or "-", epoch_text(v), v.checksum[:12]))  # fmt: skip
        widths = [max(len(str(r[c])) for r in rows) for c in range(len(header))]
        for r in rows:
            cells = [str(r[c]).rjust(widths[c]) if c == 2 else str(r[c]).ljust(widths[c]) for c in range(len(r))]
            say("  " + "  ".join(cells).rstrip())
    return EXIT_OK


# --------------------------------------------------------------------------- show

def _names(e: AuditEntry, version: str) -> bool:
    corrupt = e.details.get("corrupt") if isinstance(e.details, dict) else None
    return version in (e.from_version, e.to_version) or (isinstance(corrupt, dict) and version in corrupt)


def cmd_show(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        v = reg.version(args.model, args.version)
        entries = [e for e in reg.audit(args.model) if _names(e, v.version)]
    if args.json:
        emit({"version": version_dict(v), "audit": [audit_dict(e) for e in entries]})
        return EXIT_OK
    say(f"{v.model} {v.version}  {status_word(v.status)}")
    rows = [
        ("kind", v.kind), ("source", v.source), ("run", v.run_id), ("checkpoint", v.checkpoint),
        ("epoch", epoch_text(v) if v.epoch is not None else None), ("step", v.step), ("base model", v.base_model),
        ("training samples", v.training_samples), ("dataset", v.dataset_path), ("dataset sha256", v.dataset_sha256),
        ("created", when(v.created_at)), ("deployed", when(v.deployed_at) if v.deployed_at else "never"),
        ("checksum", v.checksum),
        ("verified", when(v.verified_at) if v.verified_at else "never"),
    ]  # fmt: skip
    if v.corrupt_detail:
        rows.append(("CORRUPT", v.corrupt_detail))
    if v.pruned_at:
        rows.append(("pruned", f"{when(v.pruned_at)} (artifacts deleted, the record kept)"))
    for key, value in rows:
        if value is not None:
            say(f"  {key:<17} {value}")
    if v.metrics:
        say("  metrics")
        for name in sorted(v.metrics):
            say(f"    {name:<24} {v.metrics[name]}")
    say("  artifacts")
    for a in v.artifacts:
        say(f"    {a.name}  {a.bytes} bytes  sha256 {a.sha256}")
    if v.checks:
        say("  checks")
        for c in v.checks:
            glyph = "–" if c.skipped else ("✔" if c.ok else "✖")
            say(f"    {glyph} {c.name}" + (f": {c.detail}" if c.detail else ""))
    say(f"  reproduce         {v.reproduce or '- (not known: deployed from a folder)'}")
    say("  audit")
    for e in entries:
        say("    " + audit_line(e))
    return EXIT_OK


# --------------------------------------------------------------------------- history

def audit_line(e: AuditEntry) -> str:
    moved = f"{e.from_version or '-'} -> {e.to_version or '-'}"
    reason = f"  \"{e.reason}\"" if e.reason else ""
    live = live_text(e.active, e.canary, e.traffic)
    return f"{when(e.time)}  {e.user}@{e.host}  {e.action:<8} {moved}{reason}  [{live}]"


def cmd_history(args: argparse.Namespace) -> int:
    moment = parse_moment(args.at) if args.at is not None else None
    with registry(args) as reg:
        state = reg.model(args.model)
        if moment is not None:
            entry = reg.state_at(args.model, moment)
            return _print_at(args, state, moment, entry)
        entries = reg.audit(args.model)
    if args.json:
        emit({"model": state.name, "audit": [audit_dict(e) for e in entries]})
        return EXIT_OK
    say(f"{state.name}: {len(entries)} audit entr{'y' if len(entries) == 1 else 'ies'}; now {model_line(state)}")
    for e in entries:
        say("  " + audit_line(e))
        figures = e.details.get("figures") if isinstance(e.details, dict) else None
        if figures:
            say(f"      figures: {figures}")
    return EXIT_OK


def _print_at(args: argparse.Namespace, state: ModelState, moment: float, entry: AuditEntry | None) -> int:
    if args.json:
        live = {"active": entry.active, "canary": entry.canary, "traffic": entry.traffic} if entry else \
            {"active": None, "canary": None, "traffic": 0}  # fmt: skip
        emit({"model": state.name, "at": moment, **live, "since": audit_dict(entry) if entry else None})
        return EXIT_OK
    if entry is None:
        say(f"{state.name} at {when(moment)}: nothing was live yet (no audit entry before then)")
        return EXIT_OK
    say(f"{state.name} at {when(moment)}: {live_text(entry.active, entry.canary, entry.traffic)}")
    say(f"  since {when(entry.time)}: {entry.action} by {entry.user}@{entry.host}"
        + (f" (\"{entry.reason}\")" if entry.reason else ""))  # fmt: skip
    return EXIT_OK


# --------------------------------------------------------------------------- verify, export

def cmd_verify(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        results = reg.verify(args.model, reason=args.reason)
    bad = [(v, p) for v, p in results if p]
    if args.json:
        emit({"ok": not bad, "checked": len(results),
              "versions": [{"model": v.model, "version": v.version, "ok": p is None, "problem": p}
                           for v, p in results]})  # fmt: skip
        return EXIT_REFUSED if bad else EXIT_OK
    if not results:
        say("nothing to verify: no kept artifacts" + (f" for {args.model}" if args.model else ""))
    for v, problem in results:
        say(f"{v.model} {v.version}  " + ("ok" if problem is None else f"CORRUPT: {problem}"))
    if results:
        say(f"{len(results)} version(s) verified, {len(bad)} corrupt")
    return EXIT_REFUSED if bad else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    with registry(args) as reg:
        models, versions, audit = reg.snapshot()
    if args.json:
        import json

        doc = {"schema": EXPORT_SCHEMA, "models": [model_dict(m) for m in models],
               "versions": [version_dict(v) for v in versions], "audit": [audit_dict(e) for e in audit]}
        print(json.dumps(doc, ensure_ascii=True, sort_keys=True, indent=2, default=str))
        return EXIT_OK
    say(f"# {EXPORT_SCHEMA}: {len(models)} model(s), {len(versions)} version(s), {len(audit)} audit entries")
    for m in models:
        say("")
        say(f"model {model_line(m)}")
        if m.policy:
            say(f"  policy {', '.join(f'{k}={m.policy[k]}' for k in sorted(m.policy))}")
        for v in (v for v in versions if v.model == m.name):
            say(f"  {v.version}  {status_word(v.status)}  created {when(v.created_at)}  run {v.run_id or '-'}  "
                f"epoch {epoch_text(v)}  sha256 {v.checksum}")  # fmt: skip
            for a in v.artifacts:
                say(f"    {a.name}  {a.bytes} bytes  {a.sha256}")
            if v.reproduce:
                say(f"    reproduce: {v.reproduce}")
    say("")
    say("audit")
    for e in audit:
        say(f"  #{e.id} {e.model}  {audit_line(e)}")
    return EXIT_OK
