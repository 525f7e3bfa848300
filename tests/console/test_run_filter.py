"""The run list's filter, sort and columns as plain logic (console/run_filter.py), and the
name cell's width budget (console/widgets/runlist.py), without a terminal."""

from __future__ import annotations

import math
from pathlib import Path

from trainledger.console.run_filter import (
    Column,
    ListView,
    config_keys,
    config_value,
    filter_runs,
    fit,
    flatten,
    format_value,
    matches,
    parse_query,
    sort_runs,
)
from trainledger.console.widgets.runlist import COLUMNS, STATUS_WIDTH, name_cell, name_width_for
from trainledger.engines.workspace import RunInfo


def _run(run_id: str, **kw: object) -> RunInfo:
    return RunInfo(id=run_id, path=Path("/nowhere") / run_id, **kw)  # type: ignore[arg-type]


RUNS = [
    _run("a1", status="finished", model="lvm-amn", started=1.0, tags=("best", "sweep"), name="alpha",
         config={"lr": 0.01, "opt": {"beta": 0.9, "name": "adam"}, "batch": 32}),
    _run("b2", status="failed", model="ternary-vae", started=2.0, tags=("sweep",),
         config={"lr": 0.001, "opt": {"beta": 0.99}}),
    _run("c3", status="running", model="lvm-amn", started=3.0, name="gamma [x]", config={"batch": 64}),
    _run("d4", status="finished", model="lora-lm", started=4.0, archived=True, tags=("old",)),
]  # fmt: skip


def test_flatten_gives_dotted_keys_and_every_runs_keys() -> None:
    assert flatten({"opt": {"lr": 1e-3, "betas": [0.9, 0.99]}, "n": 1}) == {
        "opt.lr": 1e-3, "opt.betas": [0.9, 0.99], "n": 1}  # fmt: skip
    assert config_keys(RUNS) == ["batch", "lr", "opt.beta", "opt.name"]
    assert config_value(RUNS[0], "opt.beta") == 0.9
    assert config_value(RUNS[2], "lr") is None


def test_query_terms_model_status_tag_and_text() -> None:
    def ids(q: str, archived: bool = False) -> list[str]:
        return [r.id for r in filter_runs(RUNS, parse_query(q), archived)]

    assert ids("") == ["a1", "b2", "c3"]  # archived hidden by default
    assert ids("", archived=True) == ["a1", "b2", "c3", "d4"]
    assert ids("model:lvm") == ["a1", "c3"]
    assert ids("status:fin") == ["a1"]
    assert ids("status:FAILED") == ["b2"]
    assert ids("tag:sweep") == ["a1", "b2"]
    assert ids("tag:swe") == []  # a tag is matched whole
    assert ids("tag:sweep -tag:best") == ["b2"]
    assert ids("alpha") == ["a1"]  # the name
    assert ids("b2") == ["b2"]  # the id
    assert ids("best") == ["a1"]  # a tag, as free text
    assert ids("[x]") == ["c3"]  # brackets are text, not markup or a pattern
    assert ids("model:lvm status:running") == ["c3"]
    assert ids("tag:") == ["a1", "b2", "c3"]  # half-typed: no term yet
    assert not matches(RUNS[0], parse_query("-alpha"))


def test_sort_numbers_as_numbers_missing_last_either_way() -> None:
    runs = [_run(f"r{i}", started=float(i), config=c) for i, c in enumerate(
        [{"lr": 0.1}, {"lr": 2}, {}, {"lr": 10}, {"lr": math.nan}, {"lr": 0.01}])]  # fmt: skip

    def lr(info: RunInfo) -> object:
        return config_value(info, "lr")

    assert [r.id for r in sort_runs(runs, lr)] == ["r5", "r0", "r1", "r3", "r4", "r2"]  # 10 after 2
    assert [r.id for r in sort_runs(runs, lr, reverse=True)] == ["r3", "r1", "r0", "r5", "r4", "r2"]
    assert [r.id for r in sort_runs(runs, None)] == ["r5", "r4", "r3", "r2", "r1", "r0"]  # newest first
    # Text sorts case-blind; a tie keeps newest first.
    named = [_run("x", started=1.0, name="b"), _run("y", started=2.0, name="B"), _run("z", started=3.0, name="a")]
    assert [r.id for r in sort_runs(named, lambda r: r.label)] == ["z", "y", "x"]


def test_list_view_cycles_every_column_and_labels_the_sort() -> None:
    lv = ListView(columns=[Column("config", "lr"), Column("metric", "loss")])
    seen = [lv.next_sort() for _ in range(len(lv.sort_ids()))]
    assert seen[-1] == "started" and "config:lr" in seen and "metric:loss" in seen
    lv.sort, lv.reverse = "config:lr", True
    assert lv.sort_label() == "sort lr ↑"


def test_values_read_short_and_cut_at_the_right() -> None:
    assert format_value(0.000123456) == "0.0001235"
    assert format_value(3) == "3" and format_value(True) == "true" and format_value(None) == ""
    assert format_value([1, 2.5]) == "[1,2.5]"
    assert format_value("\x1b[31mred") == "␛[31mred"
    assert fit("abcdefgh", 5) == "abcd…" and fit("abc", 5) == "abc"


def test_name_cell_keeps_the_start_of_a_name_and_shows_tags_while_they_fit() -> None:
    assert name_cell("  ", "lvm-amn-2026-12-03-long-name", (), 17) == "  lvm-amn-2026-1…"
    assert name_cell("  ", "short", ("best", "sweep"), 17) == "  short #best #…"
    assert name_cell("  ", "short", ("best",), 17) == "  short #best"
    assert name_cell(" ✓", "[/]", (), 17) == " ✓[/]"


def test_the_status_column_fits_finished_whole_at_80_columns() -> None:
    # The narrow list (CurvesPane._fit_columns): 32 cells, a border and a scrollbar included.
    assert STATUS_WIDTH >= len("finished") and STATUS_WIDTH >= len("⚠ unknown")
    name = name_width_for(32, COLUMNS[:2])
    assert name + 2 + STATUS_WIDTH + 2 + 1 + 1 == 32
