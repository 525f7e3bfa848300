"""The reference of capture_ingest.py: the least an aiohttp server can do with a frame.

`POST /san-frame` reads the body, `orjson.loads` each non-empty line, discards it and answers
`{"accepted": n}`; `GET /health` answers 200. Same framework and defaults as the trainledger
capture server, so the ratio between the two is the cost of validation, the session store
and the durable append, not of HTTP.

    python benchmarks/_bare_ingest.py PORT              # the reference
    python benchmarks/_bare_ingest.py PORT --store WS   # a dry-run stub of the real server:
        decode_frame each line and append it (os.write, no fsync) to WS/san-training/<id>.jsonl

Port 0 picks a free port. Prints `ready <port>` on stdout once it listens; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson
from aiohttp import web


def bare_app() -> web.Application:
    async def ingest(request: web.Request) -> web.Response:
        body = await request.read()
        n = 0
        for line in body.split(b"\n"):
            if line.strip():
                orjson.loads(line)
                n += 1
        return web.Response(
            body=orjson.dumps({"accepted": n}), content_type="application/json"
        )

    return _with_health(ingest)


def store_app(workspace: Path) -> web.Application:
    """The stub: validate with the real schema and append, to dry-run the benchmark."""
    from trainledger.engines.capture.schema import FrameError, decode_frame
    from trainledger.engines.workspace import validate_id

    folder = workspace / "san-training"
    folder.mkdir(parents=True, exist_ok=True)
    fds: dict[str, int] = {}

    async def ingest(request: web.Request) -> web.Response:
        session = validate_id(request.headers.get("X-MotionMix-SAN-Session", ""))
        body = await request.read()
        good, rejected = [], []
        for k, line in enumerate(body.split(b"\n"), 1):
            if line.strip():
                try:
                    decode_frame(line)
                    good.append(line)
                except FrameError as exc:
                    rejected.append({"line": k, "reason": exc.reason})
        if session not in fds:
            fds[session] = os.open(
                folder / f"{session}.jsonl",
                os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                0o644,
            )
        if good:
            os.write(fds[session], b"\n".join(good) + b"\n")
        out = {"session": session, "accepted": len(good), "rejected": rejected}
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    return _with_health(ingest)


def _with_health(ingest) -> web.Application:  # type: ignore[no-untyped-def]
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/san-frame", ingest)
    app.router.add_get("/health", health)
    return app


async def serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"ready {bound}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    port = int(sys.argv[1])
    app = (
        store_app(Path(sys.argv[sys.argv.index("--store") + 1]))
        if "--store" in sys.argv
        else bare_app()
    )
    asyncio.run(serve(app, port))


if __name__ == "__main__":
    main()
