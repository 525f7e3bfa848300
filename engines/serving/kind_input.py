"""Checking a /predict body before any model sees it: which field, and is it the shape it must be.

Plain Python and numpy, no torch (the passthrough port uses it too). Every refusal is a
BadInput naming the top-level field; its message starts with the position inside it
(``contexts[3][2][7]: expected a number, got str``). The checks walk each row once in a
tight loop: a 5 x 64 context costs a few microseconds, beside the ~150 of a model call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from trainledger.engines.serving.kinds import MAX_BATCH, BadInput

ROUTING_KEY = "key"  # the server's routing key may ride in the body; every kind ignores it


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "array" if isinstance(value, list) else "object"


def pick(body: Any, single: str, batch: str | None = None, *, others: tuple[tuple[str, str], ...] = (),
         extra: tuple[str, ...] = (), max_batch: int = MAX_BATCH) -> tuple[str, Any, bool]:  # fmt: skip
    """(field, value, is_batch) for the one example field (`single`, or a pair of `others`) or the
    batch field the body holds. Unknown keys (but "key"), none or two of them, a batch that is
    not a non-empty array of at most `max_batch` items: BadInput."""
    if not isinstance(body, dict):
        raise BadInput("body", f"expected a JSON object, got {type_name(body)}")
    pairs = ((single, batch), *others)
    for key in body:
        if key == single or key == batch or key == ROUTING_KEY or key in extra:
            continue
        if not any(key in pair for pair in pairs):
            names = ", ".join(n for pair in pairs for n in pair if n) + "".join(f", {n}" for n in extra)
            raise BadInput(str(key)[:64], f"unknown field; this port takes {names}")
    present = [(name, is_batch) for pair in pairs for name, is_batch in zip(pair, (False, True))
               if name and name in body]  # fmt: skip
    if len(present) > 1:
        raise BadInput(present[1][0], f"send one of {' or '.join(n for n, _ in present)}, not both")
    if not present:
        wanted = " or ".join(f"{s} (one example)" + (f" or {b} (a batch)" if b else "") for s, b in pairs)
        raise BadInput(single, f"missing: send {wanted}")
    field, is_batch = present[0]
    value = body[field]
    if is_batch:
        if type(value) is not list:
            raise BadInput(field, f"expected an array of examples, got {type_name(value)}")
        if not value:
            raise BadInput(field, "empty: send at least one example")
        if len(value) > max_batch:
            raise BadInput(field, f"{len(value)} examples; at most {max_batch} per request")
    return field, value, is_batch


def vector(value: Any, field: str, width: int | None, path: str, finite: bool = True) -> list[Any]:
    """`value` if it is an array of `width` numbers (ints or floats, no bools; finite unless told)."""
    if type(value) is not list:
        raise BadInput(field, f"{path}: expected an array of numbers, got {type_name(value)}")
    if width is not None and len(value) != width:
        raise BadInput(field, f"{path}: expected {width} numbers, got {len(value)}")
    if not value:
        raise BadInput(field, f"{path}: empty")
    for x in value:
        if type(x) is not float and type(x) is not int:
            j = next(j for j, y in enumerate(value) if type(y) is not float and type(y) is not int)
            raise BadInput(field, f"{path}[{j}]: expected a number, got {type_name(value[j])}")
    if finite:
        try:
            ok = all(map(math.isfinite, value))
        except OverflowError:  # an int too large for a float
            ok = False
        if not ok:
            j = next(j for j, y in enumerate(value) if not _finite(y))
            raise BadInput(field, f"{path}[{j}]: not a finite number")
    return value


def _finite(x: float) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def vector_rows(value: Any, field: str, rows: int | None, width: int | None, path: str,
                finite: bool = True) -> list[list[Any]]:  # fmt: skip
    """`value` if it is `rows` arrays (None: at least one) of `width` numbers each (None: all as
    long as the first)."""
    if type(value) is not list:
        raise BadInput(field, f"{path}: expected an array of vectors, got {type_name(value)}")
    if rows is not None and len(value) != rows:
        raise BadInput(field, f"{path}: expected {rows} vectors, got {len(value)}")
    if not value:
        raise BadInput(field, f"{path}: empty")
    if width is None and type(value[0]) is list:
        width = len(value[0])
    for i, row in enumerate(value):
        vector(row, field, width, f"{path}[{i}]", finite)
    return value


def _index_path(field: str, drop_first: bool) -> Callable[[tuple[int, ...]], str]:
    def where(index: tuple[int, ...]) -> str:
        return field + "".join(f"[{i}]" for i in (index[1:] if drop_first else index))

    return where


def float32_array(data: list[Any], field: str, drop_first: bool = False,
                  where: Callable[[tuple[int, ...]], str] | None = None) -> np.ndarray:  # fmt: skip
    """Checked nested lists of numbers as one float32 array, every value finite in float32.
    `drop_first`: `data` is one example wrapped in a list, so positions leave its index out."""
    try:
        with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf, refused below
            array = np.array(data, dtype=np.float32)
    except (OverflowError, ValueError, TypeError):
        raise BadInput(field, f"{field}: numbers that do not fit a 32-bit float") from None
    if not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        at = (where or _index_path(field, drop_first))(index)
        raise BadInput(field, f"{at}: not a finite 32-bit float (NaN, infinite, or beyond ±3.4e38)")
    return array


def whole_in(value: Any, field: str, low: int, high: int, path: str | None = None) -> int:
    """`value` if it is an int (not a bool) from `low` to `high`."""
    at = path or field
    if type(value) is not int:
        raise BadInput(field, f"{at}: expected a whole number, got {type_name(value)}")
    if not low <= value <= high:
        raise BadInput(field, f"{at}: {value} is out of range ({low} to {high})")
    return value


def fraction(value: Any, field: str) -> float:
    """`value` if it is a number from 0.0 to 1.0 (not a bool)."""
    if type(value) is not float and type(value) is not int:
        raise BadInput(field, f"expected a number from 0.0 to 1.0, got {type_name(value)}")
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise BadInput(field, f"{value!r} is out of range (0.0 to 1.0)")
    return float(value)
