"""Hand-run timing of the metrics engine on a generated 1,000,000-row metrics.jsonl.

Not a test: prints seconds for a bare msgspec dict decode, the decode into parse_lines'
run-time Struct alone (so the column extraction is the difference to parse_lines), parse_lines,
a first RunSeries refresh (no cache) and a second open from the cache.
Usage: python benchmarks/parse_speed.py [rows]
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np

from trainledger.engines.metrics.columns import _Schema, parse_lines
from trainledger.engines.metrics.series import RunSeries


def make_run(run_dir: Path, rows: int) -> int:
    """Write rows like a training loop would: step, epoch, time + 4 metrics."""
    run_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    loss = rng.random(rows)
    acc = rng.random(rows)
    grad = rng.random(rows) * 3
    enc = msgspec.json.Encoder()
    with open(run_dir / "metrics.jsonl", "wb") as fh:
        for start in range(0, rows, 100_000):
            lines = [
                enc.encode(
                    {
                        "step": i,
                        "epoch": i / 10_000,
                        "time": 1.7e9 + i * 0.01,
                        "train/loss": float(loss[i]),
                        "train/acc": float(acc[i]),
                        "lr": 1e-3,
                        "grad_norm": float(grad[i]),
                    }
                )
                for i in range(start, min(rows, start + 100_000))
            ]
            fh.write(b"\n".join(lines) + b"\n")
    (run_dir / "events.jsonl").write_bytes(b'{"kind":"best","step":10,"time":1.7e9}\n')
    return (run_dir / "metrics.jsonl").stat().st_size


def timed(label: str, fn) -> object:
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    print(f"{label:<48} {time.perf_counter() - t0:8.3f} s")
    return result


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_dir = root / "runs" / "bench-run"
        size = make_run(run_dir, rows)
        buf = (run_dir / "metrics.jsonl").read_bytes()
        print(f"{rows:,} rows, {size / 1e6:.1f} MB")
        timed("msgspec decode_lines into dicts", lambda: msgspec.json.Decoder().decode_lines(buf))
        struct_decoder = _Schema(["train/loss", "train/acc", "lr", "grad_norm"]).decoder()
        timed("msgspec decode_lines into parse_lines' Struct", lambda: struct_decoder.decode_lines(buf))
        block = timed("parse_lines", lambda: parse_lines(buf))
        assert block.n == rows
        buf = block = None  # free them before the next figures (not `del`: the lambdas above read buf)
        cache = root / "cache"
        first = RunSeries(run_dir, cache_dir=cache)
        res = timed("RunSeries first refresh (no cache, writes it)", first.refresh)
        assert res.new_rows == rows and not res.from_cache
        no_write = RunSeries(run_dir)
        timed("RunSeries first refresh (no cache dir)", no_write.refresh)
        del first, no_write
        second = RunSeries(run_dir, cache_dir=cache)
        res = timed("RunSeries second open (from cache)", second.refresh)
        assert res.from_cache and res.cached_rows == rows and res.new_rows == 0, res
        snap = timed("snapshot", second.snapshot)
        assert snap.n == rows


if __name__ == "__main__":
    main()
