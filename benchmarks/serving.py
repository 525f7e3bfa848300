"""One port server against a bare aiohttp server calling the same model (issue 12's figure).

Both run as child processes on 127.0.0.1 and are driven by the same load generator in this
process (C keep-alive connections writing pre-built HTTP/1.1 requests on asyncio streams, the
same `{"context": 5 x 64 floats}` body, a warm-up then a fixed window):
  * bare: benchmarks/_bare_serve.py, decode + model + encode, nothing else (the reference);
  * trainledger: `trainledger serve` of the registry's active version of the same weights
    (validation, the split, metrics, the analysis loop and the registry follower included).
The model is a one-epoch lvm-amn run on the demo data (the seed note's AMN shape, 64-d).
Rounds alternate the order; the figure is the median of the per-round ratios trainledger/bare
(goal >= 0.8x). Beside it: /predict p50/p99 as the client saw it, and the model call alone
(the same body decoded and pushed through the same model in this process), so the server's
overhead reads in microseconds, as Triton's perf_analyzer reports it.

Both servers get the same torch thread count (`--threads`, default 1, `serve`'s default).

Run: python benchmarks/serving.py [--rounds 6] [--seconds 3] [--concurrency 4] [--threads 1]
Exits 1 when the goal is missed or any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _bench import DATA, median, pct, verdict

HERE = Path(__file__).resolve().parent
SCRATCH = DATA / "serve-scratch"
ARCH, CTX, DIM = "amn", 5, 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare() -> tuple[Path, Path]:
    """A workspace with one trained lvm-amn version active; (workspace, its weights blob)."""
    from trainledger.engines.registry import blobs
    from trainledger.engines.registry.source import candidate_from_run
    from trainledger.engines.registry.store import Registry
    from trainledger.engines.training.loop import StopFlag, Trainer
    from trainledger.engines.training.loop_parts import LoopConfig
    from trainledger.engines.training.models import TaskOptions, load_builder
    from trainledger.engines.workspace import init_workspace

    shutil.rmtree(SCRATCH, ignore_errors=True)
    ws = init_workspace(SCRATCH / "ws")
    task = load_builder(f"lvm-{ARCH}")(TaskOptions(ws, seed=0))
    Trainer(task, LoopConfig(epochs=1, batch_size=128, lr=3e-3, log_every=5, patience=0), ws, run_id="amn",
            stop=StopFlag()).run()  # fmt: skip
    with Registry(ws) as reg:
        reg.deploy("amn", candidate_from_run(ws, "amn"))
        reg.promote("amn", "v1")
        sha = reg.version("amn", "v1").artifacts[0].sha256
    return ws.root, blobs.blob_path(ws.registry_dir, sha)


def body_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return json.dumps({"context": rng.standard_normal((CTX, DIM)).round(6).tolist()}).encode()


def start(cmd: list[str], port: int, threads: int | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if threads is not None:  # the same torch thread count for both servers
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{cmd[:3]} exited {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
            if _post_once(port) == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd[:3]} did not come up")


def _post_once(port: int) -> int:
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("POST", "/predict", body=body_bytes(), headers={"Content-Type": "application/json"})
        return c.getresponse().status
    finally:
        c.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def drive(port: int, concurrency: int, seconds: float, warmup: float) -> dict[str, float]:
    bodies = [body_bytes(i) for i in range(8)]
    reqs = [(f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]  # fmt: skip
    start_at = time.monotonic() + warmup
    end_at = start_at + seconds
    lat: list[float] = []
    counts = {"ok": 0, "errors": 0}
    cpu0, wall0 = time.process_time(), time.monotonic()

    async def worker(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        k = i
        try:
            while time.monotonic() < end_at:
                t0 = time.monotonic()
                writer.write(reqs[k % len(reqs)])
                k += 1
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                t1 = time.monotonic()
                if status != 200:
                    counts["errors"] += 1
                elif start_at <= t1 <= end_at:
                    counts["ok"] += 1
                    lat.append((t1 - t0) * 1e6)
        finally:
            writer.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"rps": counts["ok"] / seconds, "errors": counts["errors"], "p50_us": pct(lat, 50),
            "p99_us": pct(lat, 99), "client_cpu": (time.process_time() - cpu0) / (time.monotonic() - wall0)}


def model_call_us(weights: Path, threads: int, n: int = 3000) -> tuple[float, float]:
    """The same body decoded, made a tensor, pushed through the same model and encoded, in process."""
    import msgspec
    import torch
    from safetensors.torch import load as load_safetensors

    from trainledger.engines.training.lvm import ARCHITECTURES

    torch.set_num_threads(threads)
    model = ARCHITECTURES[ARCH](DIM)
    model.load_state_dict(load_safetensors(weights.read_bytes()), strict=True)
    model.eval()
    body = body_bytes()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        ctx = msgspec.json.decode(body)["context"]
        with torch.inference_mode():
            out = model(torch.tensor([ctx], dtype=torch.float32))[0]
        msgspec.json.encode({"vector": out.tolist()})
        times.append((time.perf_counter() - t0) * 1e6)
    return pct(times[200:], 50), pct(times[200:], 99)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in both servers (serve's default: 1)")
    args = ap.parse_args()
    ws, weights = prepare()
    print(f"# serving benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}; {args.rounds} rounds x {args.seconds:g} s, C={args.concurrency}, "
          f"{args.threads} torch thread(s) in each server")
    servers = {
        "bare": lambda port: [sys.executable, str(HERE / "_bare_serve.py"), str(weights), ARCH, str(DIM), str(port)],
        "trainledger": lambda port: [sys.executable, "-m", "trainledger.engines.serving", "serve", "--workspace",
                                     str(ws), "--model", "amn", "--port", str(port), "--threads", str(args.threads)],
    }
    results: dict[str, list[dict[str, float]]] = {k: [] for k in servers}
    ratios = []
    for r in range(args.rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(servers))
        got = {}
        for name in order:
            port = free_port()
            proc = start(servers[name](port), port, args.threads)
            try:
                got[name] = asyncio.run(drive(port, args.concurrency, args.seconds, args.warmup))
            finally:
                stop(proc)
            results[name].append(got[name])
        ratios.append(got["trainledger"]["rps"] / got["bare"]["rps"])
        print(f"round {r + 1}: bare {got['bare']['rps']:,.0f}/s, trainledger {got['trainledger']['rps']:,.0f}/s, "
              f"ratio {ratios[-1]:.2f}x (client CPU {got['trainledger']['client_cpu']:.0%})")
    single: dict[str, list[dict[str, float]]] = {k: [] for k in servers}  # C=1: latency without queueing
    for r in range(2):
        for name in (list(servers) if r % 2 == 0 else list(reversed(servers))):
            port = free_port()
            proc = start(servers[name](port), port, args.threads)
            try:
                single[name].append(asyncio.run(drive(port, 1, args.seconds, args.warmup)))
            finally:
                stop(proc)
    alone50, alone99 = model_call_us(weights, args.threads)
    errors = sum(x["errors"] for xs in results.values() for x in xs)
    for name, xs in results.items():
        rps, p50s, p99s = (median([x[k] for x in xs]) for k in ("rps", "p50_us", "p99_us"))
        print(f"{name:12s} {rps:9,.0f} req/s   p50 {p50s:7.0f} us   p99 {p99s:7.0f} us")
    print(f"{'model alone':12s} {'':>15s}   p50 {alone50:7.0f} us   p99 {alone99:7.0f} us  (decode+model+encode)")
    for name, xs in single.items():
        p50s, p99s = (median([x[k] for x in xs]) for k in ("p50_us", "p99_us"))
        print(f"{name + ' C=1':16s} {'':>11s}   p50 {p50s:7.0f} us   p99 {p99s:7.0f} us  (one request at a time)")
    t50 = median([x["p50_us"] for x in single["trainledger"]])
    b50 = median([x["p50_us"] for x in single["bare"]])
    print(f"overhead at p50, C=1: trainledger - model alone {t50 - alone50:,.0f} us "
          f"(HTTP, validation, routing, metrics), trainledger - bare {t50 - b50:,.0f} us")
    errors += sum(x["errors"] for xs in single.values() for x in xs)
    m = median(ratios)
    ok = m >= 0.8 and errors == 0
    print(f"requests/s ratio trainledger/bare: median {m:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}); "
          f"goal >= 0.8x: {verdict(m >= 0.8)}; failed requests: {errors}")
    shutil.rmtree(SCRATCH, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
