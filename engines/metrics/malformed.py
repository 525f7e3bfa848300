"""Which lines of a metrics.jsonl the chart skips, by number, for the run screen.

The count and the numbers come from the very parser the chart reads the file with
(columns.parse_lines), so "N malformed lines" means the same in the chart footer,
`trainledger runs` and the run screen. The file is read in pieces of whole lines, so a
large file costs its parse time, not its size in memory; a last line not yet ended by a
newline (a trainer still writing it) is not judged, as the chart does not read it yet.
"""

from __future__ import annotations

from pathlib import Path

from trainledger.engines.metrics.columns import MAX_LINE_BYTES, parse_lines
from trainledger.engines.safeio import open_regular_file

READ_BYTES = 16 << 20  # one parse at a time covers about this much of the file


def malformed_lines(path: Path, limit: int = 50) -> tuple[int, list[int]]:
    """(count of malformed lines, the first `limit` of their 1-based line numbers).

    A missing file has none. Raises OSError / NotRegularFile for a file that cannot be
    read (a FIFO, a folder), as the caller must say so rather than report zero.
    """
    count = 0
    first: list[int] = []
    line = 1  # number of the first line of the next piece
    try:
        fh = open_regular_file(Path(path))
    except FileNotFoundError:
        return 0, []
    with fh:
        rest = b""
        overlong = False  # inside a line already longer than any row may be: its bytes are dropped
        while True:
            piece = fh.read(READ_BYTES)
            if not piece:
                break
            if overlong:
                nl = piece.find(b"\n")
                if nl < 0:
                    continue
                count += 1  # the chart counts it malformed too (longer than MAX_LINE_BYTES)
                if len(first) < limit:
                    first.append(line)
                line += 1
                overlong, piece = False, piece[nl + 1 :]
            buf = rest + piece
            cut = buf.rfind(b"\n") + 1
            rest = buf[cut:]
            if len(rest) > MAX_LINE_BYTES:
                overlong, rest = True, b""
            if cut == 0:
                continue
            block = parse_lines(buf[:cut], first_line=line, bad_lines=max(0, limit - len(first)))
            count += block.malformed
            first.extend(block.bad_lines)
            line += buf.count(b"\n", 0, cut)
    return count, first[: max(0, limit)]

