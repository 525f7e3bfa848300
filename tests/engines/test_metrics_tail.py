"""TailReader: complete lines only, and every way the file can change under us."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from trainledger.engines.metrics.tail import TailReader


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def test_reads_only_appended_complete_lines(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'{"a":1}\n{"a":2}\n{"a":')
    r = TailReader(p)
    t = r.poll()
    assert t.data == b'{"a":1}\n{"a":2}\n' and t.start == 0
    assert not t.reset and not t.deleted
    assert r.offset == 16
    assert r.poll().data == b""  # the partial line is not consumed
    append(p, b"3}\n")
    t = r.poll()
    assert t.data == b'{"a":3}\n' and t.start == 16 and not t.reset
    assert r.poll().data == b""


def test_max_bytes_and_overlong_line(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"a" * 100 + b"\nbb\ncc\n")
    r = TailReader(p)
    t = r.poll(max_bytes=10)  # a single line longer than max_bytes still comes whole
    assert t.data == b"a" * 100 + b"\n"
    t = r.poll(max_bytes=4)
    assert t.data == b"bb\n"
    assert r.poll().data == b"cc\n"


def test_truncation_resets(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"1\n2\n3\n")
    r = TailReader(p)
    r.poll()
    with open(p, "r+b") as fh:
        fh.truncate(2)
    t = r.poll()
    assert t.reset and t.data == b"1\n" and t.start == 0
    assert not r.poll().reset


def test_replacement_resets(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"old 1\nold 2\n")
    r = TailReader(p)
    r.poll()
    new = tmp_path / "new.jsonl"
    new.write_bytes(b"new 1\nnew 2\nnew 3\n")  # longer, so only the inode tells
    os.replace(new, p)
    t = r.poll()
    assert t.reset and t.data == b"new 1\nnew 2\nnew 3\n"


def test_rewrite_in_place_resets(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"aaaa\nbbbb\n")
    r = TailReader(p)
    r.poll()
    ino = p.stat().st_ino
    with open(p, "r+b") as fh:  # same inode, same size, different first bytes, then more
        fh.write(b"xxxx\nyyyy\nzzzz\n")
    assert p.stat().st_ino == ino
    t = r.poll()
    assert t.reset and t.data == b"xxxx\nyyyy\nzzzz\n"


def test_deletion_and_recreation(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"1\n2\n")
    r = TailReader(p)
    r.poll()
    p.unlink()
    t = r.poll()
    assert t.deleted and t.data == b"" and r.offset == 0
    assert r.poll().deleted  # still gone
    p.write_bytes(b"9\n")
    t = r.poll()
    assert t.reset and not t.deleted and t.data == b"9\n" and t.start == 0


def test_missing_file_never_raises(tmp_path: Path) -> None:
    p = tmp_path / "nope" / "m.jsonl"
    r = TailReader(p)
    t = r.poll()
    assert t.data == b"" and not t.deleted and t.missing
    p.parent.mkdir()
    p.write_bytes(b"1\n")
    t = r.poll()
    assert t.data == b"1\n" and not t.reset


def test_resume_with_fingerprint(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"1\n2\n")
    r = TailReader(p)
    r.poll()
    ident = r.identity()
    assert ident["offset"] == 4
    assert ident["fingerprint"] == hashlib.sha256(b"1\n2\n").hexdigest()
    assert (ident["dev"], ident["ino"]) == (p.stat().st_dev, p.stat().st_ino)
    append(p, b"3\n")
    r2 = TailReader(p, ident["offset"], bytes.fromhex(ident["fingerprint"]))
    t = r2.poll()
    assert not t.reset and t.data == b"3\n" and t.start == 4
    bad = TailReader(p, 4, hashlib.sha256(b"x\ny\n").digest())
    t = bad.poll()
    assert t.reset and t.data == b"1\n2\n3\n"


def test_fingerprint_covers_first_4096_bytes(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    line = b"x" * 99 + b"\n"
    p.write_bytes(line * 100)
    r = TailReader(p)
    r.poll()
    assert r.identity()["fingerprint"] == hashlib.sha256((line * 100)[:4096]).hexdigest()
    with open(p, "r+b") as fh:  # change a byte beyond the head: not noticed (by design)
        fh.seek(5000)
        fh.write(b"y")
    assert not r.poll().reset
    with open(p, "r+b") as fh:
        fh.seek(4000)
        fh.write(b"y")
    assert r.poll().reset
