"""The capture ingest server: `POST /san-frame` NDJSON in, validated lines out to the store.

Devices stream schema-v2 frames here (seed 000's `http://[ip]:9471/san-frame`). Each request
is checked (headers, size, time, UTF-8, every frame through `schema.decode_frame`), its good
lines are appended to `san-training/<session>.jsonl` before the answer goes out, and live
counters are kept for `GET /stats`. Bad input always gets a 4xx with a JSON reason; only a bug
becomes a (logged) 500. The per-request path stays lean: the validation cost is benchmarked
against a bare aiohttp server that only parses each line.

How a body is read and split into stored bytes and rejects is `body.py`.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import ipaddress
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from trainledger.engines.capture import schema
from trainledger.engines.capture.body import INLINE_FAST, Refused, fast, read_body, split
from trainledger.engines.capture.process import STATE_FILE
from trainledger.engines.capture.stats import Stats
from trainledger.engines.capture.store import FSYNC_MODES, SessionStore
from trainledger.engines.pids import parent_alive
from trainledger.engines.workspace import (
    InvalidId,
    Workspace,
    atomic_write_json,
    validate_id,
)

log = logging.getLogger("trainledger.capture.server")

MAX_BODY = 8 * 1024 * 1024
BODY_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 15.0
LINGER = 2.0
HEADER_CACHE = 1024  # distinct good header sets remembered
MIN_TOKEN = 16  # characters a token needs when the server listens beyond loopback
SESSION_HEADER = "X-MotionMix-SAN-Session"
SCHEMA_HEADER = "X-MotionMix-SAN-Schema"
DIMS_HEADER = "X-MotionMix-SAN-Dims"
_SCHEMA_STR = str(schema.SCHEMA_VERSION)
_DIMS_STR = str(schema.DIMS)

_json = msgspec.json.Encoder()
_JSON_HEADERS = {"Content-Type": "application/json"}
# With nothing rejected the counts are left out: a device sending one frame a request parses
# this answer 60 times a second, and the bare server it is measured against answers less.
_ALL_ACCEPTED = b'{"session":"%s","accepted":%d,"rejected":[]}'


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses; wildcards and other names are not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bearer(request: web.Request) -> bytes:
    """The credentials of an `Authorization: Bearer ...` header (scheme in any case, RFC 7235)."""
    scheme, _, cred = request.headers.get("Authorization", "").strip().partition(" ")
    return cred.strip().encode("utf-8", "replace") if scheme.lower() == "bearer" else b""


def check_token(host: str, token: str | None, env: str = "TRAINLEDGER_CAPTURE_TOKEN") -> None:
    """ValueError unless a non-loopback `host` has a token of at least MIN_TOKEN characters;
    `env` is the variable the message names (each server reads its own)."""
    if is_loopback(host):
        return
    if not token:
        raise ValueError(
            f"refusing to listen on {host} without a token: any address other than "
            f"127.0.0.1/::1/localhost needs --token (or ${env})"
        )
    if len(token) < MIN_TOKEN:
        raise ValueError(
            f"refusing to listen on {host} with a {len(token)}-character token: a token "
            f"must have at least {MIN_TOKEN} characters (e.g. python -c "
            "'import secrets; print(secrets.token_urlsafe(24))')"
        )


def _json_response(status: int, obj: Any) -> web.Response:
    return web.Response(
        status=status, body=_json.encode(obj), content_type="application/json"
    )


def _error(status: int, reason: str) -> web.Response:
    return _json_response(status, {"error": reason})


STATS_KEY = web.AppKey("stats", Stats)
STORE_KEY = web.AppKey("store", SessionStore)


def _check_headers(request: web.Request) -> str:
    """The session id, or Refused for a wrong content type or a missing/bad header."""
    headers = request.headers
    ctype = headers.get("Content-Type", "")
    if ctype.split(";", 1)[0].strip().lower() != "application/x-ndjson":
        raise Refused(415, f"content type must be application/x-ndjson, not {ctype!r}")
    session = headers.get(SESSION_HEADER)
    if not session:
        raise Refused(400, f"{SESSION_HEADER}: missing")
    try:
        validate_id(session, "session id")
    except InvalidId as exc:
        raise Refused(400, f"{SESSION_HEADER}: {exc}") from None
    for name, want in ((SCHEMA_HEADER, _SCHEMA_STR), (DIMS_HEADER, _DIMS_STR)):
        got = headers.get(name)
        if got is None or not got.strip():
            raise Refused(400, f"{name}: missing")
        if got.strip() != want:
            raise Refused(400, f"{name}: must be {want}, not {got[:32]!r}")
    return session


def make_app(
    workspace: Workspace,
    *,
    token: str | None,
    fsync: str,
    max_body: int = MAX_BODY,
    body_timeout: float = BODY_TIMEOUT,
) -> web.Application:
    """The ingest application; its store is closed (with fsync) on cleanup."""
    if fsync not in FSYNC_MODES:
        raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}")
    store = SessionStore(workspace.captures_dir, fsync)  # type: ignore[arg-type]
    stats = Stats(fsync=fsync)
    want = token.encode() if token else None

    # Each route's handler is wrapped here rather than by an aiohttp middleware: a
    # middleware costs about a tenth of the 1-frame request rate (capture_ingest.py); and
    # the wrapper is the guard itself, not a coroutine awaiting another.
    def guarded(handler: Any) -> Any:
        async def guard(request: web.Request) -> web.StreamResponse:
            stats.requests += 1
            try:
                if want is not None and request.path != "/health":
                    if not hmac.compare_digest(_bearer(request), want):
                        raise Refused(401, "authorization: missing or wrong bearer token")
                return await handler(request)
            except Refused as exc:
                stats.bad(exc.status)
                resp = _error(exc.status, exc.reason)
                if exc.status in (408, 413):
                    resp.force_close()  # the rest of the body is not going to be read
                return resp
            except web.HTTPException as exc:
                stats.bad(exc.status)
                return _error(exc.status, exc.reason)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("capture server bug on %s %s", request.method, request.path)
                stats.bad(500)
                return _error(500, "internal error (logged by the server)")

        return guard

    # headers already found good -> the session id: a device sends the same four values
    # on every request, so the checks run once per distinct set (bounded, cleared when full)
    good_headers: dict[tuple[str | None, ...], str] = {}

    async def san_frame(request: web.Request) -> web.Response:
        headers = request.headers
        key = (headers.get("Content-Type"), headers.get(SESSION_HEADER), headers.get(SCHEMA_HEADER),
               headers.get(DIMS_HEADER))  # fmt: skip
        session = good_headers.get(key)
        if session is None:
            session = _check_headers(request)
            if len(good_headers) >= HEADER_CACHE:
                good_headers.clear()
            good_headers[key] = session
        length = request.content_length
        if length is not None and length <= max_body and request.content.is_eof():
            body = await request.read()  # all here already: no timer, no limit to apply
        else:
            body = await read_body(request, max_body, body_timeout)
        stats.bytes_in += len(body)
        # the common case (a small all-valid body) without a coroutine or a thread hop
        got = (fast(body) if len(body) <= INLINE_FAST else None) or await split(body)
        del body
        accepted = got.accepted
        if accepted:
            try:
                if not store.append_now(session, got.data):
                    await store.append_bytes(session, got.data)
            except OSError as exc:  # disk full, read-only: not acknowledged; retry
                log.error("capture store: cannot append to %s: %s", session, exc)
                raise Refused(
                    503, f"store: cannot write the session file: {exc.strerror}"
                ) from None
        stats.count_frames(session, accepted, got.rejected, got.by_kind, time.time())
        if not got.rejected:  # all accepted: a short answer from a template (the id is [A-Za-z0-9._-])
            return web.Response(body=_ALL_ACCEPTED % (session.encode(), accepted), headers=_JSON_HEADERS)
        if not accepted:
            stats.bad(422)
        return _json_response(200 if accepted else 422, {
            "session": session, "accepted": accepted, "rejected": got.listed,
            "rejected_count": got.rejected, "rejects_by_reason": got.by_kind,
        })  # fmt: skip

    async def get_stats(request: web.Request) -> web.Response:
        return _json_response(200, stats.as_dict())

    async def health(request: web.Request) -> web.Response:
        return _json_response(200, {"ok": True})

    async def close_store(app: web.Application) -> None:
        await store.close()

    routes = {"/san-frame": ("POST", san_frame), "/stats": ("GET", get_stats),
              "/health": ("GET", health)}  # fmt: skip

    async def unrouted(request: web.Request) -> web.Response:
        """Anything else: 404, or 405 for a known path with the wrong method (counted)."""
        known = routes.get(request.path)
        if known is None:
            raise web.HTTPNotFound()
        raise web.HTTPMethodNotAllowed(request.method, [known[0]])

    app = web.Application(client_max_size=max_body)
    app[STATS_KEY] = stats
    app[STORE_KEY] = store
    for path, (method, handler) in routes.items():
        if method == "GET":
            app.router.add_get(path, guarded(handler))  # and HEAD, as aiohttp does by default
        else:
            app.router.add_route(method, path, guarded(handler))
    app.router.add_route("*", "/{tail:.*}", guarded(unrouted))  # last: only what nothing matched
    app.on_cleanup.append(close_store)
    return app


def state_path(workspace: Workspace) -> Path:
    return workspace.state_dir / STATE_FILE


async def serve(
    host: str,
    port: int,
    workspace: Workspace,
    token: str | None,
    fsync: str,
    ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
    max_body: int = MAX_BODY,
    body_timeout: float = BODY_TIMEOUT,
    write_state: bool = True,
    exit_with_parent: bool = False,
) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT, or with `exit_with_parent` the process
    that started this one exits), then finish in-flight requests, close the store with
    fsync and remove the state file."""
    check_token(host, token)
    app = make_app(
        workspace,
        token=token,
        fsync=fsync,
        max_body=max_body,
        body_timeout=body_timeout,
    )
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        lingering_time=LINGER,  # after a 408/413, drain the unread body this long, then close
        shutdown_timeout=5.0,
    )
    await runner.setup()
    gc.collect()
    gc.freeze()  # aiohttp's and our modules: never scanned again by the collector
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()  # closes the store
        raise
    real_port = port
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            real_port = addr[1]
            break
    stats = app[STATS_KEY]
    stats.host, stats.port = host, real_port
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (RuntimeError, ValueError):  # not the main thread
            pass
    state_file = state_path(workspace)
    url_host = f"[{host}]" if ":" in host else host
    if write_state:
        atomic_write_json(
            state_file,
            {
                "pid": os.getpid(),
                "host": host,
                "port": real_port,
                "url": f"http://{url_host}:{real_port}",
                "fsync": fsync,
                "token_required": bool(token),
                "started_at": stats.started_at,
            },
        )
    watch = asyncio.create_task(_watch_parent(stop)) if exit_with_parent else None
    try:
        if ready is not None:
            ready(host, real_port)
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        if write_state:
            _remove_own_state(state_file)


async def _watch_parent(stop: asyncio.Event, every: float = 0.5) -> None:
    """Set `stop` once the process that started this one (the demo) has died."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(every)
        if not parent_alive(parent):
            stop.set()


def _remove_own_state(state_file: Path) -> None:
    try:
        with open(state_file, "rb") as fh:
            if msgspec.json.decode(fh.read()).get("pid") != os.getpid():
                return
        os.unlink(state_file)
    except (OSError, msgspec.DecodeError, AttributeError):
        pass


def run_server(
    host: str,
    port: int,
    workspace: Workspace,
    token: str | None,
    fsync: str,
    ready: Callable[[str, int], None] | None = None,
    max_body: int = MAX_BODY,
    body_timeout: float = BODY_TIMEOUT,
    exit_with_parent: bool = False,
) -> None:
    """Run the server in this process until SIGTERM/SIGINT (or its parent exits)."""
    asyncio.run(
        serve(
            host, port, workspace, token, fsync, ready,
            max_body=max_body, body_timeout=body_timeout, exit_with_parent=exit_with_parent,
        )
    )  # fmt: skip
