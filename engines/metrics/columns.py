"""Fast columnar parsing of complete JSON Lines into float64 arrays.

A million-row metrics.jsonl must open in about a second, which dict-per-row decoding
cannot do. We decode into a msgspec Struct built at run time for the keys in the file
(unknown keys are caught with forbid_unknown_fields and added), extract one column at a
time with numpy, and fall back to a lenient line-by-line parse only where a chunk has
something odd in it (a broken line, a NaN literal, a string value).
"""

from __future__ import annotations

import math
import operator
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import msgspec
import numpy as np

from trainledger.engines.metrics.lines import (  # noqa: F401 - the limits are re-exported
    MAX_LINE_BYTES,
    MAX_LINE_KEYS,
)
from trainledger.engines.metrics.lines import (
    generic_decoder as _generic,
)
from trainledger.engines.metrics.lines import (
    lenient_row as _lenient_row,
)
from trainledger.engines.metrics.lines import (
    loose_column as _loose_column,
)

RESERVED = ("step", "epoch", "time")
CHUNK_LINES = 65536
MIN_CHUNK_BYTES = 1 << 14
SAMPLE_LINES = 64
MAX_EXAMPLES = 5
_MAX_RETRIES = 32  # key additions / loosenings per chunk before going line by line
_MAX_SPLITS = 64  # bad lines handled by splitting a chunk before going line by line
MAX_FIELDS = 1024  # keys in the fast path's Struct; rarer ones go through the slow path
_STRUCT_SLOTS = 1 << 23  # rows x fields decoded at once (64 MB of slots)
# A column of a block with at least this many rows, holding a value on fewer than a
# quarter of them, is kept as (row index, value) pairs instead of a full-length column.
SPARSE_MIN_ROWS = 1024

_NAN = math.nan
_UNKNOWN_RE = re.compile(r"Object contains unknown field `(.*)` - at `\$\[(\d+)\]`", re.S)
_TYPE_RE = re.compile(r"Expected `float \| null`, got `\w+` - at `\$\[(\d+)\]\.(.*)`", re.S)
_AT_ROW_RE = re.compile(r"- at `\$\[(\d+)\]")
_BYTE_RE = re.compile(r"\(byte (\d+)\)")
_BAD_NAME_RE = re.compile(r'["\\\x00-\x1f]')


@dataclass
class Block:
    """Columns parsed from a run of lines; every dense array has length `n`.

    A metric present on few rows is in `sparse` as (row index int64, value float64)
    arrays, holding its non-NaN values only; `metrics` and `sparse` never share a key.
    """

    n: int
    step: np.ndarray  # float64; NaN where a row has no numeric step
    epoch: np.ndarray
    time: np.ndarray
    metrics: dict[str, np.ndarray]  # keys that had a numeric (or null) value somewhere
    malformed: int  # lines that were not a JSON object (skipped)
    malformed_examples: list[str] = field(default_factory=list)
    consumed: int = 0  # bytes of the buffer that were parsed (all of it unless cancelled)
    cancelled: bool = False
    sparse: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)  # numbers of the first malformed lines, if asked

    def names(self) -> list[str]:
        return [*self.metrics, *self.sparse]


Sparse = tuple[np.ndarray, np.ndarray]  # (row index int64, value float64), non-NaN values only


def dense_ok(count: int, n: int) -> bool:
    """Whether `count` values over `n` rows are worth a full-length column."""
    return n < SPARSE_MIN_ROWS or 4 * count >= n


def to_sparse(col: np.ndarray) -> Sparse:
    idx = np.flatnonzero(~np.isnan(col))
    return idx, col[idx]


@dataclass
class _Seg:
    """Columns of one decoded segment of a chunk."""

    n: int
    cols: dict[str, np.ndarray | Sparse]


