"""The column cache: reused while the file matches, ignored when it does not or is damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import numpy as np
import pytest

from trainledger.engines.metrics import cache as cache_mod
from trainledger.engines.metrics import series
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.metrics.tail import TailReader

ROWS = 3000


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series, "CACHE_MIN_ROWS", 1000)  # keep the files small


def write_rows(path: Path, start: int, count: int, extra: str | None = None) -> None:
    with open(path, "ab") as fh:
        for i in range(start, start + count):
            row = {"step": i, "epoch": i / 100, "time": 1000.0 + i, "loss": 1.0 / (i + 1)}
            if extra:
                row[extra] = float(i)
            fh.write(msgspec.json.encode(row) + b"\n")


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    write_rows(run_dir / "metrics.jsonl", 0, ROWS)
    (run_dir / "events.jsonl").write_bytes(b'{"kind":"best","step":5}\n')
    return run_dir, tmp_path / "cache"


def first_open(run_dir: Path, cache_dir: Path) -> RunSeries:
    rs = RunSeries(run_dir, cache_dir)
    res = rs.refresh()
    assert res.new_rows == ROWS and not res.from_cache
    assert (cache_dir / "run-1" / "meta.json").is_file()
    return rs


def test_round_trip_then_only_appended_rows(run: tuple[Path, Path]) -> None:
    run_dir, cache_dir = run
    a = first_open(run_dir, cache_dir).snapshot()
    meta = json.loads((cache_dir / "run-1" / "meta.json").read_text())
    assert meta["version"] == cache_mod.CACHE_VERSION and meta["n"] == ROWS and meta["keys"] == ["loss"]
    assert set(meta["identity"]) == {"dev", "ino", "offset", "fingerprint"}

    write_rows(run_dir / "metrics.jsonl", ROWS, 7, extra="val/loss")
    rs = RunSeries(run_dir, cache_dir)
    res = rs.refresh()
    assert res.from_cache and res.cached_rows == ROWS and res.new_rows == 7
    b = rs.snapshot()
    assert b.n == ROWS + 7
    assert np.array_equal(b.step[:ROWS], a.step) and np.array_equal(b.metrics["loss"][:ROWS], a.metrics["loss"])
    assert np.array_equal(b.epoch[:ROWS], a.epoch) and np.array_equal(b.time[:ROWS], a.time)
    assert np.isnan(b.metrics["val/loss"][:ROWS]).all() and b.metrics["val/loss"][-1] == ROWS + 6
    assert len(b.events) == 1  # events are re-read, not cached
    again = rs.refresh()
    assert not again.from_cache and again.new_rows == 0


def test_cache_ignored_after_truncation(run: tuple[Path, Path]) -> None:
    run_dir, cache_dir = run
    first_open(run_dir, cache_dir)
    p = run_dir / "metrics.jsonl"
    with open(p, "r+b") as fh:
        fh.truncate(1000)
    rs = RunSeries(run_dir, cache_dir)
    res = rs.refresh()
    assert not res.from_cache
    assert rs.snapshot().n == p.read_bytes().count(b"\n")


def test_cache_ignored_after_replacement(run: tuple[Path, Path]) -> None:
    run_dir, cache_dir = run
    first_open(run_dir, cache_dir)
    p = run_dir / "metrics.jsonl"
    data = p.read_bytes()
    tmp = run_dir / "m.tmp"
    tmp.write_bytes(data + data[:200].split(b"\n")[0] + b"\n")  # same head, new inode
    os.replace(tmp, p)
    rs = RunSeries(run_dir, cache_dir)
    res = rs.refresh()
    assert not res.from_cache and res.new_rows == ROWS + 1


def test_cache_ignored_after_rewrite_in_place(run: tuple[Path, Path]) -> None:
    run_dir, cache_dir = run
    first_open(run_dir, cache_dir)
    p = run_dir / "metrics.jsonl"
    with open(p, "r+b") as fh:
        fh.write(b'{"step":9}\n')
    rs = RunSeries(run_dir, cache_dir)
    assert not rs.refresh().from_cache


@pytest.mark.parametrize(
    "damage",
    ["garbage_npy", "short_npy", "wrong_shape", "garbage_meta", "no_meta", "meta_types"],
)
def test_damaged_cache_falls_back(run: tuple[Path, Path], damage: str) -> None:
    run_dir, cache_dir = run
    good = first_open(run_dir, cache_dir).snapshot()
    folder = cache_dir / "run-1"
    if damage == "garbage_npy":
        (folder / "m0.npy").write_bytes(b"\x93NUMPY garbage" * 10)
    elif damage == "short_npy":
        data = (folder / "step.npy").read_bytes()
        (folder / "step.npy").write_bytes(data[: len(data) // 2])
    elif damage == "wrong_shape":
        np.save(folder / "epoch.npy", np.zeros(ROWS - 1))
    elif damage == "garbage_meta":
        (folder / "meta.json").write_bytes(b"{not json")
    elif damage == "no_meta":
        (folder / "meta.json").unlink()
    elif damage == "meta_types":
        meta = json.loads((folder / "meta.json").read_text())
        meta["n"] = "many"
        (folder / "meta.json").write_text(json.dumps(meta))
    rs = RunSeries(run_dir, cache_dir)
    res = rs.refresh()
    assert not res.from_cache and res.new_rows == ROWS
    s = rs.snapshot()
    assert np.array_equal(s.metrics["loss"], good.metrics["loss"])


def test_unwritable_cache_dir_is_harmless(run: tuple[Path, Path]) -> None:
    run_dir, cache_dir = run
    cache_dir.write_bytes(b"a file where the folder should be")
    rs = RunSeries(run_dir, cache_dir)
    res = rs.refresh()
    assert res.new_rows == ROWS and not res.from_cache


def test_no_cache_for_small_refreshes(run: tuple[Path, Path]) -> None:
    run_dir, cache_dir = run
    rs = first_open(run_dir, cache_dir)
    before = (cache_dir / "run-1" / "meta.json").read_bytes()
    write_rows(run_dir / "metrics.jsonl", ROWS, 10)
    rs.refresh()
    assert (cache_dir / "run-1" / "meta.json").read_bytes() == before


def test_save_is_atomic_and_leaves_no_temp(run: tuple[Path, Path]) -> None:
    run_dir, cache_dir = run
    first_open(run_dir, cache_dir)
    write_rows(run_dir / "metrics.jsonl", ROWS, ROWS)  # big enough to rewrite the cache
    rs = RunSeries(run_dir)
    rs.refresh()
    s = rs.snapshot()
    reader = TailReader(run_dir / "metrics.jsonl")
    reader.poll()
    ok = cache_mod.save_cache(
        cache_dir,
        "run-1",
        identity=reader.identity(),
        step=s.step,
        epoch=s.epoch,
        time=s.time,
        metrics=s.metrics,
    )
    assert ok
    assert sorted(p.name for p in cache_dir.iterdir()) == ["run-1"]
    loaded = cache_mod.load_cache(cache_dir, "run-1", run_dir / "metrics.jsonl")
    assert loaded is not None and loaded.n == 2 * ROWS
    assert loaded.capacity > loaded.n and np.array_equal(loaded.step[: loaded.n], s.step)


def test_unsafe_run_id_is_not_cached(tmp_path: Path) -> None:
    assert cache_mod.cache_path(tmp_path, "../escape") is None
    assert cache_mod.load_cache(tmp_path, "../escape", tmp_path / "m.jsonl") is None
