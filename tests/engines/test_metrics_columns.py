"""parse_lines: columns from JSONL, with every kind of odd line handled leniently."""

from __future__ import annotations

import json
import math
import threading

import msgspec
import numpy as np
import pytest

from trainledger.engines.metrics import columns
from trainledger.engines.metrics.columns import parse_lines


def jsonl(rows: list[dict]) -> bytes:
    return b"".join(msgspec.json.encode(r) + b"\n" for r in rows)


def nan_equal(a: np.ndarray, b: list[float]) -> bool:
    return np.array_equal(a, np.array(b, dtype=float), equal_nan=True)


def test_basic_columns() -> None:
    buf = jsonl(
        [
            {"step": 0, "epoch": 0, "time": 10.5, "train/loss": 1.0, "lr": 0.1},
            {"step": 1, "time": 11.0, "train/loss": 0.5},
            {"step": 2, "epoch": 1, "train/loss": None, "val/acc": 0.9},
        ]
    )
    b = parse_lines(buf)
    assert b.n == 3 and b.malformed == 0 and not b.cancelled and b.consumed == len(buf)
    assert nan_equal(b.step, [0, 1, 2])
    assert nan_equal(b.epoch, [0, math.nan, 1])
    assert nan_equal(b.time, [10.5, 11.0, math.nan])
    assert set(b.metrics) == {"train/loss", "lr", "val/acc"}
    assert nan_equal(b.metrics["train/loss"], [1.0, 0.5, math.nan])
    assert nan_equal(b.metrics["lr"], [0.1, math.nan, math.nan])
    assert nan_equal(b.metrics["val/acc"], [math.nan, math.nan, 0.9])
    assert all(a.dtype == np.float64 for a in (b.step, b.epoch, b.time, *b.metrics.values()))


def test_empty_and_blank() -> None:
    b = parse_lines(b"")
    assert b.n == 0 and b.step.size == 0 and b.metrics == {}
    b = parse_lines(b'\n   \n{"step":1,"a":2}\n\n\t\n{"step":2,"a":3}\n')
    assert b.n == 2 and b.malformed == 0
    assert nan_equal(b.metrics["a"], [2, 3])


def test_malformed_lines_counted_with_line_numbers() -> None:
    buf = (
        b'{"step":0,"a":1}\n'
        b"not json at all\n"
        b"\n"
        b'[1, 2, 3]\n'
        b'{"step":3,"a":2\n'  # truncated object
        b'{"step":4,"a":3}\n'
        b'"just a string"\n'
    )
    b = parse_lines(buf, first_line=11)
    assert b.n == 2
    assert nan_equal(b.step, [0, 4]) and nan_equal(b.metrics["a"], [1, 3])
    assert b.malformed == 4
    assert [e.split(":")[0] for e in b.malformed_examples] == [
        "line 12",
        "line 14",
        "line 15",
        "line 17",
    ]
    assert "not JSON" in b.malformed_examples[0]


def test_examples_capped_at_five() -> None:
    buf = b"".join(b"garbage\n" if i % 2 else b'{"step":%d}\n' % i for i in range(40))
    b = parse_lines(buf)
    assert b.malformed == 20 and len(b.malformed_examples) == 5 and b.n == 20
    assert b.malformed_examples[0].startswith("line 2:")


def test_nan_and_infinity_literals() -> None:
    buf = json.dumps({"step": 0, "loss": float("nan")}).encode() + b"\n"
    buf += json.dumps({"step": 1, "loss": float("inf"), "g": -float("inf")}).encode() + b"\n"
    buf += b'{"step":2,"loss":0.5}\n'
    assert b"NaN" in buf and b"Infinity" in buf
    b = parse_lines(buf)
    assert b.n == 3 and b.malformed == 0
    assert nan_equal(b.metrics["loss"], [math.nan, math.inf, 0.5])
    assert nan_equal(b.metrics["g"], [math.nan, -math.inf, math.nan])


def test_bools_strings_and_objects_dropped() -> None:
    rows = [
        {"step": 0, "flag": True, "phase": "train", "nested": {"x": 1}, "loss": 1.0},
        {"step": 1, "flag": 3, "phase": "val", "nested": {"x": 2}, "loss": "high"},
        {"step": None, "loss": 2.0, "lst": [1, 2]},
        {"step": True, "loss": 9.0},  # a step that is not a number: the line is malformed
    ]
    b = parse_lines(jsonl(rows))
    assert b.n == 3 and b.malformed == 1 and "step is not a number" in b.malformed_examples[0]
    assert "phase" not in b.metrics and "nested" not in b.metrics and "lst" not in b.metrics
    assert nan_equal(b.metrics["flag"], [math.nan, 3, math.nan])  # bools are not numbers
    assert nan_equal(b.metrics["loss"], [1.0, math.nan, 2.0])
    assert nan_equal(b.step, [0, 1, math.nan])