class _Schema:
    """The run-time Struct type: one optional float field per key, loose (Any) if needed."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.loose: set[str] = set()
        for key in (*RESERVED, *keys):
            self.add(key)
        self._decoder: msgspec.json.Decoder | None = None

    def add(self, key: str, loose: bool = False) -> bool:
        """Add a field for `key`; False if msgspec cannot name a field so (quote, control)."""
        loose = loose and key != "step"  # a step that is not a number makes its line malformed
        if key not in self.index:
            if len(self.keys) >= MAX_FIELDS or _BAD_NAME_RE.search(key):
                return False
            self.index[key] = len(self.keys)
            self.keys.append(key)
        elif not loose or key in self.loose:
            return True
        if loose:
            self.loose.add(key)
        self._decoder = None
        return True

    def decoder(self) -> msgspec.json.Decoder:
        if self._decoder is None:
            fields = [
                (f"f{i}", Any if k in self.loose else (float | None), _NAN)
                for i, k in enumerate(self.keys)
            ]
            rename = {f"f{i}": k for i, k in enumerate(self.keys)}
            struct = msgspec.defstruct(
                "Row", fields, rename=rename, gc=False, forbid_unknown_fields=True
            )
            self._decoder = msgspec.json.Decoder(struct)
        return self._decoder


class _Parser:
    def __init__(self, buf: bytes, first_line: int, bad_lines: int = 0) -> None:
        self.buf = buf
        self.view = memoryview(buf)
        self.first_line = first_line
        self.malformed = 0
        self.examples: list[str] = []
        self.bad_lines: list[int] = []
        self._bad_lines_limit = bad_lines
        self.segs: list[_Seg] = []
        self._line_pos = 0  # lazily counted: line index of byte _line_pos is _line_idx
        self._line_idx = 0

    # -------------------------------------------------------------- line numbers
    def line_no(self, pos: int) -> int:
        """1-based line number (counting from first_line) of the line starting at `pos`."""
        if pos < self._line_pos:
            self._line_pos, self._line_idx = 0, 0
        self._line_idx += self.buf.count(b"\n", self._line_pos, pos)
        self._line_pos = pos
        return self.first_line + self._line_idx

    def bad(self, pos: int, why: str) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"line {self.line_no(pos)}: {why}")
        if len(self.bad_lines) < self._bad_lines_limit:
            self.bad_lines.append(self.line_no(pos))

    # -------------------------------------------------------------- fast path
    def chunk(self, schema: _Schema, start: int, end: int) -> None:
        """Decode buf[start:end] (whole lines) with the Struct, splitting at bad lines."""
        retries = splits = 0
        while start < end:
            try:
                rows = schema.decoder().decode_lines(self.view[start:end])
            except msgspec.ValidationError as exc:
                msg = str(exc)
                m = _UNKNOWN_RE.search(msg)
                if m and m.group(1) not in schema.index and retries < _MAX_RETRIES:
                    if schema.add(m.group(1)):
                        retries += 1
                        continue
                m = _TYPE_RE.search(msg)
                if m and m.group(2) in schema.index and m.group(2) not in schema.loose \
                        and m.group(2) != "step" and retries < _MAX_RETRIES:
                    schema.add(m.group(2), loose=True)
                    retries += 1
                    continue
                m = _AT_ROW_RE.search(msg)
                bad = self._nth_nonblank(start, end, int(m.group(1))) if m else None
            except RecursionError:  # nested too deeply somewhere: find it line by line
                bad = None
            except msgspec.DecodeError as exc:
                m = _BYTE_RE.search(str(exc))
                bad = start + int(m.group(1)) if m else None
                if bad is not None:  # back to the start of the line holding that byte
                    p = self.buf.rfind(b"\n", start, min(bad, end))
                    bad = start if p < 0 else p + 1
            else:
                self._extract(schema, rows)
                return
            if bad is None or splits >= _MAX_SPLITS or retries >= _MAX_RETRIES:
                self._slow(schema, start, end)
                return
            splits += 1
            if bad > start:  # the lines before the bad one decode cleanly (or split again)
                self.chunk(schema, start, bad)
            nl = self.buf.find(b"\n", bad, end)
            line_end = end if nl < 0 else nl + 1
            self._slow(schema, bad, line_end)
            start = line_end

    def _nth_nonblank(self, start: int, end: int, k: int) -> int | None:
        """Offset of the k-th (0-based) non-blank line in buf[start:end]."""
        pos = start
        while pos < end:
            nl = self.buf.find(b"\n", pos, end)
            line_end = end if nl < 0 else nl + 1
            if self.buf[pos:line_end].strip():
                if k == 0:
                    return pos
                k -= 1
            pos = line_end
        return None

    def _extract(self, schema: _Schema, rows: list[Any]) -> None:
        n = len(rows)
        if n == 0:
            return
        cols: dict[str, np.ndarray | Sparse] = {}
        for i, key in enumerate(schema.keys):
            get = operator.attrgetter(f"f{i}")
            if key in schema.loose:
                col, seen = _loose_column(map(get, rows), n)
            else:
                try:
                    col = np.fromiter(map(get, rows), np.float64, n)
                    seen = not np.isnan(col).all()
                except TypeError:  # a null somewhere: None -> NaN
                    col = np.array(list(map(get, rows)), dtype=np.float64)
                    seen = True
            if key in RESERVED:
                cols[key] = col
            elif seen:
                if n >= SPARSE_MIN_ROWS:
                    idx, vals = to_sparse(col)
                    cols[key] = col if dense_ok(idx.size, n) else (idx, vals)
                else:
                    cols[key] = col
        self.segs.append(_Seg(n, cols))

    # -------------------------------------------------------------- slow path
    def _slow(self, schema: _Schema, start: int, end: int) -> None:
        """Parse buf[start:end] line by line, leniently; new keys join the schema."""
        rows: list[dict[str, float]] = []
        pos = start
        while pos < end:
            nl = self.buf.find(b"\n", pos, end)
            line_end = end if nl < 0 else nl + 1
            line = self.buf[pos:line_end].strip()
            if line:
                row = _lenient_row(line)
                if isinstance(row, str):
                    self.bad(pos, row)
                else:
                    rows.append(row)
                    for key in row:
                        if key not in schema.index:
                            schema.add(key)
            pos = line_end
        if not rows:
            return
        n = len(rows)
        # Per key the rows that hold it: memory follows the values, not rows x names.
        where: dict[str, list[int]] = {key: [] for key in RESERVED}
        values: dict[str, list[float]] = {key: [] for key in RESERVED}
        for j, row in enumerate(rows):
            for key, v in row.items():
                js = where.get(key)
                if js is None:
                    js = where[key] = []
                    values[key] = []
                if v is not None:
                    js.append(j)
                    values[key].append(v)
        cols: dict[str, np.ndarray | Sparse] = {}
        for key, js in where.items():
            idx = np.array(js, dtype=np.int64)
            vals = np.array(values[key], dtype=np.float64)
            if key in RESERVED or dense_ok(idx.size, n):
                col = np.full(n, _NAN)
                col[idx] = vals
                cols[key] = col
            else:
                cols[key] = (idx, vals)
        self.segs.append(_Seg(n, cols))

    # -------------------------------------------------------------- result
    def block(self, consumed: int, cancelled: bool) -> Block:
        n = sum(s.n for s in self.segs)
        names: dict[str, None] = {}
        for s in self.segs:
            names.update(dict.fromkeys(s.cols))
        out: dict[str, np.ndarray] = {}
        sparse: dict[str, Sparse] = {}
        for key in (*RESERVED, *names):
            if key in out or key in sparse:
                continue
            if len(self.segs) == 1 and key in self.segs[0].cols:
                part = self.segs[0].cols[key]
                if isinstance(part, tuple):
                    sparse[key] = part
                else:
                    out[key] = part
                continue
            parts = [(pos, s.n, s.cols.get(key)) for pos, s in zip(self._offsets(), self.segs)]
            count = sum(_count(p) for _, _, p in parts)
            if key in RESERVED or dense_ok(count, n):
                col = np.empty(n)
                for pos, k, part in parts:
                    if isinstance(part, tuple):
                        col[pos : pos + k] = _NAN
                        col[pos + part[0]] = part[1]
                    else:
                        col[pos : pos + k] = _NAN if part is None else part
                out[key] = col
            else:
                idxs, vals = [], []
                for pos, _, part in parts:
                    if part is None:
                        continue
                    i, v = part if isinstance(part, tuple) else to_sparse(part)
                    idxs.append(i + pos)
                    vals.append(v)
                sparse[key] = (np.concatenate(idxs), np.concatenate(vals))
        step, epoch, time_ = out.pop("step"), out.pop("epoch"), out.pop("time")
        return Block(n, step, epoch, time_, out, self.malformed, self.examples, consumed, cancelled,
                     sparse, self.bad_lines)

    def _offsets(self) -> list[int]:
        pos, offs = 0, []
        for s in self.segs:
            offs.append(pos)
            pos += s.n
        return offs


def _count(part: np.ndarray | Sparse | None) -> int:
    if part is None:
        return 0
    if isinstance(part, tuple):
        return int(part[0].size)
    return int(part.size - np.count_nonzero(np.isnan(part)))


def _discover(buf: bytes, known: Sequence[str]) -> _Schema:
    """Keys from a sample of lines (first, last, evenly spaced); the rest are found later."""
    schema = _Schema([k for k in known if k not in RESERVED])
    size = len(buf)
    if size == 0:
        return schema
    starts = {0}
    last_nl = buf.rfind(b"\n", 0, size - 1)
    starts.add(last_nl + 1)
    for i in range(1, SAMPLE_LINES):
        p = buf.rfind(b"\n", 0, size * i // SAMPLE_LINES)
        starts.add(p + 1)
    for pos in sorted(starts):
        nl = buf.find(b"\n", pos)
        if (size if nl < 0 else nl) - pos > MAX_LINE_BYTES:
            continue
        line = buf[pos : size if nl < 0 else nl].strip()
        if not line:
            continue
        try:
            obj = _generic.decode(line)
        except (msgspec.DecodeError, RecursionError):
            continue
        if not isinstance(obj, dict) or len(obj) > MAX_LINE_KEYS:
            continue
        for key, v in obj.items():
            numeric = v is None or type(v) is float or type(v) is int
            schema.add(key, loose=not numeric)
    return schema


def parse_lines(
    buf: bytes,
    known_keys: Sequence[str] = (),
    cancel: threading.Event | None = None,
    first_line: int = 1,
    bad_lines: int = 0,
) -> Block:
    """Parse complete JSONL lines into columns.

    Non-object lines, and objects whose "step" is neither a number nor null, are counted
    as malformed (with line numbers counted from `first_line`; the first `bad_lines` of
    them in Block.bad_lines); blank lines are skipped silently; other bools, strings,
    nested objects and non-numbers are dropped. If `cancel` is set the parse stops
    between chunks and the Block covers buf[:consumed] with cancelled=True.
    """
    parser = _Parser(buf, first_line, bad_lines)
    schema = _discover(buf, known_keys)
    size = len(buf)
    sample_end = buf.find(b"\n", 0, min(size, 1 << 16))
    avg = max(16, sample_end + 1) if sample_end >= 0 else 256
    pos = 0
    while pos < size:
        if cancel is not None and cancel.is_set():
            return parser.block(pos, True)
        lines = min(CHUNK_LINES, max(1024, _STRUCT_SLOTS // len(schema.keys)))
        step_bytes = max(MIN_CHUNK_BYTES, avg * lines)
        nl = buf.find(b"\n", min(size - 1, pos + step_bytes))
        end = size if nl < 0 else nl + 1
        parser.chunk(schema, pos, end)
        pos = end
    return parser.block(size, False)
