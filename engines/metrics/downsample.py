"""Display downsampling that never hides a spike, and vectorised EMA smoothing.

A terminal chart is ~200 cells wide while a run may have millions of points; picking
every k-th point would drop the one step where the loss blew up. Min/max buckets over
equal-width x ranges keep every extreme, at numpy speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_SCALE_LIMIT = 1e100  # largest weight**-k used inside one EMA block
_SMALL = 4096  # below this, linear recurrences use the doubling scan directly


@dataclass(frozen=True)
class Downsampled:
    x: np.ndarray  # mean x of the points in each bucket
    ymin: np.ndarray
    ymax: np.ndarray
    first: np.ndarray  # y of the first point in the bucket (in x order)
    last: np.ndarray
    n_in: int  # points considered (finite, inside x_range)
    n_out: int  # buckets drawn (non-empty)


def minmax_buckets(
    x: np.ndarray,
    y: np.ndarray,
    n_buckets: int,
    x_range: tuple[float, float] | None = None,
) -> Downsampled:
    """Reduce (x, y) to at most `n_buckets` equal-width x buckets with min, max, first, last.

    Non-finite points are ignored; with `x_range` only points inside it count and the
    buckets span it. With no more points than buckets every point is its own bucket.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and y must be 1-D arrays of the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    if x_range is not None:
        lo, hi = float(x_range[0]), float(x_range[1])
        if lo > hi:
            lo, hi = hi, lo
        keep &= (x >= lo) & (x <= hi)
    if not keep.all():
        x, y = x[keep], y[keep]
    if x.size > 1 and np.any(x[1:] < x[:-1]):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    n = int(x.size)
    n_buckets = max(1, int(n_buckets))
    if n <= n_buckets:
        return Downsampled(x.copy(), y.copy(), y.copy(), y.copy(), y.copy(), n, n)
    if x_range is None:
        lo, hi = float(x[0]), float(x[-1])
    if hi <= lo:
        starts = np.zeros(1, dtype=np.intp)
    else:
        edges = lo + (hi - lo) * (np.arange(n_buckets, dtype=np.float64) / n_buckets)
        starts = np.searchsorted(x, edges, side="left")
        starts[0] = 0
        starts = np.unique(starts)  # drop empty buckets (equal consecutive starts)
        starts = starts[starts < n]
    ends = np.append(starts[1:], n)
    counts = ends - starts
    return Downsampled(
        x=np.add.reduceat(x, starts) / counts,
        ymin=np.minimum.reduceat(y, starts),
        ymax=np.maximum.reduceat(y, starts),
        first=y[starts],
        last=y[ends - 1],
        n_in=n,
        n_out=int(starts.size),
    )


def ema(y: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average `s = w*s + (1-w)*v`, started at the first value.

    Non-finite values are skipped: their output is NaN and they leave the state as is.
    Vectorised: a blocked cumulative sum inside blocks plus a carry between blocks.
    """
    y = np.asarray(y, dtype=np.float64)
    w = float(weight)
    if not 0.0 <= w < 1.0:
        raise ValueError("weight must be in [0, 1)")
    ok = np.isfinite(y)
    all_ok = bool(ok.all())
    v = y if all_ok else y[ok]
    if v.size == 0 or w == 0.0:
        return np.where(ok, y, np.nan)
    s = _linrec((1.0 - w) * v, w, float(v[0]))
    if all_ok:
        return s
    out = np.full(y.shape, np.nan)
    out[ok] = s
    return out


def _linrec(c: np.ndarray, a: float, s0: float) -> np.ndarray:
    """s[i] = a*s[i-1] + c[i] with s[-1] = s0, for 0 <= a < 1, without a per-point loop."""
    m = c.size
    if m == 0:
        return c.copy()
    if a == 0.0:
        return c.copy()
    peak = float(np.max(np.abs(c))) if m else 0.0
    limit = min(_SCALE_LIMIT, 1e300 / max(peak, 1.0, abs(s0)))
    block = int(math.log(limit) / -math.log(a)) if a > 0 else m
    block = max(1, min(m, block))
    if m <= _SMALL or block < 8:
        return _doubling(c, a, s0)
    nb = -(-m // block)
    padded = np.zeros(nb * block)
    padded[:m] = c
    mat = padded.reshape(nb, block)
    k = np.arange(block, dtype=np.float64)
    up = a**k  # a^k, k = 0..B-1
    local = np.cumsum(mat * (1.0 / up), axis=1)
    local *= up  # local[b, k] = sum_{j<=k} a^(k-j) c[b, j]
    ends = _linrec(np.ascontiguousarray(local[:, -1]), a**block, s0)  # state after each block
    carry = np.empty(nb)
    carry[0] = s0
    carry[1:] = ends[:-1]
    local += (a * up)[None, :] * carry[:, None]  # + a^(k+1) * state before the block
    return local.reshape(-1)[:m]


def _doubling(c: np.ndarray, a: float, s0: float) -> np.ndarray:
    """Prefix scan by doubling: log2(m) vectorised passes, stopping once a^d underflows."""
    s = np.array(c, dtype=np.float64)
    m = s.size
    d, ad = 1, a
    while d < m and ad > 0.0:
        s[d:] = s[d:] + ad * s[:-d]
        d *= 2
        ad *= ad
    with np.errstate(under="ignore"):
        s += s0 * a ** np.arange(1, m + 1, dtype=np.float64)
    return s
