"""The braille chart renderer: exact geometry, spikes that survive, log scale, markers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from trainledger.console.widgets.chart import (
    BEST_GLYPH,
    ChartMarker,
    ChartResult,
    ChartSeries,
    format_compact,
    format_duration,
    render_chart,
)


def _series(n: int = 200, style: str = "red", **kw) -> ChartSeries:
    x = np.arange(n, dtype=np.float64)
    y = 1.0 + np.exp(-x / max(n / 5, 1))
    return ChartSeries(label="run", x=x, y=y, style=style, **kw)


def _plain(result: ChartResult) -> list[str]:
    return [line.plain for line in result.lines]


def _plot_cells(result: ChartResult) -> list[str]:
    """The braille part of each plot row."""
    left, w, h = result.plot_left, result.plot_width, result.plot_height
    return [line.plain[left : left + w] for line in result.lines[:h]]


def _dot_rows_in_column(result: ChartResult, cell_col: int) -> set[int]:
    """Which dot rows (0 = top) are lit in one cell column of the plot."""
    rows: set[int] = set()
    for r, row in enumerate(_plot_cells(result)):
        ch = row[cell_col]
        if not "\u2800" <= ch <= "\u28ff":
            continue
        bits = ord(ch) - 0x2800
        for dot, mask in enumerate((0x09, 0x12, 0x24, 0xC0)):  # both dots of each dot row
            if bits & mask:
                rows.add(r * 4 + dot)
    return rows


@pytest.mark.parametrize(
    "width,height", [(20, 5), (21, 6), (40, 10), (80, 24), (123, 37), (300, 80)]
)
def test_exact_geometry(width: int, height: int) -> None:
    markers = [ChartMarker(10, "▲", "yellow", "phase")]
    res = render_chart([_series(), _series(50, "blue")], width, height, markers=markers)
    assert len(res.lines) == height
    for line in res.lines:
        assert line.cell_len == width
        assert "\n" not in line.plain
    assert res.points_in == 250
    assert 0 < res.points_drawn <= 250


@pytest.mark.parametrize(
    "width,height", [(0, 0), (1, 1), (19, 10), (40, 4), (5, 30), (0, 7), (7, 0)]
)
def test_tiny_sizes_show_a_message(width: int, height: int) -> None:
    res = render_chart([_series()], width, height)
    assert len(res.lines) == height
    assert all(line.cell_len == width for line in res.lines)
    assert res.points_drawn == 0


def test_empty_shows_empty_text() -> None:
    res = render_chart([], 60, 12, empty_text="run `trainledger demo`")
    assert len(res.lines) == 12 and all(line.cell_len == 60 for line in res.lines)
    assert any("run `trainledger demo`" in text for text in _plain(res))
    assert (res.points_in, res.points_drawn, res.hidden_nonpositive) == (0, 0, 0)
    empty_arrays = ChartSeries("a", np.array([]), np.array([]), "red")
    assert "no data" in "".join(_plain(render_chart([empty_arrays], 60, 12)))


def test_single_spike_in_a_million_points_is_drawn() -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    x = np.arange(n, dtype=np.float64)
    y = 0.8 + 0.01 * rng.standard_normal(n)
    y[537_123] = 10.03
    res = render_chart([ChartSeries("loss", x, y, "red")], 80, 20)
    assert res.points_in == n
    assert res.points_drawn < 1000
    # The top dot row holds 10.03 (padding is 5 %): only the spike can light it.
    top_row = _plot_cells(res)[0]
    lit = [i for i, ch in enumerate(top_row) if ch != " "]
    assert len(lit) == 1
    expected_col = int(537_123 / (n - 1) * res.plot_width * 2) // 2
    assert abs(lit[0] - expected_col) <= 1
    assert "10" in res.lines[0].plain[: res.plot_left]  # top tick label near the spike's value


def test_lines_are_connected_between_sparse_points() -> None:
    x = np.array([0.0, 100.0])
    y = np.array([0.0, 1.0])
    res = render_chart([ChartSeries("a", x, y, "red")], 60, 12)
    # every plot column between the two points has at least one lit dot
    for col in range(res.plot_width):
        assert _dot_rows_in_column(res, col), col


def test_log_y_drops_and_counts_nonpositive() -> None:
    x = np.arange(10, dtype=np.float64)
    y = np.array([1.0, 0.0, -3.0, 10.0, 100.0, 1000.0, 0.0, 5.0, 50.0, 0.5])
    lin = render_chart([ChartSeries("a", x, y, "red")], 60, 12)
    assert lin.hidden_nonpositive == 0
    res = render_chart([ChartSeries("a", x, y, "red")], 60, 12, log_y=True)
    assert res.hidden_nonpositive == 3
    assert res.points_in == 10
    assert res.y_range is not None and res.y_range[0] > 0
    labels = " ".join(line.plain[: res.plot_left] for line in res.lines[: res.plot_height])
    assert "1k" in labels or "1.4k" in labels or "k" in labels  # ticks in real units, not log10
    assert "3" not in labels.split()  # log10(1000) == 3 must not be shown


def test_log_y_all_nonpositive_says_why() -> None:
    x = np.arange(5, dtype=np.float64)
    res = render_chart([ChartSeries("a", x, -x, "red")], 60, 12, log_y=True)
    assert res.hidden_nonpositive == 5
    assert any("log scale hides 5" in text for text in _plain(res))
    assert all(line.cell_len == 60 for line in res.lines)


def test_constant_series_and_single_point() -> None:
    x = np.arange(1000, dtype=np.float64)
    res = render_chart([ChartSeries("flat", x, np.full(1000, 0.5), "red")], 50, 10)
    assert all(line.cell_len == 50 for line in res.lines)
    lit_rows = [r for r, row in enumerate(_plot_cells(res)) if row.strip()]
    assert len(lit_rows) == 1  # a flat line
    zero = render_chart([ChartSeries("zero", x, np.zeros(1000), "red")], 50, 10, log_y=False)
    assert all(line.cell_len == 50 for line in zero.lines)
    one = render_chart([ChartSeries("one", np.array([7.0]), np.array([3.0]), "red")], 50, 10)
    assert sum(row.count(" ") < len(row) for row in _plot_cells(one)) == 1


def test_markers_land_in_their_column() -> None:
    x = np.linspace(0, 1000, 500)
    markers = [
        ChartMarker(0.0, "▲", "yellow", "start"),
        ChartMarker(500.0, "■", "red", "early stop"),
        ChartMarker(1000.0, "◆", "green", "end"),
        ChartMarker(5000.0, "x", "red", "out of range"),
    ]
    res = render_chart([ChartSeries("a", x, np.sin(x), "blue")], 61, 12, markers=markers)
    row = res.lines[res.plot_height]
    plot = row.plain[res.plot_left :]
    assert plot[0] == "▲"
    assert plot[res.plot_width - 1] == "◆"
    mid = int(0.5 * res.plot_width * 2) // 2
    assert plot[mid] == "■"
    assert "x" not in plot
    # the glyph carries the marker's style
    styles = {str(span.style) for span in row.spans if row.plain[span.start : span.end] == "■"}
    assert styles == {"red"}


def test_best_point_glyph_in_series_style() -> None:
    x = np.arange(100, dtype=np.float64)
    y = (x - 40) ** 2 / 1000 + 0.3
    res = render_chart([ChartSeries("a", x, y, "bold cyan", best=(40.0, 0.3))], 60, 14)
    hits = [
        (r, line.plain.index(BEST_GLYPH))
        for r, line in enumerate(res.lines)
        if BEST_GLYPH in line.plain
    ]
    assert len(hits) == 1
    r, col = hits[0]
    assert r < res.plot_height
    assert col - res.plot_left == int(40 / 99 * res.plot_width * 2) // 2
    line = res.lines[r]
    owners = [str(span.style) for span in line.spans if span.start <= col < span.end]
    assert owners == ["bold cyan"]


def test_last_series_owns_shared_cells() -> None:
    x = np.arange(100, dtype=np.float64)
    y = np.ones(100)
    res = render_chart(
        [ChartSeries("a", x, y, "red"), ChartSeries("b", x, y, "blue")], 40, 8
    )
    styles = {str(s.style) for line in res.lines[: res.plot_height] for s in line.spans}
    assert "blue" in styles and "red" not in styles


def test_axis_labels() -> None:
    x = np.arange(0, 20_001, dtype=np.float64)
    res = render_chart([ChartSeries("a", x, x / 20_000, "red")], 80, 20)
    ticks = res.lines[-1].plain
    assert "10k" in ticks and "20k" in ticks and "step" in ticks
    y_labels = [line.plain[: res.plot_left].strip() for line in res.lines[: res.plot_height]]
    labelled = [i for i, t in enumerate(y_labels) if t]
    assert labelled[0] == 0 and labelled[-1] == res.plot_height - 1 and len(labelled) >= 3
    timed = render_chart([ChartSeries("a", x, x, "red")], 80, 20, x_label="time")
    assert "h" in timed.lines[-1].plain and "m" in timed.lines[-1].plain


@pytest.mark.parametrize(
    "value,text",
    [
        (0, "0"),
        (0.8123, "0.812"),
        (12.345, "12.3"),
        (1234, "1.23k"),
        (999_960, "1M"),
        (12_000_000, "12M"),
        (0.00012, "1.2e-4"),
        (-0.5, "-0.5"),
        (3e9, "3G"),
    ],
)
def test_format_compact(value: float, text: str) -> None:
    assert format_compact(value) == text


@pytest.mark.parametrize(
    "seconds,text",
    [(45, "45s"), (720, "12m"), (10_800, "3h"), (5400, "1.5h"), (0, "0s"), (2 * 86400, "2d")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_widths_hold_with_wide_labels() -> None:
    x = np.arange(50, dtype=np.float64)
    for y in (x * 1e-7 + 1e-7, -x * 1e6, x * 0 + 123456.789, 1 + x * 1e-9):
        res = render_chart([ChartSeries("a", x * 1e7, y, "red")], 20, 5)
        assert all(line.cell_len == 20 for line in res.lines)
        assert all(cell_len(line.plain) == 20 for line in res.lines)


def test_non_finite_values_do_not_break_geometry() -> None:
    x = np.arange(100, dtype=np.float64)
    y = np.linspace(1, 2, 100)
    y[10] = np.nan
    y[20] = np.inf
    res = render_chart([ChartSeries("a", x, y, "red")], 40, 10)
    assert len(res.lines) == 10 and all(line.cell_len == 40 for line in res.lines)
    assert res.y_range is not None and all(np.isfinite(res.y_range))


def test_styles_may_be_rich_style_objects() -> None:
    from rich.style import Style

    x = np.arange(30, dtype=np.float64)
    style = Style(color="magenta", bold=True)
    res = render_chart(
        [ChartSeries("a", x, x, style, best=(29.0, 29.0))],
        40,
        10,
        markers=[ChartMarker(5.0, "▲", Style(color="yellow"), "phase")],
        axis_style=Style(dim=True),
    )
    assert any(span.style == style for line in res.lines for span in line.spans)


async def test_widget_renders_and_caches() -> None:
    from rich.style import Style
    from textual.app import App, ComposeResult

    from trainledger.console.widgets.chart import LineChart

    class ChartApp(App[None]):
        def compose(self) -> ComposeResult:
            yield LineChart(id="chart")

    app = ChartApp()
    async with app.run_test(size=(70, 20)) as pilot:
        chart = app.query_one(LineChart)
        chart.set_data([_series(1000)], [ChartMarker(100, "▲", "yellow", "phase")], log_y=True)
        await pilot.pause()
        result = chart.last_result
        assert result is not None and result.points_in == 1000
        assert len(result.lines) + len(chart.readout) == chart.content_size.height  # focused: the readout too
        chart.render()
        assert chart.last_result is result  # same data and size: cached
        chart.set_data([_series(10)])
        chart.render()
        assert chart.last_result is not result and chart.last_result.points_in == 10
        # the axis takes $text-muted resolved against the theme (dark grey on a light one)
        chart.action_hide_cursor()  # the focused chart's cursor crosses the axis in its own colour
        app.theme = "textual-light"
        await pilot.pause()
        chart.render()
        axis = chart.last_result.lines[-2]
        color = axis.spans[0].style.color if axis.spans else Style.parse(str(axis.style)).color
        assert color is not None and color.triplet is not None
        assert max(color.triplet) < 200


# ---------------------------------------------------------------- finite extremes

_MAX = 1.7976931348623157e308
_finite = st.floats(allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    "x,y",
    [
        ([0, 1], [-1e308, 1e308]),
        ([-1e308, 1e308], [0, 1]),
        ([-_MAX, _MAX], [-_MAX, _MAX]),
        ([_MAX, _MAX], [_MAX, _MAX]),
        ([0, 1, 2], [_MAX, -_MAX, 0]),
        ([1e-308, 2e-308], [5e-324, 1e-323]),
    ],
)
@pytest.mark.parametrize("log_y", [False, True])
def test_finite_extremes_draw(x: list[float], y: list[float], log_y: bool) -> None:
    with np.errstate(all="raise"):  # an overflow inside is a failure, not a warning
        result = render_chart(
            [ChartSeries("a", np.array(x, float), np.array(y, float), "", best=(x[-1], y[-1]))],
            80, 20, log_y=log_y, markers=[ChartMarker(x[0], "▲", "", "phase")],
        )  # fmt: skip
    assert len(result.lines) == 20 and all(line.cell_len == 80 for line in result.lines)
    if not log_y:
        assert result.points_drawn > 0
        assert result.x_range[0] <= min(x) and result.x_range[1] >= max(x)
        assert all(np.isfinite(result.y_range))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_finite, _finite), min_size=1, max_size=30),
    st.booleans(),
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=0, max_value=40),
)
def test_any_finite_floats_draw(
    points: list[tuple[float, float]], log_y: bool, width: int, height: int
) -> None:
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    result = render_chart([ChartSeries("a", x, y, "", best=points[0])], width, height, log_y=log_y)
    assert len(result.lines) == height
    assert all(line.cell_len == width for line in result.lines)


def test_a_best_point_far_outside_a_rescaled_range_is_skipped() -> None:
    """Found by hypothesis: log scale drops the huge point; the best stays at it."""
    points = [(1.6759759912428246e153, 0.0), (7.936979403755941e-156, 1.0)]
    x, y = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    marker = ChartMarker(1.6759759912428246e153, "▲", "", "far")
    result = render_chart([ChartSeries("a", x, y, "", best=points[0])], 40, 10, log_y=True,
                          markers=[marker])  # fmt: skip
    assert len(result.lines) == 10 and all(line.cell_len == 40 for line in result.lines)


# ---------------------------------------------------------------- issue 14 item 7: the first hour


def _ticks(result: ChartResult) -> str:
    return result.lines[-1].plain


def test_a_one_point_chart_has_a_sensible_x_axis() -> None:
    """One point at step 7 used to give an axis of -0.4 … 0.4 (steps that never happened)."""
    one = render_chart([ChartSeries("one", np.array([7.0]), np.array([3.0]), "red")], 50, 10)
    assert one.x_range == (0.0, 7.0)
    ticks = _ticks(one).split()
    assert "step" in ticks
    numbers = [t for t in ticks if t != "step"]
    assert numbers[0] == "0" and len(numbers) >= 2
    assert all(0 <= float(t) <= 7 and "." not in t for t in numbers)  # no negative or fractional step
    lit = [(r, c) for r, row in enumerate(_plot_cells(one)) for c, ch in enumerate(row) if ch != " "]
    assert len(lit) == 1 and lit[0][1] == one.plot_width - 1  # the point is drawn, at its step
    at_zero = render_chart([ChartSeries("z", np.array([0.0]), np.array([3.0]), "red")], 50, 10)
    lo, hi = at_zero.x_range
    assert lo < 0 < hi and "-0.4" not in _ticks(at_zero)


def test_step_ticks_are_whole_steps() -> None:
    res = render_chart([ChartSeries("a", np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]), "red")], 60, 10)
    assert all("." not in t for t in _ticks(res).split()[1:])


def test_the_epoch_axis_is_labelled() -> None:
    """`epoch` is wider than a narrow y gutter: it used to be dropped, so the axis had no name."""
    x = np.arange(0, 50, dtype=np.float64)
    res = render_chart([ChartSeries("a", x, x, "red")], 60, 12, x_label="epoch")
    assert res.plot_left <= len("epoch")  # the gutter is too narrow for the name
    assert "epoch" in _ticks(res)
    assert _ticks(res).rstrip().endswith("epoch")
    assert all(line.cell_len == 60 for line in res.lines)


def test_a_series_may_have_its_own_best_glyph() -> None:
    from trainledger.console.widgets.chart_render import BASELINE_BEST_GLYPH

    x = np.arange(100, dtype=np.float64)
    y = (x - 40) ** 2 / 1000 + 0.3
    res = render_chart([ChartSeries("b", x, y + 1, "red", best=(40.0, 1.3), best_glyph=BASELINE_BEST_GLYPH),
                        ChartSeries("a", x, y, "blue", best=(40.0, 0.3))], 60, 14)
    text = "\n".join(_plot_cells(res))
    assert text.count(BASELINE_BEST_GLYPH) == 1 and text.count(BEST_GLYPH) == 1


def test_zoom_fixes_the_x_range_and_fits_y_to_what_is_inside() -> None:
    x = np.arange(1000, dtype=np.float64)
    y = np.where(x < 500, 100.0, 1.0 + x / 1000)
    res = render_chart([ChartSeries("a", x, y, "red")], 60, 12, x_range=(600.0, 800.0))
    assert res.x_range == (600.0, 800.0)
    assert res.y_range is not None and res.y_range[1] < 2.0  # the 100s before the zoom do not count
    assert res.points_drawn <= 201
    bad = render_chart([ChartSeries("a", x, y, "red")], 60, 12, x_range=(5.0, 5.0))
    assert bad.x_range == (0.0, 999.0)  # an empty zoom is ignored


def test_the_cursor_is_a_column_of_its_own() -> None:
    x = np.arange(101, dtype=np.float64)
    res = render_chart([ChartSeries("a", x, x, "red")], 60, 12, cursor_x=50.0, cursor_style="bold magenta")
    col = res.cursor_col
    assert col is not None and 0 <= col < res.plot_width
    column = [row[col] for row in _plot_cells(res)]
    assert column.count("│") >= res.plot_height - 2  # blank cells show it, the curve stays on top
    lo, hi = res.x_range
    edge = lo + (hi - lo) * (col + 1) / res.plot_width
    assert edge - (hi - lo) / res.plot_width < 50.0 <= edge + 1e-9
    assert res.lines[res.plot_height + 1].plain[res.plot_left + col] == "┼"
    assert render_chart([ChartSeries("a", x, x, "red")], 60, 12, cursor_x=500.0).cursor_col is None


# ---------------------------------------------------------------- build_chart: legend and glyphs


def _snapshots(tmp_path, runs: dict[str, tuple[list[dict], list[dict]]]):  # noqa: ANN202
    import json

    from trainledger.engines.metrics.series import RunSeries

    snaps = {}
    for run_id, (rows, events) in runs.items():
        d = tmp_path / run_id
        d.mkdir()
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        series = RunSeries(d)
        series.refresh()
        snaps[run_id] = series.snapshot()
    return snaps


def _model(tmp_path, runs, state=None, order=None):  # noqa: ANN202
    from trainledger.console.curves_view import CurvesState, build_chart

    snaps = _snapshots(tmp_path, runs)
    state = state or CurvesState()
    ids = order or list(runs)
    return build_chart("loss", ids, snaps, {}, state, ["red", "blue", "green"],
                       {"phase": "yellow", "other": "cyan"}, {r: i for i, r in enumerate(ids)})


def test_runs_without_the_metric_are_listed_under_the_chart(tmp_path) -> None:
    """A compared run without the metric used to vanish from chart and legend alike."""
    rows = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(5)]
    other = [{"step": i, "acc": 0.5} for i in range(5)]
    model = _model(tmp_path, {"run-a": (rows, []), "run-b": (other, []), "run-c": (other, [])})
    assert [s.label for s in model.series] == ["run-a"]
    assert model.missing == ["run-b", "run-c"]
    legend = [t.plain for t in model.legend]
    assert "no loss: run-b, run-c" in legend


def test_the_resume_marker_is_in_the_legend(tmp_path) -> None:
    """`•` (a resumed run) was drawn under the chart and explained nowhere."""
    rows = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(10)]
    events = [{"kind": "resumed", "step": 5, "message": "resumed at step 5"},
              {"kind": "phase", "step": 2, "message": "warm-up done"}]
    model = _model(tmp_path, {"run-a": (rows, events)})
    assert {m.glyph for m in model.markers} == {"•", "▲"}
    key = [t.plain for t in model.legend if "resumed" in t.plain]
    assert key and "• resumed" in key[0] and "▲ phase" in key[0] and "◆ best" in key[0]


def test_the_pinned_baseline_has_its_own_glyph(tmp_path) -> None:
    """The baseline's best point was `◆`, the same as every run's "best"."""
    from trainledger.console.curves_view import CurvesState
    from trainledger.console.widgets.chart_render import BASELINE_BEST_GLYPH

    rows = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(10)]
    state = CurvesState(pinned="base")
    higher = [{"step": r["step"], "loss": r["loss"] + 1} for r in rows]
    model = _model(tmp_path, {"base": (higher, []), "run-a": (rows, [])}, state=state)
    glyphs = {s.label: s.best_glyph for s in model.series}
    assert glyphs == {"base (baseline)": BASELINE_BEST_GLYPH, "run-a": BEST_GLYPH}
    assert BASELINE_BEST_GLYPH != BEST_GLYPH
    key = " ".join(t.plain for t in model.legend)
    assert f"{BASELINE_BEST_GLYPH} baseline best" in key
    drawn = render_chart(model.series, 60, 12)
    text = "\n".join(_plot_cells(drawn))
    assert BASELINE_BEST_GLYPH in text


def test_many_runs_without_the_metric_are_counted_not_listed(tmp_path) -> None:
    from trainledger.console.curves_view import MISSING_NAMED

    rows = [{"step": i, "loss": 1.0} for i in range(3)]
    other = [{"step": 1, "acc": 0.5}]
    runs = {"run-a": (rows, [])} | {f"o{k:02d}": (other, []) for k in range(MISSING_NAMED + 4)}
    model = _model(tmp_path, runs)
    assert len(model.missing) == MISSING_NAMED + 4
    line = model.legend[0].plain
    assert line.startswith("no loss: o00, o01") and line.endswith(" and 4 more")
