"""One `POST /san-frame` body: read it within limits, split it into the bytes to append and a
capped list of rejects, off the event loop when it is large.

Stored bytes: a body whose every line is a valid frame (LF endings, no blank lines) is
appended byte for byte, plus a final newline if it lacked one. Otherwise each accepted line
is stored as received with surrounding whitespace removed, blank lines dropped, and a line
holding a carriage return inside it re-encoded compactly with `schema.encode_frame`, so no
reader ever sees a line break inside a frame.

A response lists the first `LISTED` rejects (line number and reason) and counts every
reject by kind (`schema.FrameError.kind`: the field and what is wrong, without positions),
so an 8 MB body of bad lines costs a small answer and a small dict, not a list per line.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from trainledger.engines.capture import schema

LISTED = 20  # rejects listed one by one in a response; the rest are only counted
INLINE_FAST = 1 << 20  # bodies up to this size try the all-valid fast path on the loop
INLINE_SLOW = 64 << 10  # ... and the line-by-line path only up to this size
CHUNK = 256 << 10  # the line-by-line path splits this much of the body at a time
_CACHE = 4096  # reasons remembered per request for repeated bad lines
_SHORT = 256  # no valid frame is this short: look such a line up before decoding it
_HEADER_FIELDS = ("schema_version: ", "dims: ")
_decode = schema._decoder.decode
_decode_lines = schema.decode_lines
_explain = schema.explain
_encode_frame = schema.encode_frame
_DecodeErrors = (msgspec.MsgspecError, UnicodeDecodeError)


class Refused(Exception):
    """A request refused as a whole: HTTP status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Split:
    """What one body holds: bytes to append, frames accepted, rejects listed and counted."""

    data: bytes = b""
    accepted: int = 0
    rejected: int = 0
    listed: list[dict[str, object]] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)


async def read_body(request: web.Request, max_body: int, timeout: float) -> bytes:
    length = request.content_length
    if length is not None and length > max_body:
        raise Refused(413, f"body: {length} bytes is over the limit of {max_body}")
    try:
        if request.content.is_eof():  # already buffered: no timer needed
            return await request.read()
        async with asyncio.timeout(timeout):
            return await request.read()  # client_max_size == max_body, chunked included
    except web.HTTPRequestEntityTooLarge:
        raise Refused(413, f"body: over the limit of {max_body} bytes") from None
    except TimeoutError:
        raise Refused(408, f"body: not received within {timeout:g} s") from None


def line_count(body: bytes, most: int) -> int:
    """Lines in `body` (a last line without a newline counts), up to `most` + 1.

    bytes.find is memchr; bytes.count(b"\\n") scans several times slower.
    """
    count, pos, find = 0, -1, body.find
    while count <= most:
        pos = find(b"\n", pos + 1)
        if pos < 0:
            return count + (body[-1] != 10)
        count += 1
    return count


def fast(body: bytes) -> Split | None:
    """The whole body if every line is a valid frame (one decoder call), else None."""
    try:
        n = len(_decode_lines(body))
    except _DecodeErrors:  # msgspec raises UnicodeDecodeError for bad UTF-8 in a string
        return None
    if n and b"\r" not in body and line_count(body, n) == n:
        return Split(body if body[-1] == 10 else body + b"\n", n)
    return None


def slow(body: bytes) -> Split:
    """Validate line by line. Raises Refused if the body is empty, not UTF-8, or a frame
    disagrees with the headers."""
    if not body.strip():
        raise Refused(400, "body: empty; send one or more frames, one per line")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"body: invalid UTF-8 at byte offset {exc.start}") from None
    out = Split()
    good: list[bytes] = []
    listed, by_kind = out.listed, out.by_kind
    seen: dict[bytes, schema.FrameError] = {}
    number, pos, end = 0, 0, len(body)
    while pos < end:
        stop = body.find(b"\n", pos + CHUNK)
        stop = end if stop < 0 else stop + 1
        lines = body[pos:stop].split(b"\n")
        if stop > pos and body[stop - 1] == 10:
            lines.pop()  # the piece ended with a newline: no line after it
        pos = stop
        for raw in lines:
            number += 1
            line = raw.strip()
            if not line:
                continue
            err = seen.get(line) if len(line) < _SHORT else None
            if err is None:
                try:
                    frame = _decode(line)
                except _DecodeErrors:
                    err = seen.get(line) or _explain(line)
                    if len(seen) < _CACHE:
                        seen[line] = err
                else:
                    good.append(_encode_frame(frame) if b"\r" in line else line)
                    continue
            reason = err.reason
            if reason.startswith(_HEADER_FIELDS) and not reason.endswith(": missing"):
                raise Refused(400, f"line {number}: {reason} (disagrees with the request headers)")
            out.rejected += 1
            by_kind[err.kind] = by_kind.get(err.kind, 0) + 1
            if len(listed) < LISTED:
                listed.append({"line": number, "reason": reason})
    out.accepted = len(good)
    out.data = b"\n".join(good) + b"\n" if good else b""
    return out


def split_now(body: bytes) -> Split:
    return fast(body) or slow(body)


async def split(body: bytes) -> Split:
    """`split_now`, in a worker thread when the body is large, so the loop keeps answering."""
    if len(body) <= INLINE_FAST:
        got = fast(body)
        if got is not None:
            return got
        if len(body) <= INLINE_SLOW:
            return slow(body)
        return await asyncio.get_running_loop().run_in_executor(None, slow, body)
    return await asyncio.get_running_loop().run_in_executor(None, split_now, body)
