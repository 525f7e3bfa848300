"""The session store: whole lines under concurrency, a repaired last line, each fsync mode."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from trainledger.engines.capture import store as store_mod
from trainledger.engines.capture.store import SessionStore
from trainledger.engines.workspace import InvalidId

from .conftest import line


async def test_concurrent_appends_produce_only_whole_lines(tmp_path: Path) -> None:
    st = SessionStore(tmp_path / "caps", "off")

    async def writer(w: int) -> None:
        for r in range(20):
            await st.append(
                "one", [line(w * 1000 + r * 10 + k) for k in range(w % 5 + 1)]
            )
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(w) for w in range(30)))
    await st.close()
    raw = (tmp_path / "caps" / "one.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    frames = [json.loads(x)["frame"] for x in raw.split(b"\n") if x]
    expected = {
        w * 1000 + r * 10 + k
        for w in range(30)
        for r in range(20)
        for k in range(w % 5 + 1)
    }
    assert sorted(frames) == sorted(expected)
    # the lines of one append stay together, in order
    for w in (3, 4):
        for r in range(20):
            ids = [w * 1000 + r * 10 + k for k in range(w % 5 + 1)]
            i = frames.index(ids[0])
            assert frames[i : i + len(ids)] == ids


async def test_file_without_trailing_newline_gets_one(tmp_path: Path) -> None:
    caps = tmp_path / "caps"
    caps.mkdir()
    (caps / "old.jsonl").write_bytes(line(1) + b"\n" + b'{"schema_version": 2, "dims"')
    st = SessionStore(caps, "batch")
    await st.append("old", [line(2)])
    await st.close()
    lines = (caps / "old.jsonl").read_bytes().split(b"\n")
    assert lines[0] == line(1)
    assert lines[1] == b'{"schema_version": 2, "dims"'
    assert lines[2] == line(2)
    assert lines[3] == b""


async def test_empty_file_and_whole_file_are_left_alone(tmp_path: Path) -> None:
    caps = tmp_path / "caps"
    caps.mkdir()
    (caps / "e.jsonl").write_bytes(b"")
    (caps / "w.jsonl").write_bytes(line(1) + b"\n")
    st = SessionStore(caps, "off")
    await st.append("e", [line(2)])
    await st.append("w", [line(3)])
    await st.close()
    assert (caps / "e.jsonl").read_bytes() == line(2) + b"\n"
    assert (caps / "w.jsonl").read_bytes() == line(1) + b"\n" + line(3) + b"\n"


@pytest.mark.parametrize("bad", [".", "..", "../x", "a/b", "", ".hidden", "x" * 129])
async def test_session_id_is_validated(tmp_path: Path, bad: str) -> None:
    st = SessionStore(tmp_path / "caps", "off")
    with pytest.raises(InvalidId):
        await st.append(bad, [line(0)])
    await st.close()
    assert not any(tmp_path.rglob("*.jsonl"))


def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        time.sleep(0.01)  # a slow disk, so waiters pile up behind one fsync
        real(fd)

    monkeypatch.setattr(store_mod.os, "fsync", counting)
    return calls


async def test_fsync_always_syncs_before_returning_with_group_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_fsyncs(monkeypatch)
    st = SessionStore(tmp_path / "caps", "always")
    await st.append("a", [line(0)])
    assert len(calls) == 1  # synced before append returned
    await asyncio.gather(*(st.append("a", [line(i)]) for i in range(1, 41)))
    # 40 concurrent appends share far fewer fsyncs than 40
    assert 2 <= len(calls) <= 1 + 10
    await st.close()
    assert len((tmp_path / "caps" / "a.jsonl").read_bytes().splitlines()) == 41


async def test_fsync_batch_syncs_in_background_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_fsyncs(monkeypatch)
    st = SessionStore(tmp_path / "caps", "batch")
    for i in range(10):
        await st.append("b", [line(i)])
    assert calls == []  # returned after the write alone
    assert (tmp_path / "caps" / "b.jsonl").read_bytes().count(b"\n") == 10
    deadline = time.monotonic() + 1.5  # BATCH_DELAY 0.5 s, slack for a loaded box
    while not calls and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(calls) == 1
    await st.close()


async def test_fsync_off_never_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_fsyncs(monkeypatch)
    st = SessionStore(tmp_path / "caps", "off")
    await st.append("c", [line(0), line(1)])
    await asyncio.sleep(store_mod.BATCH_DELAY + 0.2)
    await st.close()
    assert calls == []
    assert (tmp_path / "caps" / "c.jsonl").read_bytes() == line(0) + b"\n" + line(
        1
    ) + b"\n"


async def test_close_syncs_dirty_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_fsyncs(monkeypatch)
    st = SessionStore(tmp_path / "caps", "batch")
    await st.append("d", [line(0)])
    await st.close()
    assert len(calls) == 1
    with pytest.raises(RuntimeError):
        await st.append("d", [line(1)])


async def test_lru_keeps_few_fds_and_reopens(tmp_path: Path) -> None:
    st = SessionStore(tmp_path / "caps", "batch", max_open=3)
    for r in range(2):
        for s in range(8):
            await st.append(f"s{s}", [line(r * 10 + s)])
        assert len(st.open_sessions) <= 3
    await st.close()
    for s in range(8):
        got = [
            json.loads(x)["frame"]
            for x in (tmp_path / "caps" / f"s{s}.jsonl").read_bytes().splitlines()
        ]
        assert got == [s, 10 + s]
