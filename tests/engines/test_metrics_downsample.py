"""minmax_buckets keeps every extreme; ema matches the plain loop."""

from __future__ import annotations

import time

import numpy as np
import pytest

from trainledger.engines.metrics.downsample import ema, minmax_buckets


def loop_ema(y: np.ndarray, w: float) -> np.ndarray:
    out = np.full(y.shape, np.nan)
    s = None
    for i, v in enumerate(y):
        if not np.isfinite(v):
            continue
        s = v if s is None else w * s + (1 - w) * v
        out[i] = s
    return out


def test_extremes_survive() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(100_000, dtype=float)
    y = rng.normal(size=x.size)
    y[12_345] = 50.0
    y[77_777] = -40.0
    d = minmax_buckets(x, y, 100)
    assert d.n_in == 100_000 and d.n_out == 100 and d.x.size == 100
    assert d.ymax.max() == 50.0 and d.ymin.min() == -40.0
    assert np.all(d.ymin <= d.first) and np.all(d.first <= d.ymax)
    assert np.all(d.ymin <= d.last) and np.all(d.last <= d.ymax)
    assert d.first[0] == y[0] and d.last[-1] == y[-1]
    assert np.all(np.diff(d.x) > 0)


def test_equal_width_over_x_not_index() -> None:
    x = np.concatenate([np.linspace(0, 0.9, 1000), np.linspace(9, 10, 10)])
    y = np.concatenate([np.zeros(1000), np.ones(10)])
    d = minmax_buckets(x, y, 10)
    # the dense start fills one bucket; the sparse end another; the gap is empty
    assert d.n_out == 2 and np.array_equal(d.ymax, [0.0, 1.0])
    assert d.x[0] == pytest.approx(0.45) and d.x[1] == pytest.approx(9.5)


def test_unsorted_x_and_non_finite_ignored() -> None:
    x = np.array([5.0, 1.0, 3.0, np.nan, 2.0, 4.0, 0.0, 6.0, 7.0])
    y = np.array([50.0, 10.0, 30.0, 99.0, 20.0, np.inf, 0.0, 60.0, 70.0])
    d = minmax_buckets(x, y, 3)  # kept x: 0 1 2 3 5 6 7 -> buckets [0, 7/3) [7/3, 14/3) [14/3, 7]
    assert d.n_in == 7
    assert np.array_equal(d.ymin, [0.0, 30.0, 50.0]) and np.array_equal(d.ymax, [20.0, 30.0, 70.0])
    assert np.array_equal(d.first, [0.0, 30.0, 50.0]) and np.array_equal(d.last, [20.0, 30.0, 70.0])
    assert np.array_equal(d.x, [1.0, 3.0, 6.0])


def test_fewer_points_than_buckets() -> None:
    x = np.array([3.0, 1.0, 2.0])
    y = np.array([30.0, 10.0, 20.0])
    d = minmax_buckets(x, y, 200)
    assert d.n_out == 3 and np.array_equal(d.x, [1.0, 2.0, 3.0])
    assert np.array_equal(d.ymin, d.ymax) and np.array_equal(d.ymin, [10.0, 20.0, 30.0])
    empty = minmax_buckets(np.empty(0), np.empty(0), 10)
    assert empty.n_in == empty.n_out == 0


def test_x_range_and_constant_x() -> None:
    x = np.arange(1000, dtype=float)
    y = x.copy()
    d = minmax_buckets(x, y, 10, x_range=(100.0, 199.0))
    assert d.n_in == 100 and d.n_out == 10
    assert d.ymin[0] == 100.0 and d.ymax[-1] == 199.0
    c = minmax_buckets(np.ones(50), np.arange(50.0), 10)
    assert c.n_out == 1 and c.ymin[0] == 0 and c.ymax[0] == 49 and c.last[0] == 49


@pytest.mark.slow
def test_million_point_spike_survives_100_buckets() -> None:
    n = 1_000_000
    x = np.arange(n, dtype=float)
    y = 0.82 + 0.01 * np.sin(x / 1000)
    y[654_321] = 10.03
    t0 = time.perf_counter()
    d = minmax_buckets(x, y, 100)
    elapsed = time.perf_counter() - t0
    assert d.ymax.max() == 10.03 and d.n_out == 100
    assert elapsed < 0.5  # a few ms normally


@pytest.mark.parametrize("w", [0.0, 0.1, 0.5, 0.6, 0.9, 0.99, 0.999])
def test_ema_matches_loop(w: float) -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=20_000).cumsum() + 100.0
    got = ema(y, w)
    want = loop_ema(y, w)
    assert np.allclose(got, want, rtol=1e-9, atol=0)


def test_ema_skips_nan() -> None:
    y = np.array([np.nan, 1.0, 2.0, np.nan, 4.0, np.inf, 8.0])
    got = ema(y, 0.5)
    want = loop_ema(y, 0.5)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12)
    assert np.isnan(ema(np.array([np.nan, np.nan]), 0.9)).all()
    assert ema(np.empty(0), 0.9).size == 0
    with pytest.raises(ValueError):
        ema(y, 1.0)


def test_ema_million_points_is_fast() -> None:
    y = np.random.default_rng(2).random(1_000_000)
    ema(y, 0.9)  # warm
    t0 = time.perf_counter()
    out = ema(y, 0.9)
    assert time.perf_counter() - t0 < 0.25  # ~20 ms normally; generous for loaded machines
    assert np.allclose(out[-200:], loop_ema(y[-5000:], 0.9)[-200:], rtol=1e-6)
