"""The prober against real HTTP servers on 127.0.0.1: a well-behaved one with a real
prometheus_client registry, and misbehaving ones — a port that accepts and never answers,
one that answers garbage, a slow one, a closed one — plus the real port server process."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from trainledger.engines.safetext import has_control
from trainledger.engines.serving import records
from trainledger.engines.serving.portsfile import PortSpec, write_ports
from trainledger.engines.serving.prober import PortProber, probe_once
from trainledger.engines.serving.view import PortView, histogram_quantile, percentile
from trainledger.engines.workspace import Workspace

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TIMEOUT = 0.5
HUNG_TIMEOUT = 1.0  # where a test times polls: a poll that waited for a hung port takes >= this


class Metrics:
    """The contract's metric names on a real CollectorRegistry, as the port server keeps them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("trainledger_requests", "r", ["version"], registry=self.registry)
        self.errors = Counter("trainledger_request_errors", "e", ["version"], registry=self.registry)
        self.latency = Histogram("trainledger_request_duration_seconds", "l", ["version"], buckets=BUCKETS,
                                 registry=self.registry)  # fmt: skip
        self.rss = Gauge("process_resident_memory_bytes", "rss", registry=self.registry)
        self.rss.set(123_456_789)

    def observe(self, version: str, seconds: float, n: int = 1, failed: bool = False) -> None:
        for _ in range(n):
            self.requests.labels(version).inc()
            self.latency.labels(version).observe(seconds)
            if failed:
                self.errors.labels(version).inc()


def health_body(port: int, model: str | None = "amn", **changes: Any) -> dict[str, Any]:
    active = {"version": "v2", "sha256": "ab" * 32, "parameters": 1234, "loaded_at": 1.0, "run_id": "r1",
              "kind": "lvm-amn", "artifacts": [{"name": "model.safetensors", "sha256": "ab" * 32,
                                                "path": "/tmp/does-not-matter/model.safetensors"}]}  # fmt: skip
    body = {"ok": True, "model": model, "kind": "lvm-amn" if model else "passthrough", "port": port,
            "pid": os.getpid(), "started_at": 1.0, "uptime_s": 12.5, "input_shape": {"context": [5, 4]},
            "active": active, "canary": None, "registry": {"active": "v2", "canary": None, "traffic": 0},
            "refused": [], "analysis": {"subject": None, "version": None, "window_s": 30.0, "bake_until": None,
                                        "windows": []},
            "canary_plan": None, "faults": {}, "rss_bytes": 1000}  # fmt: skip
    body.update(changes)
    return body


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str = "good", delay: float = 0.0, token: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode, self.delay, self.token = mode, delay, token
        self.port = self.server_address[1]
        self.metrics = Metrics()
        self.health: dict[str, Any] = health_body(self.port)
        self.hits = 0
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        s = self.server
        s.hits += 1
        if s.delay:
            time.sleep(s.delay)
        if s.token and self.headers.get("Authorization") != f"Bearer {s.token}":
            return self._send(401, b'{"error": "token"}', "application/json")
        if s.mode == "garbage":
            return self._send(200, b"<html>certainly not json {{", "text/html")
        if s.mode == "http500":
            return self._send(500, b'{"error": "boom"}', "application/json")
        if s.mode == "shape":
            return self._send(200, b"[1, 2, 3]" if self.path == "/health" else b"# nothing\n", "application/json")
        if self.path == "/health":
            return self._send(200, json.dumps(s.health).encode(), "application/json")
        if self.path == "/metrics":
            return self._send(200, generate_latest(s.metrics.registry), "text/plain; version=0.0.4")
        return self._send(404, b"{}", "application/json")


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    made: list[FakeServer] = []
    yield made
    for s in made:
        s.close()


def serve(made: list[FakeServer], mode: str = "good", **kw: Any) -> FakeServer:
    s = FakeServer(mode, **kw)
    made.append(s)
    return s


