"""Probe every port at 1 Hz off the UI thread, each within a timeout, and build the rows.

`PortProber.poll()` looks at every port the workspace knows (ports.toml united with the
servers' own records), fetching GET /health and GET /metrics in threads of their own, each
request bounded by `timeout`. A port that accepts and never answers (a server stopped with
SIGSTOP) costs one poll at most `timeout`: while its probe is still out it shows `hung`, no
poll waits for it again, and a new probe starts only when the last one has ended. The
prober keeps what rates and percentiles need between polls: the last scrape per port (the
server's histogram and counters), its own round trips. Provenance comes from the registry,
read again only when registry/changed moves. Plain http.client and threads: the console
imports this, so no torch and no aiohttp. `poll` is for one caller at a time (the pane's
live.Poller never overlaps).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from trainledger.engines.safetext import clean
from trainledger.engines.serving.view import (
    HISTORY,
    PortView,
    Scrape,
    Window,
    parse_metrics,
    percentile,
    read_health,
    text,
    window,
)
from trainledger.engines.workspace import REGISTRY_NOTICE, Workspace

TOKEN_ENV = "TRAINLEDGER_SERVE_TOKEN"
TIMEOUT_S = 0.5
SLOW_MS = 250.0  # an answer slower than this shows as `slow`
MARGIN_S = 0.05  # a poll waits at most timeout + this
HEALTH_LIMIT = 1 << 20
METRICS_LIMIT = 4 << 20
_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True)
class Target:
    """A port to probe: what ports.toml and the server's record say about it."""

    port: int
    host: str  # where to connect (a wildcard bind is probed on loopback)
    url: str
    model: str | None
    kind: str | None
    configured: bool
    pid: int | None  # the recorded server's pid when it is alive
    stale_pid: int | None = None  # a record whose process is gone


@dataclass
class Answer:
    """One GET: `outcome` is ok | refused | timeout | not-http | error | too-big."""

    outcome: str
    status: int | None = None
    body: bytes = b""
    ms: float = 0.0
    error: str = ""
    done_at: float = 0.0  # monotonic