def test_string_column_everywhere_stays_fast_path_correct() -> None:
    rows = [{"step": i, "phase": "train", "loss": i / 10} for i in range(1000)]
    b = parse_lines(jsonl(rows))
    assert b.n == 1000 and set(b.metrics) == {"loss"}
    assert np.allclose(b.metrics["loss"], np.arange(1000) / 10)


def test_metric_first_appearing_mid_file_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columns, "CHUNK_LINES", 100)  # several chunks
    monkeypatch.setattr(columns, "MIN_CHUNK_BYTES", 1)
    monkeypatch.setattr(columns, "SAMPLE_LINES", 4)  # samples lines ~0, 250, 500, 750, 999
    rows: list[dict] = [{"step": i, "loss": 1.0} for i in range(1000)]
    rows[517]["val/loss"] = 0.25  # between sample points and inside a later chunk
    rows[518]["val/acc"] = 0.75
    rows[900]["weird\"key"] = 4.0  # a key msgspec cannot use as a field name
    buf = jsonl(rows)
    sampled = columns._discover(buf, ())
    assert "val/loss" not in sampled.index and "val/acc" not in sampled.index
    b = parse_lines(buf)
    assert b.n == 1000
    assert set(b.metrics) == {"loss", "val/loss", "val/acc", 'weird"key'}
    assert np.nansum(b.metrics["val/loss"]) == 0.25 and b.metrics["val/loss"][517] == 0.25
    assert b.metrics["val/acc"][518] == 0.75 and np.isnan(b.metrics["val/acc"]).sum() == 999
    assert b.metrics['weird"key'][900] == 4.0
    assert nan_equal(b.step, list(range(1000)))


def test_known_keys_absent_are_not_reported() -> None:
    b = parse_lines(b'{"step":1,"a":1}\n', known_keys=["b", "a"])
    assert set(b.metrics) == {"a"}


def test_many_chunks_with_scattered_bad_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columns, "CHUNK_LINES", 64)
    monkeypatch.setattr(columns, "MIN_CHUNK_BYTES", 1)
    lines = []
    for i in range(2000):
        if i % 97 == 5:
            lines.append(b'{"step":%d,"loss":NaN}' % i)
        elif i % 131 == 7:
            lines.append(b'{"step":%d,"loss":' % i)  # cut short
        else:
            lines.append(b'{"step":%d,"loss":%d}' % (i, i))
    b = parse_lines(b"\n".join(lines) + b"\n")
    bad = sum(1 for i in range(2000) if i % 97 != 5 and i % 131 == 7)
    assert b.malformed == bad
    assert b.n == 2000 - bad
    good = [i for i in range(2000) if not (i % 97 != 5 and i % 131 == 7)]
    assert nan_equal(b.step, good)
    expect = [math.nan if i % 97 == 5 else i for i in good]
    assert nan_equal(b.metrics["loss"], expect)


def test_cancel_stops_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columns, "CHUNK_LINES", 10)
    monkeypatch.setattr(columns, "MIN_CHUNK_BYTES", 1)
    buf = jsonl([{"step": i, "loss": i} for i in range(1000)])
    cancel = threading.Event()
    cancel.set()
    b = parse_lines(buf, cancel=cancel)
    assert b.cancelled and b.n == 0 and b.consumed == 0

    class CancelAfter(threading.Event):
        """Set itself after being asked a few times, i.e. after a few chunks."""

        def __init__(self, after: int) -> None:
            super().__init__()
            self.calls = 0
            self.after = after

        def is_set(self) -> bool:
            self.calls += 1
            return self.calls > self.after

    b = parse_lines(buf, cancel=CancelAfter(3))
    assert b.cancelled and 0 < b.n < 1000
    assert b.consumed < len(buf) and buf[b.consumed - 1 : b.consumed] == b"\n"
    assert buf[: b.consumed].count(b"\n") == b.n
    assert nan_equal(b.step, list(range(b.n)))


def test_trailing_line_without_newline_is_parsed() -> None:
    b = parse_lines(b'{"step":1}\n{"step":2}')
    assert nan_equal(b.step, [1, 2])


@pytest.mark.slow
def test_million_rows_parse_fast() -> None:
    import time

    rng = np.random.default_rng(1)
    vals = rng.random(1_000_000)
    lines = [
        b'{"step":%d,"epoch":%.4f,"time":%.2f,"train/loss":%r,"a":1,"b":2,"c":3}'
        % (i, i / 1e4, 1.7e9 + i, float(vals[i]))
        for i in range(1_000_000)
    ]
    buf = b"\n".join(lines) + b"\n"
    t0 = time.perf_counter()
    b = parse_lines(buf)
    elapsed = time.perf_counter() - t0
    assert b.n == 1_000_000 and np.array_equal(b.metrics["train/loss"], vals)
    assert elapsed < 4.0  # about 1 s on a quiet 2-core machine; generous for CI noise
