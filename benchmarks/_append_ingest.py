"""The middle reference of capture_ingest.py: parse each line and append, without validating.

`POST /san-frame` reads the body, `orjson.loads` each non-empty line (discarded), then writes
the body in one `os.write` on an `O_APPEND` descriptor of WS/san-training/<session>.jsonl (no
fsync) and answers `{"accepted": n}`. Between the bare server (parse only) and trainledger
(validate, write, fsync batch), it splits the cost: bare -> append is the write,
append -> trainledger --fsync off is validation and our bookkeeping, off -> batch the fsyncs.

    python benchmarks/_append_ingest.py PORT WS
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson
from _bare_ingest import _with_health, serve
from aiohttp import web


def append_app(workspace: Path) -> web.Application:
    folder = workspace / "san-training"
    folder.mkdir(parents=True, exist_ok=True)
    fds: dict[str, int] = {}

    async def ingest(request: web.Request) -> web.Response:
        session = request.headers.get("X-MotionMix-SAN-Session", "")
        body = await request.read()
        n = len([orjson.loads(line) for line in body.split(b"\n") if line.strip()])  # parse, no checks
        fd = fds.get(session)
        if fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = fds[session] = os.open(folder / f"{Path(session).name}.jsonl", flags, 0o644)
        os.write(fd, body if body.endswith(b"\n") else body + b"\n")
        return web.Response(body=orjson.dumps({"accepted": n}), content_type="application/json")

    return _with_health(ingest)


if __name__ == "__main__":
    asyncio.run(serve(append_app(Path(sys.argv[2])), int(sys.argv[1])))
