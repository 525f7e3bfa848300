"""Which runs the run list shows, in which order, with which extra columns: pure logic.

The Curves pane's run list filters (`/`: free text over id, name and tags, plus `model:`,
`status:` and `tag:` terms), sorts by any column (numbers as numbers, missing values last
in either direction) and shows chosen config keys and metrics as columns (`h`), as W&B's
runs table does. Nothing here touches a terminal or a file, so all of it is tested plainly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from trainledger.engines.safetext import clean
from trainledger.engines.workspace import RunInfo

MAX_DEPTH = 6  # nested config deeper than this is shown as one value
COLUMN_MIN, COLUMN_MAX = 6, 16  # widths of a chosen column


# --------------------------------------------------------------------------- config keys
def flatten(config: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """`{"opt": {"lr": 1e-3}}` -> `{"opt.lr": 1e-3}`: every leaf under a dotted key."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and depth < MAX_DEPTH:
            out.update(flatten(value, name + ".", depth + 1))
        else:
            out[name] = value
    return out


def config_keys(infos: Iterable[RunInfo]) -> list[str]:
    """Every dotted config key of these runs, sorted."""
    keys: set[str] = set()
    for info in infos:
        if isinstance(info.config, dict):
            keys.update(flatten(info.config))
    return sorted(keys)


# --------------------------------------------------------------------------- columns
@dataclass(frozen=True)
class Column:
    """A chosen column: a config key (`config`) or a metric (`metric`: its best if it has a
    direction, else its last value)."""

    kind: str  # "config" | "metric"
    key: str

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.key}"


# The run list's own columns that `o` sorts by (id, header) - besides the chosen ones.
BASE_SORTS = (("started", "started"), ("run", "run"), ("status", "status"), ("progress", "progress"),
              ("model", "model"), ("tags", "tags"))  # fmt: skip


def column_width(header: str) -> int:
    return max(COLUMN_MIN, min(COLUMN_MAX, len(header)))


def fit(text: str, width: int) -> str:
    """`text` in `width` cells: cut at the right with an ellipsis, never from the left."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def format_value(value: Any) -> str:
    """A config or metric value as a short cell text (numbers in 4 significant digits)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 100_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{…}"
    return clean(str(value))


def config_value(info: RunInfo, key: str) -> Any:
    if not isinstance(info.config, dict):
        return None
    if key in info.config and not isinstance(info.config[key], Mapping):
        return info.config[key]
    return flatten(info.config).get(key)


# --------------------------------------------------------------------------- sorting
def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text; NaN and missing values are handled by the caller (last)."""
    if isinstance(value, bool):
        return (0, float(value))
    if isinstance(value, (int, float)):
        return (0, float(value))
    return (1, str(value).casefold())


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def sort_runs(
    runs: Sequence[RunInfo], value: Callable[[RunInfo], Any] | None, reverse: bool = False
) -> list[RunInfo]:
    """Runs sorted by `value(run)` (None: newest first); missing values last, either way.

    Ties keep newest first, so an equal column reads like the default list.
    """
    newest = sorted(runs, key=lambda r: (r.started or 0.0, r.id), reverse=True)
    if value is None:
        return newest if not reverse else newest[::-1]
    have, lack = [], []
    for info in newest:
        v = value(info)
        (lack if _missing(v) else have).append((info, v))
    have.sort(key=lambda p: _sort_key(p[1]), reverse=reverse)  # stable: ties stay newest first
    return [i for i, _ in have] + [i for i, _ in lack]


# --------------------------------------------------------------------------- filtering
FIELDS = ("model", "status", "tag")


@dataclass(frozen=True)
class RunQuery:
    """A parsed filter: every term must hold. `-term` negates one."""

    text: tuple[tuple[str, bool], ...] = ()  # (word, negated): in id, name or a tag
    fields: tuple[tuple[str, str, bool], ...] = ()  # (field, value, negated)
    source: str = ""

    @property
    def empty(self) -> bool:
        return not self.text and not self.fields


def parse_query(source: str) -> RunQuery:
    """`loss tag:best model:lvm -status:failed` -> a RunQuery (case-insensitive)."""
    text: list[tuple[str, bool]] = []
    fields: list[tuple[str, str, bool]] = []
    for word in source.split():
        neg = word.startswith("-") and len(word) > 1
        body = word[1:] if neg else word
        name, sep, val = body.partition(":")
        if sep and name.casefold() in FIELDS:
            if val:
                fields.append((name.casefold(), val.casefold(), neg))
            continue  # `tag:` alone, while typing, is no term yet
        text.append((body.casefold(), neg))
    return RunQuery(tuple(text), tuple(fields), source)


def matches(info: RunInfo, query: RunQuery) -> bool:
    """Whether the run passes every term of the filter."""
    tags = [t.casefold() for t in info.tags]
    haystack = " ".join([info.id, info.name or "", *info.tags]).casefold()
    for word, neg in query.text:
        if (word in haystack) == neg:
            return False
    for name, val, neg in query.fields:
        if name == "model":
            hit = val in (info.model or "").casefold()
        elif name == "status":
            hit = info.status.casefold().startswith(val)
        else:
            hit = val in tags
        if hit == neg:
            return False
    return True


def filter_runs(runs: Iterable[RunInfo], query: RunQuery, show_archived: bool = False) -> list[RunInfo]:
    return [r for r in runs if (show_archived or not r.archived) and (query.empty or matches(r, query))]


# --------------------------------------------------------------------------- the list's view
@dataclass
class ListView:
    """What the user chose for the run list: filter, sort, extra columns, archived shown."""

    query: RunQuery = field(default_factory=RunQuery)
    sort: str = "started"  # a BASE_SORTS id or a Column.id
    reverse: bool = False  # False is each column's natural order (started: newest first)
    columns: list[Column] = field(default_factory=list)
    show_archived: bool = False

    def sort_ids(self) -> list[str]:
        return [k for k, _ in BASE_SORTS] + [c.id for c in self.columns]

    def next_sort(self) -> str:
        ids = self.sort_ids()
        i = ids.index(self.sort) if self.sort in ids else -1
        self.sort = ids[(i + 1) % len(ids)]
        self.reverse = False
        return self.sort

    def sort_label(self) -> str:
        labels = dict(BASE_SORTS)
        for c in self.columns:
            labels[c.id] = c.key
        arrow = "↑" if self.reverse else "↓"
        return f"sort {labels.get(self.sort, self.sort)} {arrow}"