def fetch(host: str, port: int, path: str, token: str | None, timeout: float, limit: int) -> Answer:
    """GET `path` with every socket operation inside one `timeout`-second deadline."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def left() -> float:
        rest = deadline - time.monotonic()
        if rest <= 0:
            raise TimeoutError
        return rest

    try:
        conn.connect()
        sock = conn.sock
        headers = {"Connection": "close", "Accept": "*/*"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        sock.settimeout(left())
        conn.request("GET", path, headers=headers)
        sock.settimeout(left())
        resp = conn.getresponse()
        chunks, size = [], 0
        while True:
            sock.settimeout(left())
            chunk = resp.read1(64 << 10)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                return Answer("too-big", resp.status, error=f"answer over {limit} bytes")
            chunks.append(chunk)
        out = Answer("ok", resp.status, b"".join(chunks))
    except ConnectionRefusedError:
        out = Answer("refused", error="connection refused")
    except (TimeoutError, socket.timeout):
        out = Answer("timeout", error=f"no answer within {timeout:g} s")
    except http.client.HTTPException as exc:
        out = Answer("not-http", error=f"not an HTTP answer ({type(exc).__name__})")
    except OSError as exc:
        out = Answer("error", error=exc.strerror or type(exc).__name__)
    finally:
        conn.close()
    out.done_at = time.monotonic()
    out.ms = (out.done_at - t0) * 1000.0
    return out


class Probe:
    """GET /health and GET /metrics of one port, each in its own daemon thread."""

    def __init__(self, target: Target, token: str | None, timeout: float) -> None:
        self.started = time.monotonic()
        self.wall = time.time()
        self.health: Answer | None = None
        self.metrics: Answer | None = None
        self.done = threading.Event()
        self._left = 2
        self._lock = threading.Lock()
        for slot, path, limit in (("health", "/health", HEALTH_LIMIT), ("metrics", "/metrics", METRICS_LIMIT)):
            args = (slot, target.host, target.port, path, token, timeout, limit)
            threading.Thread(target=self._get, args=args, name=f"probe-{target.port}{path}", daemon=True).start()

    def _get(self, slot: str, *args: Any) -> None:
        try:
            answer = fetch(*args)
        except Exception as exc:  # noqa: BLE001 - a probe that broke is an answer, never a dead thread
            answer = Answer("error", error=type(exc).__name__, done_at=time.monotonic())
        setattr(self, slot, answer)
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.done.set()


@dataclass
class _Port:
    probe: Probe | None = None
    view: PortView | None = None
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    scrape: Scrape | None = None
    scrape_pid: int | None = None
    window: Window | None = None
    hung_since: float | None = None  # monotonic: when its probes stopped answering


class Provenance:
    """Registry facts per (model, version), cached until registry/changed moves."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._key: int | None | object = object()
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}

    def _notice(self) -> int | None:
        try:
            return os.stat(self.ws.registry_dir / REGISTRY_NOTICE).st_mtime_ns
        except OSError:
            return None

    def get(self, model: str, version: str) -> dict[str, Any]:
        key = self._notice()
        if key != self._key:
            self._key, self._cache = key, {}
        got = self._cache.get((model, version))
        if got is None:
            got = self._cache[(model, version)] = self._read(model, version)
        return got

    def _read(self, model: str, version: str) -> dict[str, Any]:
        from trainledger.engines.registry.store import Registry

        try:
            with Registry(self.ws) as reg:
                v = reg.version(model, version)
        except Exception:  # noqa: BLE001 - no such model/version, a locked or broken registry: no provenance
            return {}
        metric = self._primary(v.run_id, v.metrics)
        return {"run_id": text(v.run_id), "dataset_path": text(v.dataset_path, 4096),
                "dataset_sha256": text(v.dataset_sha256),
                "val_metric": (text(metric) or "", float(v.metrics[metric])) if metric else None}  # fmt: skip

    def _primary(self, run_id: str | None, metrics: dict[str, float]) -> str | None:
        """The run's own primary metric when the version has it, else the first val/ metric."""
        if not metrics:
            return None
        if run_id:
            from trainledger.engines.workspace import InvalidId, read_run_info, validate_id

            try:
                run_dir = self.ws.runs_dir / validate_id(run_id, "run id")
                primary = read_run_info(run_dir, check_pid=False).primary_metric
            except (InvalidId, OSError, ValueError):
                primary = None
            if primary in metrics:
                return primary
        val = sorted(k for k in metrics if k.startswith("val/"))
        return (val or sorted(metrics))[0]


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _connect_host(host: str) -> str:
    host = host.strip("[]")
    return _WILDCARD.get(host, host)


