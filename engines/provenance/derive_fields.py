"""field_share.<field>: the share of records in an artifact that carry a field (seed 001: a
field on 0 of 1,500 saved frames).

JSONL: each line is a record and <field> a key of it (a dotted path reaches into nested
objects). JSON: <field> is a path such as `audio_frames[].gesture_token`: each `[]` walks into
a list, and the records are the items of the last list walked (a document that is itself a
list is walked first when the path starts with no list). A record carries the field when the
path ends on a value that is not null. Lines that are not JSON objects are records that do
not carry it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainledger.engines.provenance.derive_files import JSON_LIMIT, Source, Unprovable, rel
from trainledger.engines.provenance.model import Claim
from trainledger.engines.safeio import read_regular

ARTIFACT_LIMIT = 1 << 30
_MISSING = object()


def _parts(path: str) -> list[tuple[str, bool]]:
    """`a.b[].c` -> [("a", False), ("b", True), ("c", False)]."""
    out = []
    for seg in path.split("."):
        is_list = seg.endswith("[]")
        name = seg[:-2] if is_list else seg
        if not name and not is_list:
            raise Unprovable(f"field path {path!r} has an empty part")
        out.append((name, is_list))
    return out


def _get(obj: Any, parts: list[tuple[str, bool]]) -> Any:
    for name, _ in parts:
        if not isinstance(obj, dict) or name not in obj:
            return _MISSING
        obj = obj[name]
    return obj


def _records(doc: Any, parts: list[tuple[str, bool]]) -> tuple[list[Any], list[tuple[str, bool]]]:
    """The records the path's last `[]` walks into, and the rest of the path (from each record)."""
    last = max((i for i, (_, is_list) in enumerate(parts) if is_list), default=-1)
    if last < 0:
        return (doc if isinstance(doc, list) else [doc]), parts
    items: list[Any] = [doc]
    for name, is_list in parts[: last + 1]:
        nxt: list[Any] = []
        for item in items:
            value = item.get(name, _MISSING) if name else item
            if name and not isinstance(item, dict):
                continue
            if value is _MISSING:
                continue
            if is_list:
                if isinstance(value, list):
                    nxt.extend(value)
            else:
                nxt.append(value)
        items = nxt
    return items, parts[last + 1 :]


def share(artifact: Path, field: str) -> tuple[int, int]:
    """(records carrying `field`, records) in a JSON or JSON Lines artifact."""
    try:
        data = read_regular(artifact, ARTIFACT_LIMIT if artifact.suffix == ".jsonl" else JSON_LIMIT)
    except FileNotFoundError:
        raise Unprovable(f"{artifact.name}: no such file") from None
    except OSError as exc:
        raise Unprovable(f"{artifact.name}: cannot be read ({exc.strerror or exc})") from None
    parts = _parts(field)
    if artifact.suffix == ".jsonl":
        records: list[Any] = []
        for line in data.splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except (ValueError, RecursionError):
                    records.append(None)
        rest = parts
        if any(is_list for _, is_list in parts):
            raise Unprovable("in JSONL each line is a record: the field is a key path without []")
    else:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise Unprovable(f"{artifact.name}: not JSON ({str(exc)[:120]})") from None
        records, rest = _records(doc, parts)
    carrying = 0
    for record in records:
        value = _get(record, rest) if rest else record
        if value is not _MISSING and value is not None:
            carrying += 1
    return carrying, len(records)


def field_share(src: Source, key: str, artifact: Path | None) -> Claim:
    field = key[len("field_share.") :]
    if not field:
        raise Unprovable("field_share needs a field: field_share.<field>")
    if artifact is None:
        raise Unprovable("field_share needs an artifact (a JSON or JSONL file) to count records in")
    artifact = Path(artifact)
    if not artifact.is_absolute() and not artifact.exists():
        artifact = src.ws.root / artifact
    carrying, total = share(artifact, field)
    if total == 0:
        raise Unprovable(f"{rel(src.ws, artifact)} has no records for {field!r}")
    ev = src.evidence(artifact, f"{carrying} of {total} records carry {field}")
    return Claim(key, carrying / total, (ev,), label=f"share of records with {field}")
