"""Incremental, byte-offset tailing of an append-only log file.

Trainers append to metrics.jsonl and events.jsonl while the console reads them; this
module hands out only the complete lines appended since the last poll, and notices when
the file was truncated, replaced, rewritten or deleted so the caller can start over.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainledger.engines.safeio import NotRegularFile, open_regular_file

HEAD_BYTES = 4096  # how much of the file's start we remember to detect a rewrite
_READ_PIECE = 1 << 20  # read size while looking for the end of an over-long line


@dataclass
class Tail:
    """What one poll found."""

    data: bytes  # only complete lines (ending in b"\n"), possibly empty
    start: int  # file offset where `data` begins
    reset: bool  # truncated / replaced / rewritten: drop everything, data is from offset 0
    deleted: bool  # the file we had been reading no longer exists
    missing: bool = False  # the file does not exist now (seen before or not)
    problem: str | None = None  # why the path cannot be read (a FIFO, a device, a folder)


def fingerprint_of(head: bytes) -> str:
    """Hex sha256 of the first bytes of a file: how caches recognise the same content."""
    return hashlib.sha256(head).hexdigest()


class TailReader:
    """Read the complete lines appended to `path` since the last poll.

    `offset` is always at a line boundary. A reader created with `offset` > 0 (resuming
    from a cache) checks on its first poll that the file's first min(4096, offset) bytes
    hash to `fingerprint` (a sha256 digest, raw bytes or hex) and, when `dev`/`ino` are
    given, that it is the same file; otherwise it starts over from 0 with reset=True.
    """

    def __init__(
        self,
        path: Path,
        offset: int = 0,
        fingerprint: bytes | None = None,
        *,
        dev: int | None = None,
        ino: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.offset: int = max(0, int(offset))
        if isinstance(fingerprint, str):
            fingerprint = bytes.fromhex(fingerprint)
        self._expect_fp: bytes | None = fingerprint
        self._head = b""  # invariant once verified: len == min(HEAD_BYTES, offset)
        self._verified = self.offset == 0
        self._dev: int | None = dev
        self._ino: int | None = ino
        self._seen = self.offset > 0  # we have had content from this file
        self._pending_reset = False  # deleted earlier: the next read starts over

    # ------------------------------------------------------------------ public
    def poll(self, max_bytes: int | None = None) -> Tail:
        """Return the complete lines appended since the last poll (at most ~max_bytes).

        Never raises for a missing or unreadable file: a missing file gives
        deleted=True (if we had seen it) and the next read starts at 0 with reset=True.
        """
        try:  # never open() a FIFO or a device: that blocks, or never ends
            fh = open_regular_file(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return self._gone()
        except NotRegularFile as exc:
            gone = self._gone()
            return Tail(b"", 0, False, gone.deleted, missing=True, problem=str(exc))
        except OSError:
            return Tail(b"", self.offset, False, False)
        with fh:
            try:
                st = os.fstat(fh.fileno())
                return self._read(fh, st, max_bytes)
            except OSError:
                return Tail(b"", self.offset, False, False)

    def identity(self) -> dict[str, Any]:
        """What a cache must store to recognise this file and where we are in it."""
        n = min(HEAD_BYTES, self.offset)
        return {
            "dev": self._dev,
            "ino": self._ino,
            "offset": self.offset,
            "fingerprint": fingerprint_of(self._head[:n]),
        }

    def rewind(self, offset: int) -> None:
        """Move back to an earlier line boundary (e.g. after a cancelled parse)."""
        offset = max(0, min(int(offset), self.offset))
        self.offset = offset
        self._head = self._head[: min(HEAD_BYTES, offset)]

    # ------------------------------------------------------------------ internals
    def _gone(self) -> Tail:
        was = self._seen or self.offset > 0
        self.offset = 0
        self._head = b""
        self._verified = True
        self._expect_fp = None
        self._dev = self._ino = None
        if was:
            self._pending_reset = True
        return Tail(b"", 0, False, deleted=was, missing=True)

    def _starts_over(self) -> None:
        self.offset = 0
        self._head = b""
        self._verified = True
        self._expect_fp = None

    def _read(self, fh: Any, st: os.stat_result, max_bytes: int | None) -> Tail:
        reset = self._pending_reset
        self._pending_reset = False
        same_file = self._dev is None or (st.st_dev, st.st_ino) == (self._dev, self._ino)
        if not same_file or st.st_size < self.offset:
            reset = True
        elif self.offset > 0 and not self._head_matches(fh):
            reset = True
        if reset:
            self._starts_over()
        self._dev, self._ino = st.st_dev, st.st_ino
        self._seen = True

        start = self.offset
        fh.seek(start)
        size = max(0, st.st_size - start)  # bounded: a file that keeps growing waits for the next poll
        if max_bytes is None or max_bytes >= size:
            raw = fh.read(size)
        else:
            raw = fh.read(max(1, int(max_bytes)))
            if raw and b"\n" not in raw:
                raw = self._read_to_newline(fh, raw, size - len(raw))
        cut = raw.rfind(b"\n") + 1
        data = raw if cut == len(raw) else raw[:cut]
        self.offset = start + len(data)
        if len(self._head) < HEAD_BYTES and len(self._head) == start:
            self._head += data[: HEAD_BYTES - start]
        return Tail(data, start, reset, False)

    def _head_matches(self, fh: Any) -> bool:
        """Whether the file still starts with the bytes we read (or were told of)."""
        want = min(HEAD_BYTES, self.offset)
        fh.seek(0)
        current = fh.read(want)
        if not self._verified:
            ok = len(current) == want and (
                self._expect_fp is None or hashlib.sha256(current).digest() == self._expect_fp
            )
            if ok:
                self._head = current
                self._verified = True
            return ok
        return current == self._head[:want]

    @staticmethod
    def _read_to_newline(fh: Any, raw: bytes, left: int) -> bytes:
        """A single line longer than max_bytes: keep reading until it ends (or EOF)."""
        parts = [raw]
        while left > 0:
            piece = fh.read(min(_READ_PIECE, left))
            left -= len(piece)
            if not piece:
                break
            parts.append(piece)
            if b"\n" in piece:
                break
        joined = b"".join(parts)
        return joined[: joined.find(b"\n") + 1] if b"\n" in joined else joined
