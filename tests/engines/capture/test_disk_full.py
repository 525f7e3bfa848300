"""A full disk: a refused request leaves the session file exactly as it was, and every
acknowledged frame is a readable line. On a real small tmpfs, through the real server."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engines.capture.conftest import body, line, request, start_in_thread
from trainledger.engines.capture.schema import decode_frame
from trainledger.engines.capture.store import _append, _Open
from trainledger.engines.workspace import Workspace


@pytest.fixture
def small_disk(ws: Workspace) -> Iterator[Path]:
    """`san-training/` as a 2 MiB tmpfs (needs root and mount; skipped otherwise)."""
    where = ws.captures_dir
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run mount for a small tmpfs: {exc}")
    if done.returncode != 0:
        pytest.skip(f"mounting a small tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _ids(first: int, n: int) -> list[int]:
    return list(range(first, first + n))


def test_a_refused_write_leaves_nothing_and_acknowledged_frames_stay_readable(
    ws: Workspace, small_disk: Path
) -> None:
    filler = small_disk / "filler.bin"
    filler.write_bytes(b"\0" * (1 << 20))  # freed later, to make room again
    srv = start_in_thread(ws)
    acked: list[int] = []
    refused: list[list[int]] = []
    try:
        nxt = 0
        while not refused:  # 60-frame requests until the disk is full
            ids = _ids(nxt, 60)
            nxt += 60
            reply = request(srv.port, body(*(line(i) for i in ids)))
            if reply.status == 200:
                acked += ids
            else:
                assert reply.status == 503, reply.json()
                refused.append(ids)
            assert nxt < 60 * 100, "the 2 MiB disk never filled"
        path = ws.captures_dir / "sess-1.jsonl"
        size = path.stat().st_size
        assert path.read_bytes().endswith(b"\n") and len(path.read_bytes().splitlines()) == len(acked)
        for n in (1, 2, 5):  # smaller requests: what fits is acknowledged, the rest refused
            ids = _ids(nxt, n)
            nxt += n
            reply = request(srv.port, body(*(line(i) for i in ids)))
            (acked.extend(ids) if reply.status == 200 else refused.append(ids))
        assert path.stat().st_size >= size
        filler.unlink()
        for _ in range(3):
            ids = _ids(nxt, 60)
            nxt += 60
            reply = request(srv.port, body(*(line(i) for i in ids)))
            assert reply.status == 200, reply.json()
            acked += ids
        retry = refused.pop(0)  # the client retries the first refused request
        assert request(srv.port, body(*(line(i) for i in retry))).status == 200
        acked += retry
    finally:
        srv.stop()
    lines = (ws.captures_dir / "sess-1.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    stored = [decode_frame(raw).frame for raw in lines[:-1]]  # every line a frame
    assert stored == acked  # each acknowledged frame once, in order; nothing refused
    assert not {i for ids in refused for i in ids} & set(stored)


def test_when_the_cut_fails_too_the_next_write_starts_on_a_fresh_line(tmp_path: Path) -> None:
    full = os.open("/dev/full", os.O_RDWR)  # every write: ENOSPC; ftruncate: refused
    entry = _Open(full)
    with pytest.raises(OSError) as err:
        _append(entry, line(0) + b"\n")
    assert err.value.errno == errno.ENOSPC and entry.torn
    os.close(full)
    path = tmp_path / "s.jsonl"
    path.write_bytes(line(1) + b"\n" + line(2)[:40])  # the torn tail a partial write left
    entry.fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        _append(entry, line(3) + b"\n")
        _append(entry, line(4) + b"\n")
    finally:
        os.close(entry.fd)
    assert not entry.torn
    assert path.read_bytes() == line(1) + b"\n" + line(2)[:40] + b"\n" + line(3) + b"\n" + line(4) + b"\n"
