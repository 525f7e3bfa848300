"""The session store: append validated frame lines to `san-training/<session>.jsonl`.

The capture server acknowledges a request only after its lines reached the operating
system, so every acknowledged frame survives a `kill -9` of the server. This module owns
that promise and the fsync policy on top of it (what survives a power cut):

- ``always``: fsync before `append` returns; concurrent waiters share one fsync (group commit).
- ``batch``: a background task fsyncs dirty files about 0.5 s after they were written, so a
  power cut loses at most ~1 s of acknowledged frames.
- ``off``: never fsync; the kernel writes back when it likes (typically within 30 s).

All lines of one `append` go out in one `os.write` on an ``O_APPEND`` fd under a per-session
lock, so two clients writing one session never interleave partial lines. A write that fails
(disk full) leaves the file as it was: the bytes that fit are truncated away again.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from trainledger.engines.workspace import validate_id

FsyncMode = Literal["always", "batch", "off"]
FSYNC_MODES: tuple[str, ...] = ("always", "batch", "off")
BATCH_DELAY = (
    0.5  # seconds from a write to its fsync in batch mode (plus the fsync itself)
)


@dataclass
class _Open:
    """One open session file and its sync bookkeeping (a write sequence and a synced mark)."""

    fd: int
    written: int = 0  # sequence number of the newest write
    synced: int = 0  # newest write known to be on disk
    syncing: asyncio.Future[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    torn: bool = False  # a failed write could not be cut off: the file may end mid-line


def _write_all(fd: int, data: bytes) -> None:
    """One os.write; loop only if the kernel takes less (disk full, signals)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _append(entry: _Open, data: bytes) -> None:
    """Write `data` at the end, or raise OSError with the file exactly as it was before.

    A write that fails part way (ENOSPC, EDQUOT, EIO) is cut off again with ftruncate, so a
    retry cannot duplicate the bytes that fit. If even that fails, the next write that
    succeeds starts with a newline, so every acknowledged frame stays a readable line.
    """
    fd = entry.fd
    if entry.torn:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
    size = os.fstat(fd).st_size  # under the session lock: nobody else appends here
    try:
        _write_all(fd, data)
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:
            entry.torn = True
        raise
    entry.torn = False


class SessionStore:
    """Append-only JSONL files, one per capture session, with a chosen fsync policy."""

    def __init__(
        self, captures_dir: Path, fsync: FsyncMode = "batch", max_open: int = 64
    ) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(
                f"fsync must be one of {', '.join(FSYNC_MODES)}, not {fsync!r}"
            )
        self.captures_dir = Path(captures_dir)
        self.fsync = fsync
        self.max_open = max_open
        self._files: OrderedDict[str, _Open] = OrderedDict()
        self._dirty: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._flush_wanted: asyncio.Event | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    def path(self, session_id: str) -> Path:
        return self.captures_dir / f"{validate_id(session_id, 'session id')}.jsonl"

    # ------------------------------------------------------------------ open / evict

    def _open(self, session_id: str) -> _Open:
        entry = self._files.get(session_id)
        if entry is not None:
            self._files.move_to_end(session_id)
            return entry
        path = self.path(session_id)
        self.captures_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            _write_all(
                fd, b"\n"
            )  # an older writer died mid-line: start on a fresh line
        entry = _Open(fd)
        self._files[session_id] = entry
        while len(self._files) > self.max_open:
            old_id, old = self._files.popitem(last=False)
            self._dirty.discard(old_id)
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return entry

    async def _retire(self, entry: _Open) -> None:
        async with entry.lock:
            if entry.syncing is not None:
                await asyncio.shield(entry.syncing)
            if self.fsync != "off" and entry.synced < entry.written:
                await asyncio.get_running_loop().run_in_executor(
                    None, os.fsync, entry.fd
                )
            os.close(entry.fd)

    # ------------------------------------------------------------------ append

    async def append(self, session_id: str, lines: list[bytes]) -> None:
        """Append `lines` (each one frame, no newline) as whole lines to the session file.

        Returns once the bytes are in the OS page cache (and, with fsync="always", on disk).
        """
        if lines:
            await self.append_bytes(session_id, b"\n".join(lines) + b"\n")

    async def append_bytes(self, session_id: str, data: bytes) -> None:
        """Like `append`, for lines already joined: `data` must end with a newline."""
        if self._closed:
            raise RuntimeError("session store is closed")
        if not data.endswith(b"\n"):
            raise ValueError("data must end with a newline")
        entry = self._open(session_id)
        async with entry.lock:
            _append(entry, data)
            entry.written += 1
            seq = entry.written
        if self.fsync == "always":
            await self._sync_to(entry, seq)
        elif self.fsync == "batch":
            self._dirty.add(session_id)
            self._want_flush()

    def append_now(self, session_id: str, data: bytes) -> bool:
        """`append_bytes` without a coroutine, where it could not have waited: fsync off or
        batch and the session's lock free (nothing awaits while appending under it). False
        when it did nothing: then await `append_bytes`. OSError as there."""
        if self._closed or self.fsync == "always" or not data.endswith(b"\n"):
            return False
        entry = self._open(session_id)
        if entry.lock.locked():
            return False
        _append(entry, data)
        entry.written += 1
        if self.fsync == "batch":
            self._dirty.add(session_id)
            self._want_flush()
        return True

    async def _sync_to(self, entry: _Open, seq: int) -> None:
        """Wait until write `seq` is on disk; one fsync serves every waiter behind it."""
        loop = asyncio.get_running_loop()
        while entry.synced < seq:
            if entry.syncing is None:
                target = entry.written
                fut: asyncio.Future[None] = loop.create_future()
                entry.syncing = fut
                try:
                    await loop.run_in_executor(None, os.fsync, entry.fd)
                    entry.synced = max(entry.synced, target)
                    fut.set_result(None)
                except BaseException as exc:
                    fut.set_exception(exc)
                    fut.exception()  # mark retrieved: the other waiters retry
                    raise
                finally:
                    entry.syncing = None
            else:
                try:
                    await asyncio.shield(entry.syncing)
                except OSError:
                    pass

    # ------------------------------------------------------------------ batch flusher

    def _want_flush(self) -> None:
        if self._flusher is None:
            self._flush_wanted = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        assert self._flush_wanted is not None
        self._flush_wanted.set()

    async def _flush_loop(self) -> None:
        assert self._flush_wanted is not None
        while True:
            await self._flush_wanted.wait()
            await asyncio.sleep(BATCH_DELAY)
            self._flush_wanted.clear()
            await self.flush()

    async def flush(self) -> None:
        """fsync every file written since its last fsync."""
        dirty, self._dirty = self._dirty, set()
        for session_id in dirty:
            entry = self._files.get(session_id)
            if entry is not None:
                await self._sync_to(entry, entry.written)

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        """fsync (unless fsync="off") and close every file; stop the batch flusher."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        files, self._files = self._files, OrderedDict()
        for entry in files.values():
            async with entry.lock:
                if self.fsync != "off" and entry.synced < entry.written:
                    await self._sync_to(entry, entry.written)
                os.close(entry.fd)
        self._dirty.clear()

    @property
    def open_sessions(self) -> list[str]:
        return list(self._files)
