"""The prober's cost in the console process (issue 12): six ports polled at 1 Hz, against an idle loop.

Six small HTTP servers run in a child process (this script with --child: six
ThreadingHTTPServers answering /health with the contract's fields, 20 analysis windows
included, and /metrics from a real prometheus_client registry with two versions and ~20
requests/s observed into it, so each scrape has a histogram that moves). With --real the six
ports are real passthrough port servers instead (`python -m trainledger.engines.serving serve
--passthrough --dim 4`, six processes that record themselves), so each poll also reads six
records and checks their processes. The workspace's ports.toml lists the six ports.

This process alternates rounds of --seconds s:
  * prober: PortProber.poll() once a second (the next tick 1 s after the last one began);
  * idle: the same 1 Hz loop sleeping, doing nothing (the reference: what a 1 Hz timer costs).
Each round reads this process's CPU time (time.process_time: every thread, user + system)
over the round's wall time, as % of one core. The prober's cost is the per-round difference
prober - idle (the pair ran seconds apart, so passing load cancels out), reported as the
median and p25-p75 over the rounds, beside the gross figure. Every poll must see six ports up.
Goal: the prober's gross CPU under 2 % of one core.

Run: python benchmarks/prober_cpu.py [--rounds 6] [--seconds 10] [--real] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from _bench import DATA, median, pct, verdict

GOAL_PCT = 2.0
PORTS = 6


# ---------------------------------------------------------------------- the child: six servers
def _child(ports_json: str) -> None:
    import random
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    class Handler(BaseHTTPRequestHandler):
        server: Any

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            s = self.server
            if self.path == "/health":
                body, ctype = json.dumps(s.health()).encode(), "application/json"
            else:
                body, ctype = generate_latest(s.registry), "text/plain; version=0.0.4"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    servers = []
    started = time.time()
    for port in json.loads(ports_json):
        srv = Server(("127.0.0.1", port), Handler)
        reg = CollectorRegistry()
        srv.registry = reg
        srv.req = Counter("trainledger_requests", "r", ["version"], registry=reg)
        srv.err = Counter("trainledger_request_errors", "e", ["version"], registry=reg)
        srv.lat = Histogram("trainledger_request_duration_seconds", "l", ["version"], buckets=buckets, registry=reg)
        srv.inflight = Gauge("trainledger_requests_in_flight", "f", ["version"], registry=reg)
        Gauge("process_resident_memory_bytes", "rss", registry=reg).set(200 << 20)
        art = {"name": "model.safetensors", "sha256": "ab" * 32, "path": f"/tmp/bench/{port}/model.safetensors"}
        loaded = {"version": "v2", "sha256": "ab" * 32, "artifacts": [art], "parameters": 123456,
                  "loaded_at": started, "run_id": "r1", "kind": "lvm-amn"}  # fmt: skip
        windows = [{"start": started + 30 * k, "end": started + 30 * (k + 1), "requests": 600, "errors": 3,
                    "mean_latency_ms": 1.2, "memory_bytes": 200 << 20, "outcome": "pass", "reason": ""}
                   for k in range(20)]  # fmt: skip

        def health(port: int = port, loaded: dict = loaded, windows: list = windows) -> dict[str, Any]:
            return {"ok": True, "model": "amn", "kind": "lvm-amn", "port": port, "pid": os.getpid(),
                    "started_at": started, "uptime_s": time.time() - started, "input_shape": {"context": [5, 64]},
                    "active": loaded, "canary": {**loaded, "version": "v3", "traffic": 10},
                    "registry": {"active": "v2", "canary": "v3", "traffic": 10}, "refused": [],
                    "analysis": {"subject": "canary", "version": "v3", "window_s": 30.0, "bake_until": None,
                                 "windows": windows},
                    "canary_plan": None, "faults": {}, "rss_bytes": 200 << 20}  # fmt: skip

        srv.health = health
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    print("ready", flush=True)
    rng = random.Random(0)
    while True:  # ~20 requests/s a port, 10 % on the canary, 1 % errors
        time.sleep(0.05)
        for srv in servers:
            v = "v3" if rng.random() < 0.1 else "v2"
            srv.req.labels(v).inc()
            srv.lat.labels(v).observe(rng.lognormvariate(-7, 0.6))
            if rng.random() < 0.01:
                srv.err.labels(v).inc()


# ---------------------------------------------------------------------- this process
def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_servers(ws: Any, ports: list[int], real: bool) -> list[subprocess.Popen]:
    from trainledger.engines.serving.prober import probe_once

    if real:
        procs = [subprocess.Popen([sys.executable, "-m", "trainledger.engines.serving", "serve", "--workspace",
                                   str(ws.root), "--passthrough", "--dim", "4", "--port", str(p)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]  # fmt: skip
    else:
        procs = [subprocess.Popen([sys.executable, __file__, "--child", json.dumps(ports)], stdout=subprocess.PIPE,
                                  text=True)]  # fmt: skip
        assert procs[0].stdout is not None and procs[0].stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while sum(v.state == "up" for v in probe_once(ws, timeout=2.0)) < len(ports):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            stop(procs)
            raise SystemExit("the servers did not come up")
        time.sleep(0.2)
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def one_round(seconds: float, step: Any) -> tuple[float, list[float]]:
    """CPU % of one core over `seconds` of a 1 Hz loop calling `step`; and each step's wall ms."""
    took: list[float] = []
    cpu0, wall0 = time.process_time(), time.monotonic()
    tick = wall0
    while True:
        t = time.monotonic()
        step()
        took.append((time.monotonic() - t) * 1000)
        tick += 1.0
        if tick - wall0 >= seconds:
            break
        time.sleep(max(0.0, tick - time.monotonic()))
    time.sleep(max(0.0, tick - time.monotonic()))
    return 100.0 * (time.process_time() - cpu0) / (time.monotonic() - wall0), took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--real", action="store_true", help="six real passthrough port servers, not the stubs")
    ap.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return 0

    from trainledger.engines.serving.portsfile import PortSpec, write_ports
    from trainledger.engines.serving.prober import PortProber
    from trainledger.engines.workspace import init_workspace

    root = DATA / "prober-scratch"
    shutil.rmtree(root, ignore_errors=True)
    ws = init_workspace(root)
    ports = free_ports(PORTS)
    write_ports(ws, [PortSpec(port=p, passthrough=True, dim=4) if args.real else PortSpec(port=p, model="amn")
                     for p in ports])  # fmt: skip
    procs = start_servers(ws, ports, args.real)
    prober = PortProber(ws, timeout=0.5)
    bad: list[str] = []

    def probe() -> None:
        views = prober.poll()
        if sum(v.state == "up" for v in views) != PORTS:
            bad.append(",".join(f"{v.port}:{v.state}" for v in views))

    try:
        for _ in range(3):  # warm-up: imports, the first scrape, the registry read
            probe()
            time.sleep(0.2)
        gross, idle, diff, polls = [], [], [], []
        for r in range(args.rounds):
            order = [("prober", probe), ("idle", lambda: None)]
            if r % 2:
                order.reverse()
            got = {}
            for name, fn in order:
                got[name], took = one_round(args.seconds, fn)
                if name == "prober":
                    polls += took
            gross.append(got["prober"])
            idle.append(got["idle"])
            diff.append(got["prober"] - got["idle"])
            print(f"round {r + 1}: prober {got['prober']:.2f} %  idle {got['idle']:.2f} %", flush=True)
        rows = prober.poll()
    finally:
        stop(procs)
        shutil.rmtree(root, ignore_errors=True)
    ok = median(gross) < GOAL_PCT and not bad
    print(f"\nprober_cpu: {PORTS} ports ({'real passthrough servers' if args.real else 'stub servers'}) "
          f"at 1 Hz, {args.rounds} rounds x {args.seconds:g} s, {os.cpu_count()} CPUs {platform.machine()}, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"  prober, gross      {median(gross):5.2f} % of one core "
          f"(p25-p75 {pct(gross, 25):.2f}-{pct(gross, 75):.2f})")
    print(f"  idle 1 Hz loop     {median(idle):5.2f} %")
    print(f"  prober - idle      {median(diff):5.2f} % (p25-p75 {pct(diff, 25):.2f}-{pct(diff, 75):.2f})")
    print(f"  poll wall time     p50 {pct(polls, 50):.1f} ms, p95 {pct(polls, 95):.1f} ms, max {max(polls):.1f} ms")
    print(f"  rows: {', '.join(f'{v.port} {v.state} {v.rps:.0f} rps' if v.rps is not None else f'{v.port} {v.state}' for v in rows)}")  # noqa: E501
    if bad:
        print(f"  polls that did not see six ports up: {len(bad)} (first: {bad[0]})")
    print(f"  goal < {GOAL_PCT:g} % of one core: {verdict(ok)}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
