"""SessionScanner on real files: appends, partial lines, truncation, replacement, deletion,
invalid stems, mixed good and bad lines, bounded latency percentiles, big files."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainledger.engines.capture.sessions import (
    FIRST_REJECTS,
    FPS_WINDOW,
    SessionScanner,
)


def frame(i: int, **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "schema_version": 2, "dims": 128, "ts": i / 30, "frame": i, "bar": i // 96,
        "track_name": "t", "track_time": i / 30, "input": [((i + k) % 17) / 17 for k in range(128)],
        "audio_kick": [0.1] * 5, "audio_hihat": [0.2] * 5, "audio_bass": [0.3] * 5,
        "audio_pad": [0.4] * 5, "camera_scores": [1 / 7] * 7, "cut_timing": 0.5,
        "pattern_intensity": 0.25, "pattern_variation": 0.75, "phrase": [1.0, 0.0, 0.0, 0.0],
        "gesture_probs": [0.125] * 8, "phase": 0.1, "regime": 1, "calibration_confidence": 0.9,
        "latency_us": 1000.0 + i,
    }  # fmt: skip
    obj.update(changes)
    return obj


def line(i: int, **changes: Any) -> bytes:
    return json.dumps(frame(i, **changes), separators=(",", ":")).encode() + b"\n"


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(line(i) for i in range(start, start + n))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "san-training"
    d.mkdir()
    return d


def test_mixed_good_and_bad_lines_name_fields_and_line_numbers(folder: Path) -> None:
    bad_input = json.dumps(frame(2) | {"input": [0.0] * 127}).encode() + b"\n"
    no_ts = (
        json.dumps({k: v for k, v in frame(3).items() if k != "ts"}).encode() + b"\n"
    )
    (folder / "mixed.jsonl").write_bytes(
        line(0)
        + line(1)
        + bad_input
        + no_ts
        + b"\n"
        + b"not json\n"
        + line(4)
        + bad_input
    )
    s = SessionScanner(folder).scan().sessions[0]
    assert s.id == "mixed" and s.valid_id and s.invalid_reason is None
    assert (s.frames, s.rejected, s.lines) == (3, 4, 7)
    assert s.reasons["input: expected 128 numbers"] == 2
    assert s.reasons["ts: missing"] == 1
    assert any(r.startswith("json: malformed") for r in s.reasons)
    # The blank line 5 is skipped, as the server does, but still counts for line numbers.
    assert [n for n, _ in s.first_rejects] == [3, 4, 6, 8]
    assert s.newest is not None and s.newest["frame"] == 4
    assert s.first_ts == 0.0 and s.last_ts == pytest.approx(4 / 30)


def test_appends_read_only_new_bytes(folder: Path) -> None:
    path = folder / "s1.jsonl"
    path.write_bytes(lines(10))
    scanner = SessionScanner(folder)
    first = scanner.scan()
    assert first.sessions[0].frames == 10 and first.bytes_read == path.stat().st_size
    extra = lines(5, start=10)
    with open(path, "ab") as f:
        f.write(extra)
    second = scanner.scan()
    assert second.bytes_read == len(extra)
    assert second.sessions[0].frames == 15
    assert second.sessions[0].newest["frame"] == 14
    assert second.sessions[0].version > first.sessions[0].version
    third = scanner.scan()
    assert third.bytes_read == 0
    assert third.sessions[0] is second.sessions[0]  # unchanged: the same summary object


def test_partial_last_line_waits_for_its_newline(folder: Path) -> None:
    path = folder / "p.jsonl"
    whole = line(1)
    path.write_bytes(line(0) + whole[:100])
    scanner = SessionScanner(folder)
    s = scanner.scan().sessions[0]
    assert (s.frames, s.rejected, s.pending_bytes) == (1, 0, 100)
    with open(path, "ab") as f:
        f.write(whole[100:])
    s = scanner.scan().sessions[0]
    assert (s.frames, s.rejected, s.pending_bytes) == (2, 0, 0)


def test_truncated_file_is_read_again(folder: Path) -> None:
    path = folder / "t.jsonl"
    path.write_bytes(lines(20) + b"garbage\n")
    scanner = SessionScanner(folder)
    assert scanner.scan().sessions[0].rejected == 1
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(lines(3))
    s = scanner.scan().sessions[0]
    assert (s.frames, s.rejected, s.reasons) == (3, 0, {})


def test_replaced_file_is_read_again(folder: Path) -> None:
    path = folder / "r.jsonl"
    path.write_bytes(lines(4))
    scanner = SessionScanner(folder)
    assert scanner.scan().sessions[0].frames == 4
    tmp = folder / "r.tmp"
    tmp.write_bytes(lines(6, start=100))  # a longer, different file under the same name
    os.replace(tmp, path)
    s = scanner.scan().sessions[0]
    assert (
        s.frames == 6
        and s.newest["frame"] == 105
        and s.first_ts == pytest.approx(100 / 30)
    )


def test_deleted_file_vanishes_and_can_come_back(folder: Path) -> None:
    (folder / "a.jsonl").write_bytes(lines(2))
    (folder / "b.jsonl").write_bytes(lines(3))
    scanner = SessionScanner(folder)
    assert [s.id for s in scanner.scan().sessions] == ["a", "b"]
    (folder / "a.jsonl").unlink()
    assert [s.id for s in scanner.scan().sessions] == ["b"]
    (folder / "a.jsonl").write_bytes(lines(1))
    snap = scanner.scan()
    assert snap.get("a").frames == 1


def test_invalid_stems_listed_as_invalid_and_odd_entries_ignored(
    folder: Path, tmp_path: Path
) -> None:
    (folder / "take#2.jsonl").write_bytes(lines(2))
    (folder / ".hidden.jsonl").write_bytes(lines(2))
    (folder / "notes.txt").write_text("x")
    (folder / "dir.jsonl").mkdir()
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(lines(2))
    (folder / "link.jsonl").symlink_to(outside)
    snap = SessionScanner(folder).scan()
    assert [s.id for s in snap.sessions] == ["take#2"]
    bad = snap.sessions[0]
    assert not bad.valid_id and "take#2" in (bad.invalid_reason or "")
    assert bad.frames == 2  # still counted, so a person sees what the file holds


def test_missing_folder(tmp_path: Path) -> None:
    snap = SessionScanner(tmp_path / "nope").scan()
    assert snap.sessions == () and not snap.folder_exists and snap.complete


def test_frames_per_second_over_ts_keeps_the_last_window(folder: Path) -> None:
    # 10 frames/s for 200 s of ts, then 30 frames in the last second.
    body = b"".join(line(i, ts=i / 10) for i in range(2000))
    body += b"".join(line(3000 + i, ts=200 + i / 30) for i in range(30))
    (folder / "f.jsonl").write_bytes(body)
    s = SessionScanner(folder).scan().sessions[0]
    assert len(s.fps) == FPS_WINDOW
    assert s.fps[-1] == 30 and set(s.fps[:-1]) == {10}


def test_latency_percentiles_from_a_bounded_histogram(folder: Path) -> None:
    rng = np.random.default_rng(0)
    lat = rng.lognormal(7.0, 0.8, 2000)
    (folder / "l.jsonl").write_bytes(
        b"".join(line(i, latency_us=float(v)) for i, v in enumerate(lat))
    )
    s = SessionScanner(folder).scan().sessions[0]
    for got, q in zip(s.latency, (50, 95, 99)):
        assert got == pytest.approx(np.percentile(lat, q), rel=0.03)
    assert s.latency_range == (pytest.approx(lat.min()), pytest.approx(lat.max()))
    (folder / "c.jsonl").write_bytes(
        b"".join(line(i, latency_us=1234.0) for i in range(50))
    )
    c = SessionScanner(folder).scan().get("c")
    assert c.latency == (1234.0, 1234.0, 1234.0)  # clamped to the exact min/max


def test_first_rejects_are_bounded(folder: Path) -> None:
    (folder / "b.jsonl").write_bytes(b"nope\n" * 500)
    s = SessionScanner(folder).scan().sessions[0]
    assert s.rejected == 500 and len(s.first_rejects) == FIRST_REJECTS
    assert s.first_rejects[0][0] == 1 and s.first_rejects[-1][0] == FIRST_REJECTS


def test_budget_and_cancel_resume_where_they_stopped(folder: Path) -> None:
    body = lines(400)
    (folder / "big.jsonl").write_bytes(body)
    scanner = SessionScanner(folder)
    part = scanner.scan(max_bytes=len(body) // 4)
    assert not part.complete and 0 < part.sessions[0].frames < 400
    assert part.sessions[0].pending_bytes == len(body) - part.bytes_read
    cancel = threading.Event()
    cancel.set()
    assert scanner.scan(cancel=cancel).bytes_read == 0
    done = scanner.scan()
    assert done.complete and done.sessions[0].frames == 400


def test_big_file_first_pass_and_then_only_new_bytes(folder: Path) -> None:
    path = folder / "big.jsonl"
    chunk = lines(1000)
    path.write_bytes(chunk * 12)  # ~20 MB
    scanner = SessionScanner(folder)
    t0 = time.perf_counter()
    snap = scanner.scan()
    first = time.perf_counter() - t0
    assert snap.sessions[0].frames == 12_000 and snap.complete
    assert first < 8.0, f"first pass took {first:.2f} s"
    with open(path, "ab") as f:
        f.write(line(5))
    again = scanner.scan()
    assert again.bytes_read == len(line(5)) and again.sessions[0].frames == 12_001


def test_a_fifo_among_the_sessions_never_blocks_the_scan(tmp_path: Path) -> None:
    (tmp_path / "good.jsonl").write_bytes(lines(3))
    os.mkfifo(tmp_path / "pipe.jsonl")  # open() of a FIFO without a writer blocks forever
    os.symlink(tmp_path / "pipe.jsonl", tmp_path / "link.jsonl")
    out: dict[str, Any] = {}
    scanner = SessionScanner(tmp_path)
    worker = threading.Thread(target=lambda: out.update(snap=scanner.scan()), daemon=True)
    worker.start()
    worker.join(20)  # a hang guard, not a timing assertion
    assert not worker.is_alive(), "the scan blocked on the FIFO"
    assert [(s.id, s.frames) for s in out["snap"].sessions] == [("good", 3)]


def test_rejects_are_counted_by_kind_and_listed_with_their_reason(tmp_path: Path) -> None:
    bad = [b'{"k%d": 1}\n' % i for i in range(50)] + [b'{"a" 1}\n', b'{"ab" 1}\n']
    (tmp_path / "s.jsonl").write_bytes(b"".join(bad))
    (s,) = SessionScanner(tmp_path).scan().sessions
    assert s.reasons == {"line: unknown field": 50, "json: malformed": 2}
    assert s.first_rejects[0] == (1, "k0: unknown field")