@pytest.fixture
def hung_port() -> Iterator[int]:
    """Accepts TCP (the kernel's backlog) and never answers, like a server stopped with SIGSTOP."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def configure(ws: Workspace, *ports: int) -> None:
    write_ports(ws, [PortSpec(port=p, model="amn") for p in ports])


def by_port(views: list[PortView]) -> dict[int, PortView]:
    return {v.port: v for v in views}


def timed_poll(prober: PortProber) -> tuple[dict[int, PortView], float]:
    t0 = time.monotonic()
    views = prober.poll()
    return by_port(views), time.monotonic() - t0


# ---------------------------------------------------------------------- states and timing
def test_a_hung_port_never_delays_the_others_nor_the_next_poll(ws: Workspace, servers, hung_port: int) -> None:
    good, closed = serve(servers), closed_port()
    configure(ws, good.port, hung_port, closed)
    prober = PortProber(ws, timeout=HUNG_TIMEOUT)
    views, took = timed_poll(prober)
    assert took < HUNG_TIMEOUT + 0.5
    assert views[good.port].state == "up" and views[good.port].active == "v2"
    assert views[hung_port].state == "hung" and "1.0 s" in views[hung_port].detail
    assert views[closed].state == "stopped" and views[closed].configured
    for _ in range(3):  # the hung probe is not waited for again: each later poll is quick
        views, took = timed_poll(prober)
        assert took < HUNG_TIMEOUT / 2, took
        assert views[good.port].state == "up" and views[hung_port].state == "hung"
    assert threading.active_count() < 30  # at most one probe in flight per port


def test_slow_garbage_wrong_shape_http_error_and_down(ws: Workspace, servers) -> None:
    slow = serve(servers, delay=0.3)
    garbage, shape, err = serve(servers, "garbage"), serve(servers, "shape"), serve(servers, "http500")
    gone = closed_port()
    configure(ws, slow.port, garbage.port, shape.port, err.port)
    rec = records.PortRecord(port=gone, host="127.0.0.1", url=f"http://127.0.0.1:{gone}", model="amn",
                             kind="lvm-amn", pid=2**22 + 7, started_at=1.0, argv=("nothing",))  # fmt: skip
    records.write_record(ws, rec)  # a server that crashed without removing its record
    views, took = timed_poll(PortProber(ws, timeout=HUNG_TIMEOUT))
    assert took < HUNG_TIMEOUT + 0.5
    assert views[slow.port].state == "slow" and views[slow.port].detail.startswith("answered in")
    assert views[slow.port].active == "v2"  # slow is still an answer: the row is filled
    assert views[garbage.port].state == "garbage" and "not JSON" in views[garbage.port].detail
    assert views[shape.port].state == "garbage" and views[shape.port].active is None
    assert views[err.port].state == "garbage" and "HTTP 500" in views[err.port].detail
    assert views[gone].state == "down" and not views[gone].configured and str(2**22 + 7) in views[gone].detail
    assert [v.port for v in probe_once(ws, timeout=TIMEOUT)] == sorted(views)


def test_a_token_is_sent_and_its_absence_is_said(ws: Workspace, servers, monkeypatch) -> None:
    locked = serve(servers, token="s3cret-token-0123456789")
    configure(ws, locked.port)
    monkeypatch.delenv("TRAINLEDGER_SERVE_TOKEN", raising=False)
    assert by_port(probe_once(ws))[locked.port].state == "garbage"
    assert "401" in by_port(probe_once(ws))[locked.port].detail
    assert by_port(probe_once(ws, token="s3cret-token-0123456789"))[locked.port].state == "up"
    monkeypatch.setenv("TRAINLEDGER_SERVE_TOKEN", "s3cret-token-0123456789")
    assert by_port(probe_once(ws))[locked.port].state == "up"


def test_a_server_found_by_its_record_alone(ws: Workspace, servers) -> None:
    s = serve(servers)
    me = psutil.Process()
    records.write_record(ws, records.PortRecord(
        port=s.port, host="127.0.0.1", url=f"http://127.0.0.1:{s.port}", model="amn", kind="lvm-amn",
        pid=os.getpid(), started_at=me.create_time(), argv=tuple(me.cmdline())))  # fmt: skip
    (view,) = probe_once(ws)
    assert view.port == s.port and view.state == "up" and not view.configured and view.pid == os.getpid()


# ---------------------------------------------------------------------- figures
def test_percentiles_error_rate_and_rps_come_from_the_deltas_between_polls(ws: Workspace, servers) -> None:
    s = serve(servers)
    configure(ws, s.port)
    s.metrics.observe("v1", 0.2, n=500)  # before the window: must not count
    prober = PortProber(ws, timeout=TIMEOUT)
    (first,) = prober.poll()
    assert first.p50_ms is None and first.rps is None and first.rss_bytes == 123_456_789
    t0 = time.monotonic()
    s.metrics.observe("v2", 0.003, n=90)  # bucket (2.5 ms, 5 ms]
    s.metrics.observe("v3", 0.7, n=10, failed=True)  # bucket (0.5 s, 1 s]; two versions are summed
    time.sleep(0.5)
    (second,) = prober.poll()
    gap = time.monotonic() - t0
    assert second.p50_ms == pytest.approx(2.5 + 2.5 * 50 / 90)  # interpolated inside its bucket
    assert second.p95_ms == pytest.approx(500 + 500 * 5 / 10)
    assert second.error_rate == pytest.approx(0.1)
    assert 100 / (gap + 0.1) < second.rps < 100 / (gap - 0.1)
    (third,) = prober.poll()  # nothing happened since: no rate, no percentile, no error rate
    assert third.rps == 0.0 and third.p50_ms is None and third.error_rate is None
    assert len(third.latency_history) == 3 and third.probe_p50_ms is not None
    assert third.probe_p95_ms >= third.probe_p50_ms > 0


def test_latency_history_is_bounded_and_a_restart_is_not_a_negative_rate(ws: Workspace, servers) -> None:
    s = serve(servers)
    configure(ws, s.port)
    prober = PortProber(ws, timeout=TIMEOUT)
    s.metrics.observe("v2", 0.01, n=50)
    for _ in range(65):
        (view,) = prober.poll()
    assert len(view.latency_history) == 60
    s.metrics = Metrics()  # the server restarted: its counters start again from 0
    s.health["pid"] = os.getpid() + 1
    (view,) = prober.poll()
    assert view.rps is None and view.error_rate is None


def test_histogram_quantile_as_prometheus_computes_it() -> None:
    inf = math.inf
    assert histogram_quantile(0.5, [(0.1, 0), (0.2, 0), (inf, 0)]) is None
    assert histogram_quantile(0.5, [(0.1, 10), (inf, 10)]) == pytest.approx(0.05)  # first bucket starts at 0
    assert histogram_quantile(0.99, [(0.1, 1), (0.2, 2), (inf, 10)]) == 0.2  # +Inf: the highest finite bound
    assert histogram_quantile(0.5, [(0.1, 2), (0.2, 2), (0.4, 6), (inf, 6)]) == pytest.approx(0.25)
    assert histogram_quantile(0.5, [(0.1, 5)]) is None  # no +Inf bucket: not a histogram
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([], 50) is None


# ---------------------------------------------------------------------- what /health says
def test_text_from_a_server_comes_out_cleaned(ws: Workspace, servers) -> None:
    s = serve(servers)
    configure(ws, s.port)
    evil = "am\x1b]2;pwned\x07n\x9b\u2028"
    s.health = health_body(s.port, model=evil, kind="lvm\x1b[31m", registry={"active": "v9\x07", "canary": None},
                           refused=[{"version": "v9\x07", "reason": "sha256\x1b[2J mismatch", "at": 1.0}],
                           registry_error="db\x00locked")  # fmt: skip
    s.health["active"]["version"] = "v2\r\n"
    s.health["active"]["artifacts"][0]["path"] = "/tmp/x\x1b]52;c;AAAA\x07/model.safetensors"
    (view,) = probe_once(ws)
    assert view.state == "up"
    strings = [v for v in _walk(view.to_dict()) if isinstance(v, str)]
    assert strings and not any(has_control(x) for x in strings)
    assert view.model.startswith("am") and "pwned" in view.model
    assert "registry says v9" in view.note and "mismatch" in view.note


def test_health_fields_reach_the_row(ws: Workspace, servers, tmp_path: Path) -> None:
    s = serve(servers)
    configure(ws, s.port)
    real = tmp_path / "blob"
    real.write_bytes(b"weights")
    link = tmp_path / "model.safetensors"
    link.symlink_to(real)
    s.health["active"]["artifacts"][0]["path"] = str(link)
    s.health["canary"] = {**s.health["active"], "version": "v3", "traffic": 25}
    s.health["registry"] = {"active": "v2", "canary": "v3", "traffic": 25}
    s.health["analysis"] = {"subject": "canary", "version": "v3", "window_s": 30.0, "bake_until": None,
                            "windows": [{"start": 1.0, "end": 31.0, "requests": 40, "errors": 1,
                                         "mean_latency_ms": 2.5, "memory_bytes": 10, "outcome": "pass",
                                         "reason": "", "extra": "dropped"}]}  # fmt: skip
    (view,) = probe_once(ws)
    assert (view.active, view.canary, view.traffic, view.note) == ("v2", "v3", 25, None)
    assert view.artifact_path == str(real.resolve()) and view.parameters == 1234 and view.uptime_s == 12.5
    assert view.analysis_subject == "canary" and view.windows[0]["requests"] == 40 and "extra" not in view.windows[0]
    assert view.run_id == "r1" and view.val_metric is None  # no registry here: only what /health says
    json.dumps(view.to_dict())


def test_provenance_comes_from_the_registry_and_is_read_again_when_it_changes(ws: Workspace, servers,
                                                                             tmp_path: Path) -> None:
    from trainledger.engines.metrics.writer import MetricsWriter
    from trainledger.engines.registry.store import Registry
    from trainledger.engines.registry.types import Candidate, SourceFile

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not really weights")
    MetricsWriter(ws, "r2", model="lvm-amn", primary_metric="val/mse").finish()

    def deploy(version: str, run_id: str) -> None:
        with Registry(ws) as reg:
            reg.deploy("amn", Candidate(kind="lvm-amn", files=(SourceFile("model.safetensors", weights),),
                                        source="test", run_id=run_id, dataset_path="/data/seq.npz",
                                        dataset_sha256="cd" * 32,
                                        metrics={"train/loss": 0.2, "val/mse": 0.1, "val/cosine": 0.56}),
                       version=version)  # fmt: skip

    deploy("v1", "r1")
    s = serve(servers)
    configure(ws, s.port)
    s.health["active"]["version"] = "v1"
    s.health["registry"]["active"] = "v1"
    prober = PortProber(ws, timeout=TIMEOUT)
    (view,) = prober.poll()
    assert (view.run_id, view.dataset_path, view.dataset_sha256) == ("r1", "/data/seq.npz", "cd" * 32)
    assert view.val_metric == ("val/cosine", 0.56)  # r1 has no run.json: the first val/ metric
    s.health["active"]["version"] = "v2"
    s.health["registry"]["active"] = "v2"
    (view,) = prober.poll()
    assert view.active == "v2" and view.dataset_path is None  # not in the registry (yet)
    deploy("v2", "r2")  # rewrites registry/changed: the cache is dropped
    (view,) = prober.poll()
    assert view.run_id == "r2" and view.val_metric == ("val/mse", 0.1)  # r2's own primary metric


def _walk(obj: Any) -> Iterator[Any]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _walk(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _walk(v)
    else:
        yield obj


# ---------------------------------------------------------------------- the real port server
@pytest.mark.slow
def test_the_real_passthrough_server_and_a_sigstop(ws: Workspace) -> None:
    from tests.engines.serving.served import Served

    with Served(ws, model=None, dim=4) as srv:
        configure(ws, srv.port)
        prober = PortProber(ws, timeout=HUNG_TIMEOUT)
        (first,) = prober.poll()
        assert first.state == "up" and first.kind == "passthrough" and first.model is None
        for _ in range(20):
            assert srv.post({"context": [[0.1, 0.2, 0.3, 0.4]]})[0] == 200
        (second,) = prober.poll()
        assert second.state == "up" and second.rps and second.rps > 0 and second.p50_ms is not None
        assert second.error_rate == 0.0 and second.rss_bytes and second.rss_bytes > 1 << 20
        assert second.pid == srv.proc.pid and second.configured
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            views, took = timed_poll(prober)
            assert views[srv.port].state == "hung" and took < HUNG_TIMEOUT + 0.5
            views, took = timed_poll(prober)
            assert views[srv.port].state == "hung" and took < HUNG_TIMEOUT / 2
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 5
        while prober.poll()[0].state != "up":
            assert time.monotonic() < deadline, "did not come back after SIGCONT"
            time.sleep(0.1)
