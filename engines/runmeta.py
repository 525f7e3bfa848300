"""A run's own metadata: name, tags, note and archived, in `runs/<id>/meta.json`.

run.json belongs to the trainer (it rewrites it while it runs); what the user says about a
run afterwards (a new name, tags, a note, archived) lives beside it in meta.json, so neither
writer overwrites the other. meta.json's name, when set, overrides run.json's (a rename).
A missing or unreadable meta.json reads as the defaults: a run is never hidden by it.

Schema (docs/formats.md, "meta.json"):
    {"schema": "trainledger-meta/1", "name": str|null, "tags": [str, ...], "note": str,
     "archived": bool, "updated_at": float}
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from trainledger.engines.safeio import FileTooLarge, NotRegularFile, read_regular

META_FILE = "meta.json"
META_SCHEMA = "trainledger-meta/1"
META_FILE_LIMIT = 1 << 20  # a meta.json is a few hundred bytes; past this it is ignored
TAG_MAX = 40
NAME_MAX = 200
NOTE_MAX = 10_000
_TAG_BAD = re.compile(r"[\s,\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAME_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNSET: Any = object()


class InvalidMeta(ValueError):
    """A tag, name or note that cannot be stored (the message says why)."""


@dataclass(frozen=True)
class RunMeta:
    name: str | None = None
    tags: tuple[str, ...] = ()
    note: str = ""
    archived: bool = False
    updated_at: float | None = None


def validate_tag(s: str) -> str:
    """`s` if it is a usable tag (1-40 characters, no whitespace, commas or control characters)."""
    if not isinstance(s, str) or not s:
        raise InvalidMeta("a tag must be 1-40 characters")
    if len(s) > TAG_MAX:
        raise InvalidMeta(f"tag {s[:TAG_MAX]!r}...: longer than {TAG_MAX} characters")
    if _TAG_BAD.search(s):
        raise InvalidMeta(f"tag {s!r}: no spaces, commas or control characters")
    return s


def validate_name(s: str) -> str:
    """A run name: 1-200 characters, no control characters, not only spaces."""
    if not isinstance(s, str) or not s.strip():
        raise InvalidMeta("a run name must not be empty")
    if len(s) > NAME_MAX:
        raise InvalidMeta(f"a run name is at most {NAME_MAX} characters")
    if _NAME_BAD.search(s):
        raise InvalidMeta("a run name has no control characters (escape, newline, tab ...)")
    return s


def _validate_note(s: str) -> str:
    if not isinstance(s, str):
        raise InvalidMeta("a note is text")
    if len(s) > NOTE_MAX:
        raise InvalidMeta(f"a note is at most {NOTE_MAX:,} characters")
    return s


def _decode(raw: Any) -> RunMeta:
    if not isinstance(raw, dict):
        return RunMeta()
    name = raw.get("name")
    tags: list[str] = []
    for t in raw.get("tags") if isinstance(raw.get("tags"), list) else []:
        try:
            if validate_tag(t) not in tags:
                tags.append(t)
        except InvalidMeta:
            continue  # a hand-edited bad tag is dropped, not shown raw
    note = raw.get("note")
    updated = raw.get("updated_at")
    return RunMeta(
        name=name if isinstance(name, str) and name.strip() else None,
        tags=tuple(tags),
        note=note if isinstance(note, str) else "",
        archived=raw.get("archived") is True,
        updated_at=float(updated) if isinstance(updated, (int, float)) and not isinstance(updated, bool) else None,
    )


def read_meta(run_dir: Path) -> RunMeta:
    """meta.json of `run_dir`; missing, unreadable, a FIFO or too large: the defaults."""
    try:
        return _decode(msgspec.json.decode(read_regular(Path(run_dir) / META_FILE, META_FILE_LIMIT)))
    except (OSError, NotRegularFile, FileTooLarge, msgspec.DecodeError, RecursionError):
        return RunMeta()


def write_meta(
    run_dir: Path,
    *,
    name: str | None = _UNSET,
    tags: Any = _UNSET,
    note: str = _UNSET,
    archived: bool = _UNSET,
) -> RunMeta:
    """Change the given fields of meta.json (the others keep their values), atomically.

    `name=None` clears a rename (run.json's name shows again). Tags are validated and
    de-duplicated in order. Raises InvalidMeta for a bad value, FileNotFoundError when
    `run_dir` is not there (meta.json never creates a run folder).
    """
    from trainledger.engines.workspace import atomic_write_json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder {run_dir}")
    old = read_meta(run_dir)
    new_name = old.name if name is _UNSET else (None if name is None else validate_name(name))
    if tags is _UNSET:
        new_tags = old.tags
    else:
        if isinstance(tags, str):
            raise InvalidMeta("tags are a list of strings, not one string")
        seen: list[str] = []
        for t in tags:
            if validate_tag(t) not in seen:
                seen.append(t)
        new_tags = tuple(seen)
    new_note = old.note if note is _UNSET else _validate_note(note)
    new_archived = old.archived if archived is _UNSET else bool(archived)
    now = time.time()
    atomic_write_json(run_dir / META_FILE, {
        "schema": META_SCHEMA, "name": new_name, "tags": list(new_tags), "note": new_note,
        "archived": new_archived, "updated_at": now,
    })  # fmt: skip
    return RunMeta(new_name, new_tags, new_note, new_archived, now)


def resolve_by_name(ws: Any, id_or_name: str) -> Any:
    """workspace.resolve_run's body (kept here so workspace.py stays the layout's module)."""
    from trainledger.engines.safetext import clean
    from trainledger.engines.workspace import _ID_RE, list_runs, read_run_info

    if not isinstance(id_or_name, str) or not id_or_name:
        raise ValueError("no run given: name a run id or a run name")
    if _ID_RE.fullmatch(id_or_name) and not id_or_name.startswith("."):
        run_dir = ws.runs_dir / id_or_name
        if run_dir.is_dir():
            return read_run_info(run_dir)
    matches = [r for r in list_runs(ws) if r.name == id_or_name]
    if len(matches) == 1:
        return matches[0]
    shown = clean(id_or_name)
    if matches:
        ids = ", ".join(r.id for r in matches)
        raise ValueError(f"run name {shown!r} is ambiguous: {len(matches)} runs have it ({ids}); give a run id")
    near = [r.id for r in list_runs(ws, check_pid=False)
            if id_or_name.lower() in r.id.lower() or (r.name and id_or_name.lower() in r.name.lower())]
    hint = f"; did you mean {', '.join(near[:8])}?" if near else ""
    raise ValueError(f"no run with id or name {shown!r} in {clean(ws.root)}{hint}")
