"""field_preservation: the share of an artifact's records that carry each required field (seed 001).

Seed 001 trained a vocabulary, added `gesture_token` to every event, and saved a model whose
1,500 `audio_frames` carried it 0 times; only opening the file showed it. This check opens
the file: `options["artifact"]` (a JSON or JSON Lines file) and `options["fields"]` (a list,
or one comma-separated string) of field paths.

Field paths: segments joined by `.`; a segment ending in `[]` is a list whose elements are
walked. The last segment is the field; what the path before it reaches are the records. In
a JSON file `audio_frames[].gesture_token` means: the records are the elements of the
top-level object's `audio_frames` list, the field is `gesture_token`; `[].id` walks a
top-level list. In a JSON Lines file (`.jsonl`, `.ndjson`) each line is a record and a path
is read inside it (`gesture_token`, or `meta.take` for a nested key). A record carries a
field when it is an object with that key and a value other than null. Keys holding `.` or
`[]` cannot be named.

Figure: the lowest share (0.0 to 1.0). Fails when any field's share is 0, or a path reaches
no records at all; details give count and total per field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainledger.engines.checks.base import CheckContext, CheckResult, check
from trainledger.engines.checks.files import FileProblem, evidence, iter_lines, parse_line, read_json, user_path

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonlines")
NAME = "field_preservation"


class BadPath(ValueError):
    """A field path that does not follow the grammar above."""


@dataclass(frozen=True)
class FieldPath:
    text: str
    steps: tuple[tuple[str | None, int], ...]  # (key or None for the document itself, how many [] after it)
    field: str

    @classmethod
    def parse(cls, text: str, jsonl: bool = False) -> FieldPath:
        raw = text.strip()
        if not raw:
            raise BadPath("an empty field path")
        parts = raw.split(".")
        steps: list[tuple[str | None, int]] = []
        for i, part in enumerate(parts):
            name, lists = part, 0
            while name.endswith("[]"):
                name, lists = name[:-2], lists + 1
            if "[" in name or "]" in name or (not name and (i > 0 or lists == 0)):
                raise BadPath(f"field path {text!r}: bad segment {part!r}")
            steps.append((name or None, lists))
        key, lists = steps.pop()
        if key is None or lists:
            raise BadPath(f"field path {text!r}: it must end in a key (the field), not a list")
        if jsonl:  # each line is a record: the path is read inside one line's object
            steps.insert(0, (None, 1))
        return cls(raw, tuple(steps), key)

    def records(self, doc: Any) -> list[Any]:
        """What the path before the field reaches in `doc` (a JSON value)."""
        current = [doc]
        for key, lists in self.steps:
            if key is not None:
                current = [c[key] for c in current if isinstance(c, dict) and key in c]
            for _ in range(lists):
                current = [item for c in current if isinstance(c, list) for item in c]
        return current

    def count(self, doc: Any) -> tuple[int, int]:
        """(records carrying the field, records)."""
        recs = self.records(doc)
        return sum(1 for r in recs if isinstance(r, dict) and r.get(self.field) is not None), len(recs)


def parse_fields(value: Any) -> list[str]:
    """`fields` option: a list of paths or one comma-separated string."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        items = []
    return [i for i in items if i]


def is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in JSONL_SUFFIXES


def field_counts(path: Path, fields: list[str]) -> dict[str, tuple[int, int]]:
    """{field path: (carrying, records)} for a JSON or JSON Lines artifact.

    Raises BadPath for a bad path, FileProblem for a file that cannot be read or parsed (its
    text names the line). Torch-free; a report can compute `field_share.<field>` with it.
    """
    jsonl = is_jsonl(path)
    paths = [FieldPath.parse(f, jsonl) for f in fields]
    if not jsonl:
        doc = read_json(path)
        return {p.text: p.count(doc) for p in paths}
    totals = {p.text: [0, 0] for p in paths}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = parse_line(line)
        except ValueError as exc:
            raise FileProblem(f"{path.name}: line {lineno}: {exc}") from None
        for p in paths:
            have, total = p.count([obj])
            totals[p.text][0] += have
            totals[p.text][1] += total
    return {k: (v[0], v[1]) for k, v in totals.items()}


def _records_of(fp: str, jsonl: bool) -> str:
    if jsonl:
        return "lines"
    head, _, _ = fp.rpartition(".")
    return head or "documents"


@check(NAME)
def field_preservation(ctx: CheckContext) -> CheckResult | None:
    """The share of an artifact's records that carry each required field (fails on 0 of N)."""
    artifact, fields = ctx.options.get("artifact"), parse_fields(ctx.options.get("fields"))
    if not artifact and not fields:
        return None  # nothing asked: not applicable
    if not artifact or not fields:
        return CheckResult(NAME, None, None, "needs both an artifact (--artifact) and fields (--fields)")
    path = user_path(ctx.ws, str(artifact))
    ev = (evidence(ctx.ws, path),)
    try:
        counts = field_counts(path, fields)
    except (BadPath, FileProblem) as exc:
        return CheckResult(NAME, False, None, str(exc), {"artifact": ev[0]}, ev)
    jsonl = is_jsonl(path)
    details: dict[str, Any] = {"artifact": ev[0], "format": "jsonl" if jsonl else "json", "fields": {}}
    shares, missing = [], []
    for fp, (have, total) in counts.items():
        share = have / total if total else 0.0
        details["fields"][fp] = {"count": have, "total": total, "share": share}
        shares.append(share)
        if not have:
            missing.append(f"{have:,} of {total:,} {_records_of(fp, jsonl)} carry {fp.rpartition('.')[2]}"
                           if total else f"{fp}: no records at that path")  # fmt: skip
    lowest = min(shares)
    if missing:
        return CheckResult(NAME, False, lowest, "; ".join(missing), details, ev)
    worst = min(counts.items(), key=lambda kv: kv[1][0] / kv[1][1])
    have, total = worst[1]
    return CheckResult(NAME, True, lowest, f"every field present; lowest {worst[0]}: {have:,} of {total:,} "
                                           f"({lowest:.1%})", details, ev)  # fmt: skip
