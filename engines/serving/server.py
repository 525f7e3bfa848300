"""The port server: one model's active version, and its canary for the canary's share, over HTTP.

`POST /predict` answers with the version that served it; `GET /health` says what is loaded
and what the registry says; `GET /metrics` is Prometheus text. The server follows the
registry (it stats `registry/changed` five times a second), loads a new version in the
background, checks its bytes before serving them and swaps the Route in one assignment;
requests in flight finish on the version they started on. The analysis loop (analysis.py)
judges the canary and a freshly promoted version and acts through the registry. SIGTERM
drains: the listener closes, in-flight requests get up to DRAIN_S, the record is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable

import msgspec
from aiohttp import web

from trainledger.engines.capture.server import _bearer, _watch_parent, check_token
from trainledger.engines.serving import records
from trainledger.engines.serving.analysis import BAKE_S, Analysis, Decision
from trainledger.engines.serving.faults import Fault
from trainledger.engines.serving.kinds import BadInput  # torch-free: the kinds import torch lazily
from trainledger.engines.serving.metrics import NO_VERSION, ServerMetrics
from trainledger.engines.serving.split import Loaded, Route
from trainledger.engines.serving.swap import Refused, RegistryLink, RegistryRead, load_version, passthrough
from trainledger.engines.workspace import Workspace

log = logging.getLogger("trainledger.serve")
TOKEN_ENV = "TRAINLEDGER_SERVE_TOKEN"
MAX_BODY = 8 << 20
DRAIN_S = 5.0
FOLLOW_S = 0.2  # how often the registry's notice file is looked at, and the analysis ticks
KEEP_REFUSED = 10
WARM = 3  # versions kept loaded: a rollback to the one just left swaps at once, with no load
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_encode(obj), content_type="application/json", headers=headers)


def _rss() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # noqa: BLE001
            return None


class PortServer:
    def __init__(self, ws: Workspace, model: str | None, *, port: int, host: str = "127.0.0.1",
                 token: str | None = None, faults: dict[str, Fault] | None = None,
                 passthrough_dim: int | None = None, bake_s: float = BAKE_S) -> None:  # fmt: skip
        self.ws, self.model, self.host, self.port, self.token = ws, model, host, port, token
        self.faults = dict(faults or {})
        self.passthrough_dim = passthrough_dim
        self.metrics = ServerMetrics()
        self.analysis = Analysis(bake_s=bake_s)
        self.route = Route(model or "passthrough")
        self.started_at = time.time()
        self.read: RegistryRead | None = None
        self.refused: list[dict[str, Any]] = []
        self._refused_keys: set[tuple[str, str]] = set()
        self._dropped: set[str] = set()  # canaries aborted here, until the registry says so too
        self._reg_exec = ThreadPoolExecutor(1, thread_name_prefix="serve-registry")
        self._load_exec = ThreadPoolExecutor(1, thread_name_prefix="serve-load")
        self._predict_exec = ThreadPoolExecutor(1, thread_name_prefix="serve-predict")
        self._link = RegistryLink(ws)
        self._notice_mtime: int | None = -1
        self._warm: OrderedDict[str, Loaded] = OrderedDict()
        self._tasks: list[asyncio.Task[Any]] = []
        self.kind: str | None = None
        self.input_shape: dict[str, Any] = {}

    # ------------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard] if self.token else [])
        app.router.add_post("/predict", self.predict)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.prometheus)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        import hmac

        if not hmac.compare_digest(_bearer(request), (self.token or "").encode()):
            return _json(401, {"error": "authorization: missing or wrong bearer token"})
        return await handler(request)

    async def predict(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _json(415, {"error": "content type must be application/json", "field": "Content-Type"})
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json(413, {"error": f"body over {MAX_BODY} bytes", "field": "body"})
        try:
            body = _decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return _json(400, {"error": "the body is not valid JSON", "field": "body"})
        if not isinstance(body, dict):
            return _json(400, {"error": "the body must be a JSON object", "field": "body"})
        key = request.headers.get("X-Request-Key")
        if key is None and "key" in body:
            key = body["key"]
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                return _json(400, {"error": "key must be a string or a whole number", "field": "key"})
            key = str(key)
        route = self.route
        loaded = route.pick(key)
        if loaded is None:
            self.metrics.version(NO_VERSION).observe(0.0, True)
            why = (self.read.error if self.read and self.read.error else f"no active version of {self.model}")
            return _json(503, {"error": f"nothing to serve: {why}"})
        return await self._answer(loaded, body)

    async def _answer(self, loaded: Loaded, body: dict[str, Any]) -> web.Response:
        version = loaded.version
        m = self.metrics.version(version)
        m.in_flight.inc()
        t0 = time.perf_counter()
        failed = False
        try:
            fault = self.faults.get(version)
            if fault is not None:
                if fault.latency_ms:
                    await asyncio.sleep(fault.latency_ms / 1000.0)
                if fault.error and random.random() < fault.error:
                    failed = True
                    return _json(500, {"error": "injected fault (serve --fault)", "version": version},
                                 {"X-Trainledger-Version": version})  # fmt: skip
            predictor = loaded.predictor
            if predictor.slow:
                out = await asyncio.get_running_loop().run_in_executor(self._predict_exec, predictor.predict, body)
            else:
                out = predictor.predict(body)
            out["version"] = version
            return web.Response(body=_encode(out), headers={"Content-Type": "application/json",
                                                            "X-Trainledger-Version": version})  # fmt: skip
        except BadInput as exc:
            return _json(400, {"error": str(exc), "field": exc.field, "version": version})
        except Exception as exc:  # noqa: BLE001 - the model failed: a 500 that counts against it
            failed = True
            log.exception("predict failed on %s", version)
            return _json(500, {"error": f"the model failed: {type(exc).__name__}", "version": version},
                         {"X-Trainledger-Version": version})  # fmt: skip
        finally:
            m.in_flight.dec()
            m.observe(time.perf_counter() - t0, failed)

    async def health(self, request: web.Request) -> web.Response:
        return _json(200, self.describe())

    def describe(self) -> dict[str, Any]:
        route, now = self.route, time.time()
        reg = None
        if self.read is not None and self.read.state is not None:
            s = self.read.state
            reg = {"active": s.active, "canary": s.canary, "traffic": s.traffic}
        canary = None
        if route.canary is not None:
            canary = {**route.canary.describe(), "traffic": route.traffic}
        return {"ok": True, "model": self.model, "kind": self.kind, "port": self.port, "pid": os.getpid(),
                "workspace": str(self.ws.root),
                "started_at": self.started_at, "uptime_s": round(now - self.started_at, 3),
                "input_shape": self.input_shape,
                "active": None if route.active is None else route.active.describe(), "canary": canary,
                "registry": reg, "registry_error": self.read.error if self.read else None,
                "refused": list(self.refused), "analysis": self.analysis.describe(),
                "canary_plan": self.analysis.describe_plan(),
                "faults": {v: f.to_dict() for v, f in self.faults.items()}, "rss_bytes": _rss()}  # fmt: skip

    async def prometheus(self, request: web.Request) -> web.Response:
        data, ctype = self.metrics.exposition()
        return web.Response(body=data, headers={"Content-Type": ctype})

    # ------------------------------------------------------------------ following the registry
    async def _in(self, pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(*args, **kwargs))

    def _notice(self) -> int | None:
        try:
            return os.stat(self.ws.registry_dir / "changed").st_mtime_ns
        except OSError:
            return None

    async def follow(self) -> None:
        """Reconcile with the registry now and whenever its notice file changes."""
        while True:
            mtime = self._notice()
            if mtime != self._notice_mtime:
                self._notice_mtime = mtime
                await self.reconcile()
            await asyncio.sleep(FOLLOW_S)

    async def reconcile(self) -> None:
        assert self.model is not None
        read: RegistryRead = await self._in(self._reg_exec, self._link.read, self.model)
        if read.error and (self.read is None or self.read.error != read.error):
            log.warning("%s", read.error)
        self.read = read
        state = read.state
        self.analysis.follow(state, read.entries, time.time())
        if state is None:
            return
        self._dropped = {v for v in self._dropped if v == state.canary}
        route = self.route
        active = await self._ensure(route.active, state.active, read)
        canary_name = state.canary if state.canary not in self._dropped else None
        canary = await self._ensure(route.canary, canary_name, read) if canary_name else None
        traffic = state.traffic if canary is not None else 0
        salt = ""
        if canary is not None and canary_name in read.versions:
            salt = f"{canary_name}@{read.versions[canary_name].deployed_at!r}"
        if self._dropped and state.canary in self._dropped:  # aborted meanwhile: keep it off
            canary, traffic = None, 0
        self.route = Route(self.model, active, canary, traffic, salt, route._counter)  # the sequence goes on
        if active is not None:
            self.kind, self.input_shape = active.kind, dict(getattr(active.predictor, "input_shape", {}))

    async def _ensure(self, current: Loaded | None, name: str | None, read: RegistryRead) -> Loaded | None:
        """`name` loaded: the current one if it is that version, else a fresh load; on a refusal the
        current one keeps serving (for the active) and the refusal is said, logged and audited."""
        if name is None:
            return None
        version = read.versions.get(name)
        if version is None:
            return current
        warm = self._warm.get(name)
        if warm is not None and warm.checksum == version.checksum:
            self._warm.move_to_end(name)
            return warm
        try:
            loaded = await self._in(self._load_exec, load_version, self.ws, version)
            log.info("loaded %s %s (%s)", self.model, name, version.checksum[:12])
            gc.freeze()  # the new model's objects join the frozen ones
            self._warm[name] = loaded
            while len(self._warm) > WARM:
                self._warm.popitem(last=False)
            return loaded
        except Exception as exc:  # noqa: BLE001 - Refused, or a model that cannot be built
            reason = str(exc) if isinstance(exc, Refused) else f"{type(exc).__name__}: {exc}"
            await self._refuse(name, reason, tampered=isinstance(exc, Refused) and exc.tampered)
            return current if current is not None and current.version != name else None

    async def _refuse(self, name: str, reason: str, tampered: bool) -> None:
        log.error("refused to load %s %s: %s", self.model, name, reason)
        if (name, reason) in self._refused_keys:
            return
        self._refused_keys.add((name, reason))
        self.refused.append({"version": name, "reason": reason, "at": time.time()})
        del self.refused[:-KEEP_REFUSED]
        if tampered:  # the registry re-hashes: marks it corrupt and writes the audit entry
            await self._in(self._reg_exec, self._link.act, "verify", self.model,
                           reason=f"port {self.port} refused to load {name}: {reason}")  # fmt: skip

    # ------------------------------------------------------------------ the analysis loop
    async def analyse(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_S)
            decision = self.analysis.tick(time.time(), self.metrics.tally, _rss())
            if decision is not None:
                await self.carry_out(decision)

    async def carry_out(self, d: Decision) -> None:
        assert self.model is not None
        if d.action == "abort":  # stop routing to it now; the registry write follows
            self._dropped.add(d.version)
            if self.route.canary is not None and self.route.canary.version == d.version:
                self.route = replace(self.route, canary=None, traffic=0)
            result = await self._in(self._reg_exec, self._link.act, "abort", self.model, reason=d.reason,
                                    figures=d.figures)  # fmt: skip
        elif d.action == "rollback":
            result = await self._in(self._reg_exec, self._link.act, "rollback", self.model, reason=d.reason,
                                    figures=d.figures)  # fmt: skip
        elif d.action == "promote":
            result = await self._in(self._reg_exec, self._link.act, "promote", self.model, version=d.version,
                                    reason=d.reason)  # fmt: skip
        else:
            result = await self._in(self._reg_exec, self._link.act, "canary", self.model, version=d.version,
                                    traffic=d.traffic, reason=d.reason, plan=d.plan)  # fmt: skip
        text = result if isinstance(result, str) else result.message
        log.warning("%s %s %s: %s (%s)", d.action, self.model, d.version, text, d.reason)

    # ------------------------------------------------------------------ lifecycle
    async def serve(self, ready: Callable[[str, int], None] | None = None, stop: asyncio.Event | None = None,
                    exit_with_parent: bool = False, log_file: str | None = None) -> None:  # fmt: skip
        check_token(self.host, self.token, TOKEN_ENV)
        if self.model is None:
            loaded = await self._in(self._load_exec, passthrough, self.passthrough_dim)
            self.route = Route("passthrough", loaded)
            self.kind, self.input_shape = "passthrough", dict(loaded.predictor.input_shape)
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=DRAIN_S)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        for addr in runner.addresses:
            if isinstance(addr, tuple):
                self.port = addr[1]
                break
        if self.model is not None:
            await self.reconcile()
            self._notice_mtime = self._notice()
            self._tasks += [asyncio.create_task(self.follow()), asyncio.create_task(self.analyse())]
        gc.collect()
        gc.freeze()  # torch, the model and the registry's modules: never scanned again by the collector
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        if exit_with_parent:
            self._tasks.append(asyncio.create_task(_watch_parent(stop)))
        self._record(log_file)
        try:
            if ready is not None:
                ready(self.host, self.port)
            await stop.wait()
        finally:
            for task in self._tasks:
                task.cancel()
            for sig in handled:
                loop.remove_signal_handler(sig)
            await runner.cleanup()  # drains: in-flight requests finish, up to DRAIN_S
            records.remove_record(self.ws, self.port)
            self._reg_exec.submit(self._link.close)
            for pool in (self._reg_exec, self._load_exec, self._predict_exec):
                pool.shutdown(wait=False, cancel_futures=True)

    def _record(self, log_file: str | None) -> None:
        import psutil

        me = psutil.Process()
        host = f"[{self.host}]" if ":" in self.host else self.host
        records.write_record(self.ws, records.PortRecord(
            port=self.port, host=self.host, url=f"http://{host}:{self.port}", model=self.model,
            kind="passthrough" if self.model is None else self.kind, pid=os.getpid(),
            started_at=me.create_time(), argv=tuple(me.cmdline()), token_required=bool(self.token),
            log=log_file))  # fmt: skip


def run_server(ws: Workspace, *, model: str | None, port: int, host: str = "127.0.0.1", token: str | None = None,
               faults: dict[str, Fault] | None = None, passthrough_dim: int | None = None,
               exit_with_parent: bool = False, ready: Callable[[str, int], None] | None = None,
               log: str | None = None, bake_s: float = BAKE_S, threads: int | None = 1) -> None:  # fmt: skip
    """Serve in this process until SIGTERM/SIGINT (or, with `exit_with_parent`, the parent's exit).

    `threads` bounds torch's threads per forward pass (set before torch is imported: the
    OpenMP pool reads it once). One is the default: a port server for a small model is no
    faster with more, and six of them on one machine each spinning every core fight."""
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(int(threads))
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
    check_token(host, token, TOKEN_ENV)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = PortServer(ws, model, port=port, host=host, token=token, faults=faults,
                        passthrough_dim=passthrough_dim, bake_s=bake_s)  # fmt: skip
    asyncio.run(server.serve(ready, exit_with_parent=exit_with_parent, log_file=log))
