"""How long the Curves chart takes to draw a 1,000,000-point run into an 80x20 widget.

The bar is ~30 ms per render (a live chart redraws on every new metrics row). The time
is split into the min/max bucketing (engines.metrics.downsample) and everything else,
so a regression points at the right module. Run: `python benchmarks/chart_render.py`.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from trainledger.console.widgets.chart import ChartMarker, ChartSeries, render_chart
from trainledger.engines.metrics.downsample import minmax_buckets

N = 1_000_000
WIDTH, HEIGHT = 80, 20
REPEAT = 30


def _loss_curve(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.arange(n, dtype=np.float64)
    y = 0.8 + 2.0 * np.exp(-x / (n / 20)) + 0.02 * rng.standard_normal(n)
    y[n // 2 + 37] = 10.03  # seed 002's schedule-change spike
    return x, y


def _time(fn, repeat: int = REPEAT) -> tuple[float, float]:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), min(samples)


def main() -> None:
    x, y = _loss_curve(N)
    series = [ChartSeries("loss", x, y, "#4ea1ff", best=(float(x[-1]), float(y[-1])))]
    markers = [ChartMarker(float(N // 2), "▲", "yellow", "phase change")]
    cases = {
        "linear": dict(log_y=False),
        "log_y": dict(log_y=True),
    }
    print(f"render_chart, {N:,} points -> {WIDTH}x{HEIGHT} cells, median/min of {REPEAT}")
    for name, kw in cases.items():
        med, best = _time(lambda kw=kw: render_chart(series, WIDTH, HEIGHT, markers=markers, **kw))
        print(f"  {name:<8} {med:7.2f} ms  (min {best:.2f} ms)")
    plot_cols = 2 * (WIDTH - 6)
    med, best = _time(lambda: minmax_buckets(x, y, plot_cols, x_range=(0.0, float(N - 1))))
    print(f"  of which minmax_buckets alone: {med:.2f} ms (min {best:.2f} ms)")
    two = series + [ChartSeries("loss b", *_loss_curve(N, seed=1), "#ffb454")]
    med, best = _time(lambda: render_chart(two, WIDTH, HEIGHT, markers=markers))
    print(f"  2 runs x {N:,} points: {med:.2f} ms (min {best:.2f} ms)")
    result = render_chart(series, WIDTH, HEIGHT, markers=markers)
    print(f"  drew {result.points_drawn:,} of {result.points_in:,} points")


if __name__ == "__main__":
    main()
