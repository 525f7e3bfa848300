"""One JSON Lines row judged on its own: numbers kept, everything else dropped, hostile rows named.

The fast path of columns.py decodes whole chunks; a line it cannot take comes here. A
line that is valid JSON yet hostile (nested 100,000 deep, 50 MB long, 3 million keys)
is malformed, with a reason, instead of raising or costing gigabytes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import numpy as np

MAX_LINE_BYTES = 4 << 20  # a metrics row this long is not a metrics row
MAX_LINE_KEYS = 10_000  # as many names as a whole run may keep (store.MAX_METRICS)
_NAN = math.nan
generic_decoder = msgspec.json.Decoder()
_generic = generic_decoder


def _num(v: Any) -> float:
    t = type(v)
    if t is float:
        return v
    if t is int:
        try:
            return float(v)
        except OverflowError:
            return _NAN
    return _NAN


def loose_column(values: Any, n: int) -> tuple[np.ndarray, bool]:
    """Column of a key that holds non-numbers somewhere: numbers kept, the rest NaN."""
    vals = list(values)
    col = np.fromiter(map(_num, vals), np.float64, n)
    seen = not np.isnan(col).all() or any(v is None for v in vals)
    return col, seen


def lenient_row(line: bytes) -> dict[str, float | None] | str:
    """One line as {key: float or None(null)}, or a description of why it is malformed."""
    if len(line) > MAX_LINE_BYTES:
        return f"line longer than {MAX_LINE_BYTES >> 20} MiB"
    try:
        obj = _generic.decode(line)
    except RecursionError:
        return "nested too deeply"
    except msgspec.DecodeError:
        try:
            obj = json.loads(line)  # accepts NaN / Infinity, as Python's json writes them
        except RecursionError:
            return "nested too deeply"
        except ValueError:
            return "not JSON"
    if not isinstance(obj, dict):
        return f"not a JSON object ({type(obj).__name__})"
    if len(obj) > MAX_LINE_KEYS:
        return f"more than {MAX_LINE_KEYS:,} keys"
    step = obj.get("step")
    if step is not None and type(step) is not float and type(step) is not int:
        # Where would its values go? Not at a made-up step: the line is skipped, and counted.
        return f"step is not a number ({type(step).__name__})"
    row: dict[str, float | None] = {}
    for key, v in obj.items():
        if v is None:
            row[key] = None
        elif type(v) is float or type(v) is int:
            row[key] = _num(v)
    return row
