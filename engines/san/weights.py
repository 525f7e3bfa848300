"""The SAN weights artifact: a little-endian float32 blob plus a JSON manifest, and its loader.

The app of seed 000 ships `san_weights.bin` + `san_manifest.json` and loads them with a Rust
function that answers a positive parameter count or exactly -1, -2, -3 or -4. This module
writes that pair and reads it back with the same contract, in numpy and the standard
library only (a device has no torch). The loader never raises for any bytes and never
allocates memory in proportion to a number the manifest claims, only to the inputs' size.

Codes, checked in this order (the first that applies wins):

- **-1** either input is None, not bytes-like, or has length zero.
- **-2** the manifest is not valid UTF-8 (strict: overlong forms and encoded surrogates
  are invalid).
- **-3** the manifest is not JSON or not this schema: a UTF-8 BOM; JSON syntax errors;
  `NaN`/`Infinity`; nesting deeper than Python's recursion allows; a duplicate key in any
  object; a top level that is not an object; `schema` != "san-manifest/1"; `dtype` !=
  "float32"; `total_params` not an integer; `entries` not a list; an entry that is not an
  object, whose `name` is not a non-empty string of valid Unicode (no lone surrogates),
  whose `shape` is not a list of integers or whose `offset` is not an integer; two entries
  with the same name. Integers are JSON integers: `true`/`false` and floats (even `3.0`)
  are not. Unknown keys are ignored.
- **-4** the blob does not match the manifest: its length is not a multiple of 4 or not
  4 x `total_params`; a negative or zero dimension (no empty tensors); a negative offset;
  the entries (sorted by offset) do not tile [0, total_params) exactly -- an overlap, a
  gap, or an entry past the end; an integer too large for a size (more than 18 digits);
  a value in the blob that is NaN or infinite.

A shape of `[]` is a scalar (one float32).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

SCHEMA = "san-manifest/1"
DTYPE = "float32"
OK_MIN = 1
MISSING, NOT_UTF8, NOT_SCHEMA, MISMATCH = -1, -2, -3, -4
CODES = {
    MISSING: "missing or empty input",
    NOT_UTF8: "manifest is not valid UTF-8",
    NOT_SCHEMA: "manifest is not JSON or not san-manifest/1",
    MISMATCH: "binary size, shape, offset or bounds mismatch",
}
_MAX_DIGITS = (
    18  # larger integer literals cannot describe a blob anyone holds in memory
)


class _Huge:
    """An integer literal with more than _MAX_DIGITS digits: kept as a marker, never converted."""

    __slots__ = ()


_HUGE = _Huge()


class _Invalid(Exception):
    """Internal: the manifest fails the schema (-3)."""


def _parse_int(text: str) -> int | _Huge:
    return _HUGE if len(text.lstrip("-")) > _MAX_DIGITS else int(text)


def _no_constant(text: str) -> Any:
    raise _Invalid(f"{text} is not JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Invalid("duplicate key")
    return obj


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or value is _HUGE


def _valid_text(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse(manifest: str) -> tuple[Any, list[tuple[str, list[Any], Any]]]:
    """(total_params, [(name, shape, offset)]) or raise _Invalid."""
    if manifest.startswith("\ufeff"):
        raise _Invalid("BOM")
    try:
        doc = json.loads(
            manifest,
            parse_int=_parse_int,
            parse_constant=_no_constant,
            object_pairs_hook=_pairs,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise _Invalid(str(exc)) from None
    if not isinstance(doc, dict):
        raise _Invalid("not an object")
    if doc.get("schema") != SCHEMA or doc.get("dtype") != DTYPE:
        raise _Invalid("schema or dtype")
    total, entries = doc.get("total_params"), doc.get("entries")
    if not _is_int(total) or not isinstance(entries, list):
        raise _Invalid("total_params or entries")
    out, names = [], set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise _Invalid("entry not an object")
        name, shape, offset = entry.get("name"), entry.get("shape"), entry.get("offset")
        if not _valid_text(name) or not isinstance(shape, list) or not _is_int(offset):
            raise _Invalid("entry fields")
        if not all(_is_int(d) for d in shape):
            raise _Invalid("shape")
        if name in names:
            raise _Invalid("duplicate name")
        names.add(name)
        out.append((name, shape, offset))
    return total, out


def _layout(
    n_floats: int, total: Any, entries: list[tuple[str, list[Any], Any]]
) -> list[tuple[str, tuple[int, ...], int, int]] | None:
    """[(name, shape, offset, size)] if the entries tile the blob exactly, else None (-4)."""
    if total is _HUGE or total != n_floats:
        return None
    spans = []
    for name, shape, offset in entries:
        if offset is _HUGE or offset < 0:
            return None
        size = 1
        for dim in shape:
            if dim is _HUGE or dim <= 0:
                return None
            size *= dim
            if size > n_floats:  # stop before the product grows: never a big number
                return None
        spans.append((offset, size, name, tuple(shape)))
    spans.sort(key=lambda s: s[0])
    cursor = 0
    for offset, size, _, _ in spans:
        if offset != cursor:  # a gap (offset > cursor) or an overlap (offset < cursor)
            return None
        cursor += size
    if cursor != n_floats:
        return None
    return [(name, shape, offset, size) for offset, size, name, shape in spans]


def _load(
    bin_bytes: Any, manifest_bytes: Any
) -> tuple[int, dict[str, np.ndarray] | None]:
    for data in (bin_bytes, manifest_bytes):
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
            return MISSING, None
    try:
        text = bytes(manifest_bytes).decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return NOT_UTF8, None
    try:
        total, entries = _parse(text)
    except _Invalid:
        return NOT_SCHEMA, None
    blob = bytes(bin_bytes) if not isinstance(bin_bytes, bytes) else bin_bytes
    if len(blob) % 4:
        return MISMATCH, None
    layout = _layout(len(blob) // 4, total, entries)
    if layout is None:
        return MISMATCH, None
    values = np.frombuffer(blob, dtype="<f4")
    if not np.isfinite(values).all():
        return MISMATCH, None
    spans = {name: (shape, offset, size) for name, shape, offset, size in layout}
    tensors = {}
    for name, _, _ in entries:  # manifest order
        shape, offset, size = spans[name]
        tensors[name] = values[offset : offset + size].reshape(shape)
    return len(values), tensors


def load_weights(bin_bytes: bytes | None, manifest_bytes: bytes | None) -> int:
    """The parameter count, or -1/-2/-3/-4 as the module docstring defines. Never raises."""
    return _load(bin_bytes, manifest_bytes)[0]


def load_tensors(
    bin_bytes: bytes | None, manifest_bytes: bytes | None
) -> dict[str, np.ndarray] | int:
    """The tensors by name (read-only float32 views into one array, in manifest order), or
    the negative code. Never raises."""
    code, tensors = _load(bin_bytes, manifest_bytes)
    return code if tensors is None else tensors


def describe(code: int) -> str:
    """A human line for a loader result."""
    return (
        f"loaded {code} parameters"
        if code >= OK_MIN
        else f"error {code}: {CODES.get(code, 'unknown code')}"
    )


def export_weights(tensors: Mapping[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(blob, manifest): the tensors as little-endian float32 back to back in the mapping's
    order, and the manifest JSON (UTF-8, sorted keys, 2-space indent: the same bytes for the
    same input). ValueError for an empty mapping, a bad name, an empty or non-finite tensor."""
    if not tensors:
        raise ValueError("no tensors to export")
    parts, entries, offset = [], [], 0
    for name, value in tensors.items():
        if not _valid_text(name):
            raise ValueError(f"tensor name {name!r}: expected a non-empty string")
        array = np.asarray(
            value, dtype="<f4"
        )  # (ascontiguousarray would make a scalar 1-d)
        if array.size == 0:
            raise ValueError(f"{name}: empty tensor")
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: values that are NaN or infinite")
        parts.append(array.tobytes())
        entries.append(
            {"name": name, "shape": [int(d) for d in array.shape], "offset": offset}
        )
        offset += int(array.size)
    manifest = {
        "schema": SCHEMA,
        "dtype": DTYPE,
        "total_params": offset,
        "entries": entries,
    }
    text = (
        json.dumps(
            manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
        )
        + "\n"
    )
    return b"".join(parts), text.encode("utf-8")
