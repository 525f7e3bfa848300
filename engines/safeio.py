"""Open files that a workspace claims are ours without trusting them.

A `metrics.jsonl` that is a FIFO blocks a plain `open()` forever; a symlink to
`/dev/zero` reads until memory runs out. Everything the console and the CLIs read from
a workspace goes through `open_regular` (never blocks, refuses anything that is not a
regular file) and `read_regular` (also bounds how much is read).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


class NotRegularFile(OSError):
    """The path exists but is a FIFO, a device, a socket or a folder."""


class FileTooLarge(OSError):
    """The file is larger than the caller agreed to read."""


def describe_kind(mode: int) -> str:
    """What a non-regular file is, in words: `a FIFO`, `a character device`, ..."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor for `path`, which must be a regular file.

    Opening never blocks (O_NONBLOCK: a FIFO with no writer opens at once and is then
    refused). Raises FileNotFoundError, PermissionError, NotRegularFile.
    """
    fd = os.open(os.fspath(path), _FLAGS)
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFile(f"{Path(path).name} is {describe_kind(st.st_mode)}, not a regular file")
    return fd


def open_regular_file(path: str | os.PathLike[str]):  # noqa: ANN201 - a binary file object
    """`open_regular` as a buffered binary file object (`with open_regular_file(p) as fh`)."""
    return os.fdopen(open_regular(path), "rb")


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole of a regular file of at most `limit` bytes; FileTooLarge past that."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise FileTooLarge(f"{Path(path).name} is {size} bytes, over the {limit}-byte limit")
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:  # it grew while we read
            raise FileTooLarge(f"{Path(path).name} grew past the {limit}-byte limit")
        return data
    finally:
        os.close(fd)