class PortProber:
    """Probe every port of a workspace; keep the history rates and sparklines need."""

    def __init__(self, ws: Workspace, token: str | None = None, timeout: float = TIMEOUT_S,
                 slow_ms: float = SLOW_MS) -> None:  # fmt: skip
        self.ws = ws
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        self.timeout = float(timeout)
        self.slow_ms = float(slow_ms)
        self.problem: str | None = None  # why ports.toml could not be read, if it could not
        self.provenance = Provenance(ws)
        self._ports: dict[int, _Port] = {}

    # ------------------------------------------------------------------ which ports
    def targets(self) -> list[Target]:
        """ports.toml united with the servers' records, sorted by port."""
        from trainledger.engines.serving.records import read_records

        specs: list[Any] = []
        self.problem = None
        try:
            from trainledger.engines.serving import portsfile
        except ImportError:
            portsfile = None
        if portsfile is not None:
            try:
                specs = portsfile.read_ports(self.ws)
            except (ValueError, OSError) as exc:
                self.problem = clean(f"ports.toml: {exc}")
        out: dict[int, Target] = {}
        for s in specs:
            host = _connect_host(s.host)
            out[s.port] = Target(s.port, host, _url(host, s.port), s.model, "passthrough" if s.passthrough else None,
                                 configured=True, pid=None)  # fmt: skip
        for r in read_records(self.ws):
            spec = out.get(r.port)
            if not r.alive:
                base = spec or Target(r.port, _connect_host(r.host), clean(r.url or _url(r.host, r.port)), r.model,
                                      r.kind, configured=False, pid=None)  # fmt: skip
                out[r.port] = replace(base, stale_pid=r.pid)
                continue
            out[r.port] = Target(r.port, _connect_host(r.host), clean(r.url or _url(r.host, r.port)), r.model, r.kind,
                                 configured=spec is not None, pid=r.pid)  # fmt: skip
        return [out[p] for p in sorted(out)]

    # ------------------------------------------------------------------ one poll
    def poll(self) -> list[PortView]:
        """Probe every port concurrently; at most `timeout` + a little, however many hang."""
        targets = self.targets()
        for gone in set(self._ports) - {t.port for t in targets}:
            del self._ports[gone]
        waits: list[Probe] = []
        for t in targets:
            st = self._ports.setdefault(t.port, _Port())
            if st.probe is not None and st.probe.done.is_set():
                self._fold(t, st)
            if st.probe is None:
                st.probe = Probe(t, self.token, self.timeout)
                if st.view is None or st.view.state != "hung":
                    waits.append(st.probe)  # a port known to hang is not waited for again
        deadline = time.monotonic() + self.timeout + MARGIN_S
        for probe in waits:
            probe.done.wait(max(0.0, deadline - time.monotonic()))
        views = []
        now = time.monotonic()
        for t in targets:
            st = self._ports[t.port]
            if st.probe is not None and st.probe.done.is_set():
                self._fold(t, st)
            elif st.probe is not None:  # still out past the deadline, or a port known to hang
                st.hung_since = st.hung_since or st.probe.started
                st.view = self._hung(t, st)
            assert st.view is not None
            if st.view.state == "hung":
                for_s = max(now - (st.hung_since or now), self.timeout)
                st.view = replace(st.view, detail=f"no answer for {for_s:.1f} s")
            else:
                st.hung_since = None
            views.append(st.view)
        return views

    def _hung(self, t: Target, st: _Port) -> PortView:
        """The last row seen, marked hung; its rates dropped (nothing was measured)."""
        if st.view is not None:
            return replace(st.view, state="hung", p50_ms=None, p95_ms=None, error_rate=None, rps=None)
        return PortView(port=t.port, host=clean(t.host), url=t.url, model=text(t.model), kind=text(t.kind),
                        configured=t.configured, pid=t.pid, state="hung", detail="",
                        probed_at=st.probe.wall if st.probe else None)  # fmt: skip

    # ------------------------------------------------------------------ a finished probe -> a row
    def _fold(self, t: Target, st: _Port) -> None:
        probe = st.probe
        assert probe is not None and probe.health is not None and probe.metrics is not None
        st.probe = None
        try:
            st.view = self._build(t, st, probe, probe.health, probe.metrics)
        except Exception as exc:  # noqa: BLE001 - an answer nobody foresaw is garbage, never a failed poll
            st.scrape = st.window = None
            st.view = PortView(port=t.port, host=clean(t.host), url=t.url, model=text(t.model), kind=text(t.kind),
                               configured=t.configured, pid=t.pid, state="garbage",
                               detail=f"unreadable answer ({type(exc).__name__})", probed_at=probe.wall,
                               **self._probe_figures(st))  # fmt: skip

    def _build(self, t: Target, st: _Port, probe: Probe, h: Answer, m: Answer) -> PortView:
        base = {"port": t.port, "host": clean(t.host), "url": t.url, "model": text(t.model), "kind": text(t.kind),
                "configured": t.configured, "pid": t.pid, "probed_at": probe.wall}  # fmt: skip
        if h.outcome == "timeout":
            st.hung_since = st.hung_since or probe.started
            st.scrape = st.window = None
            return self._hung(t, st)
        if h.outcome != "ok":
            st.scrape = st.window = None
            state, detail = "garbage" if h.outcome in ("not-http", "too-big") else "down", h.error
            if h.outcome == "refused" and t.configured and t.pid is None:
                state = "stopped"
                detail = "configured, not running" + (f" (pid {t.stale_pid} is gone)" if t.stale_pid else "")
            elif t.stale_pid and state == "down":
                detail += f"; recorded pid {t.stale_pid} is gone"
            return PortView(**base, state=state, detail=clean(detail), **self._probe_figures(st))
        st.history.append(round(h.ms, 3))
        figures = self._probe_figures(st)
        if h.status != 200:
            hint = " (a token is needed: $TRAINLEDGER_SERVE_TOKEN)" if h.status == 401 else ""
            return PortView(**base, state="garbage", detail=f"/health answered HTTP {h.status}{hint}", **figures)
        try:
            obj = json.loads(h.body)
            health = read_health(obj)
        except (ValueError, RecursionError) as exc:
            why = "not JSON" if isinstance(exc, json.JSONDecodeError) else clean(exc)
            return PortView(**base, state="garbage", detail=f"/health: {why}", **figures)
        theirs = obj.get("workspace")
        if isinstance(theirs, str) and not _same_path(theirs, self.ws.root):
            return PortView(**base, state="garbage", detail=clean(f"served by another workspace's server "
                                                                  f"(pid {health.pid}, {theirs})"), **figures)
        detail, metrics = self._metrics(t, st, m, health.pid)
        state = "slow" if h.ms > self.slow_ms else "up"
        if state == "slow":
            detail = f"answered in {h.ms:.0f} ms" + (f"; {detail}" if detail else "")
        model = health.model or t.model
        prov = self.provenance.get(model, health.active) if model and health.active else {}
        base.update(model=health.model if health.model is not None else base["model"],
                    kind=health.kind or base["kind"], pid=health.pid or t.pid)  # fmt: skip
        return PortView(
            **base, state=state, detail=clean(detail), active=health.active, active_sha256=health.active_sha256,
            canary=health.canary, traffic=health.traffic, note=health.note,
            run_id=prov.get("run_id") or health.active_run_id, dataset_path=prov.get("dataset_path"),
            dataset_sha256=prov.get("dataset_sha256"), val_metric=prov.get("val_metric"),
            parameters=health.parameters, uptime_s=health.uptime_s, artifact_path=health.artifact_path,
            windows=health.windows, analysis_subject=health.analysis_subject,
            rss_bytes=metrics.rss_bytes if metrics and metrics.rss_bytes is not None else health.rss_bytes,
            **figures, **self._window_figures(st),
        )  # fmt: skip

    def _metrics(self, t: Target, st: _Port, m: Answer, pid: int | None) -> tuple[str, Scrape | None]:
        """Fold a /metrics answer into the port's window; returns a problem text and the scrape."""
        if m.outcome != "ok" or m.status != 200:
            st.scrape = st.window = None
            return f"/metrics: {m.error or f'HTTP {m.status}'}", None
        try:
            cur = parse_metrics(m.body.decode("utf-8", "replace"), m.done_at)
        except (ValueError, IndexError, KeyError):
            st.scrape = st.window = None
            return "/metrics: not Prometheus text", None
        prev = st.scrape if st.scrape_pid == pid else None
        st.window = window(prev, cur) if prev is not None else None
        st.scrape, st.scrape_pid = cur, pid
        return "", cur

    def _probe_figures(self, st: _Port) -> dict[str, Any]:
        hist = tuple(st.history)
        return {"probe_p50_ms": percentile(hist, 50), "probe_p95_ms": percentile(hist, 95), "latency_history": hist}

    def _window_figures(self, st: _Port) -> dict[str, Any]:
        w = st.window
        if w is None:
            return {}
        return {"p50_ms": w.p50_ms, "p95_ms": w.p95_ms, "error_rate": w.error_rate, "rps": w.rps}


def probe_once(ws: Workspace, token: str | None = None, timeout: float = TIMEOUT_S) -> list[PortView]:
    """One poll (`ports status`): states, versions, provenance; rates need a second poll."""
    return PortProber(ws, token=token, timeout=timeout).poll()


def _same_path(a: str, b: Any) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(str(b))
    except (OSError, ValueError):
        return False
