"""The one load generator of the capture benchmarks, and the server children it drives.

C workers, each one keep-alive connection and its own session id, post pre-built NDJSON
bodies (1 or 60 schema-v2 frames of ~3 KB, made with numpy like san.generate, each float32
written in full as a device's JSON encoder writes a Float) back to back for a warm-up and then a
fixed window. A request counts in the window when its response arrives inside it. Any
non-200, a connection error, or an `accepted` count that is not the body's frame count is an
error. `acked` holds, per session, every frame a 200 acknowledged (warm-up included), which
the benchmark compares with the session files.

Two clients: `raw` (default) writes pre-built HTTP/1.1 requests on asyncio streams and
parses only the status line, Content-Length and the JSON body; `aiohttp` uses
aiohttp.ClientSession. On 2 cores the client shares the CPU with the server, so its own cost
lowers both servers' figures; the raw one costs less per request (see capture_ingest.py).

    python benchmarks/_capture_load.py --port P [--frames 60] [--concurrency 4]
        [--seconds 5] [--warmup 1] [--client raw|aiohttp] [--prefix load]
prints one JSON line (LoadResult) at the end, or soon after a SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from aiohttp import ClientError

from trainledger.engines.capture.schema import DIMS, SCHEMA_VERSION, check_line

HERE = Path(__file__).resolve().parent
PATH = "/san-frame"


# ---------------------------------------------------------------------- frames and bodies
def _f32(values: np.ndarray) -> list[float]:
    """Float32 values as a device prints them: the shortest text that round-trips a float32."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32)]


def make_frames(n: int, seed: int = 0) -> list[bytes]:
    """`n` valid schema-v2 frames, one JSON line each (no newline), ~3 KB apiece."""
    rng = np.random.default_rng(seed)
    latent = 8
    to_input = rng.standard_normal((DIMS, latent)) / math.sqrt(latent)
    to_out = {k: rng.standard_normal((w, latent)) for k, w in
              (("camera_scores", 7), ("phrase", 4), ("gesture_probs", 8), ("scalars", 3))}  # fmt: skip
    z = rng.standard_normal(latent)
    out = []
    for t in range(n):
        z = 0.97 * z + 0.25 * rng.standard_normal(latent)
        x = np.tanh(to_input @ z + 0.05 * rng.standard_normal(DIMS))
        sig = {k: 1.0 / (1.0 + np.exp(-(m @ z))) for k, m in to_out.items()}
        g = np.exp(to_out["gesture_probs"] @ z)
        g /= g.sum()
        frame = {
            "schema_version": SCHEMA_VERSION, "dims": DIMS, "ts": t / 60.0, "frame": t,
            "bar": t // 120, "track_name": "bench", "track_time": t / 60.0, "input": _f32(x),
            "audio_kick": _f32(x[0:5]), "audio_hihat": _f32(x[5:10]),
            "audio_bass": _f32(x[10:15]), "audio_pad": _f32(x[15:20]),
            "camera_scores": _f32(sig["camera_scores"]), "cut_timing": float(sig["scalars"][0]),
            "pattern_intensity": float(sig["scalars"][1]), "pattern_variation": float(sig["scalars"][2]),
            "phrase": _f32(sig["phrase"]), "gesture_probs": _f32(g), "phase": (t % 240) / 240.0,
            "regime": int(g.argmax()), "calibration_confidence": 1.0,
            "latency_us": float(rng.lognormal(math.log(400.0), 0.35)),
        }  # fmt: skip
        line = orjson.dumps(frame)
        if (why := check_line(line)) is not None:
            raise AssertionError(f"generated frame is invalid: {why}")
        out.append(line)
    return out


def make_bodies(frames: list[bytes], per_body: int, count: int = 8) -> list[bytes]:
    """`count` NDJSON bodies of `per_body` frames each, rotating through `frames`."""
    bodies = []
    for b in range(count):
        lines = [frames[(b * per_body + i) % len(frames)] for i in range(per_body)]
        bodies.append(b"\n".join(lines) + b"\n")
    return bodies


def headers(session: str) -> dict[str, str]:
    return {"Content-Type": "application/x-ndjson", "X-MotionMix-SAN-Session": session,
            "X-MotionMix-SAN-Schema": str(SCHEMA_VERSION), "X-MotionMix-SAN-Dims": str(DIMS)}  # fmt: skip


# ---------------------------------------------------------------------- the load
@dataclass
class LoadResult:
    frames_per_body: int
    concurrency: int
    client: str
    seconds: float  # the measured window
    requests: int = 0  # answered inside the window
    frames: int = 0
    body_bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # anywhere, warm-up included
    error_samples: list[str] = field(default_factory=list)
    # session -> frames acknowledged, all phases
    acked: dict[str, int] = field(default_factory=dict)
    # time.monotonic() of the window's start and end
    window: tuple[float, float] = (0.0, 0.0)
    client_cpu: float = (
        0.0  # this process's CPU seconds per wall second over the whole load
    )

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")

    @property
    def mb_per_s(self) -> float:
        return self.body_bytes / self.seconds / 1e6 if self.seconds else float("nan")

    def lat(self, q: float) -> float:
        return (
            float(np.percentile(self.latencies_ms, q))
            if self.latencies_ms
            else float("nan")
        )

    def summary(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("latencies_ms")
        return {**d, "frames_per_s": self.frames_per_s, "mb_per_s": self.mb_per_s,
                "p50_ms": self.lat(50), "p99_ms": self.lat(99)}  # fmt: skip


class _Run:
    def __init__(self, res: LoadResult, start: float, end: float) -> None:
        self.res, self.start, self.end = res, start, end

    def done(
        self,
        session: str,
        t0: float,
        t1: float,
        status: int,
        body: bytes,
        sent: int,
        n: int,
    ) -> None:
        res = self.res
        accepted = -1
        if status == 200:
            try:
                accepted = int(orjson.loads(body)["accepted"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                pass
            if accepted > 0:
                res.acked[session] = res.acked.get(session, 0) + accepted
        if status != 200 or accepted != n:
            self.error(f"{status} accepted={accepted}/{n}: {body[:200]!r}")
            return
        if self.start <= t1 <= self.end:
            res.requests += 1
            res.frames += n
            res.body_bytes += sent
            res.latencies_ms.append((t1 - t0) * 1000)

    def error(self, what: str) -> None:
        self.res.errors += 1
        if len(self.res.error_samples) < 5:
            self.res.error_samples.append(what)


async def _raw_worker(
    run: _Run, host: str, port: int, session: str, bodies: list[bytes], n: int
) -> None:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers(session).items())
    reqs = [(f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}Content-Length: {len(b)}\r\n\r\n"
             .encode() + b, len(b)) for b in bodies]  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    k = 0
    try:
        while time.monotonic() < run.end:
            req, sent = reqs[k % len(reqs)]
            k += 1
            t0 = time.monotonic()
            writer.write(req)
            status_head = await reader.readuntil(b"\r\n\r\n")
            lines = status_head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            hdrs = {
                a.strip().lower(): b.strip()
                for a, _, b in (h.partition(b":") for h in lines[1:] if h)
            }
            if b"content-length" in hdrs:
                body = await reader.readexactly(int(hdrs[b"content-length"]))
            else:  # chunked
                body = b""
                while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                    body += (await reader.readexactly(size + 2))[:-2]
                await reader.readuntil(b"\r\n")
            run.done(session, t0, time.monotonic(), status, body, sent, n)
            if hdrs.get(b"connection", b"").lower() == b"close":
                run.error("server closed the keep-alive connection")
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def _aiohttp_worker(
    run: _Run, host: str, port: int, session: str, bodies: list[bytes], n: int
) -> None:
    import aiohttp

    url = f"http://{host}:{port}{PATH}"
    hdrs = headers(session)
    k = 0
    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(
        connector=conn, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        while time.monotonic() < run.end:
            body = bodies[k % len(bodies)]
            k += 1
            t0 = time.monotonic()
            async with http.post(url, data=body, headers=hdrs) as resp:
                got = await resp.read()
                run.done(session, t0, time.monotonic(), resp.status, got, len(body), n)


async def load(host: str, port: int, bodies: list[bytes], frames_per_body: int, concurrency: int,
               seconds: float, warmup: float, client: str = "raw", prefix: str = "load",
               until_sigterm: bool = False) -> LoadResult:  # fmt: skip
    """Drive the server flat out for warmup + seconds; the figures cover the last `seconds`.
    With `until_sigterm`, SIGTERM ends the window early (`seconds` then says how long it was)."""
    res = LoadResult(frames_per_body, concurrency, client, seconds)
    cpu0, wall0 = time.process_time(), time.monotonic()
    start = time.monotonic() + warmup
    run = _Run(res, start, start + seconds)
    res.window = (run.start, run.end)
    worker = _raw_worker if client == "raw" else _aiohttp_worker
    sessions = [f"{prefix}-c{i}" for i in range(concurrency)]

    async def guarded(session: str) -> None:
        try:
            await worker(run, host, port, session, bodies, frames_per_body)
        except (OSError, asyncio.IncompleteReadError, ValueError, ClientError) as exc:
            run.error(f"{session}: {type(exc).__name__}: {exc}")

    def end_now() -> None:
        run.end = max(run.start, min(run.end, time.monotonic()))

    if until_sigterm:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, end_now)
    await asyncio.gather(*(guarded(s) for s in sessions))
    res.seconds, res.window = run.end - run.start, (run.start, run.end)
    res.client_cpu = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-9)
    return res


# ---------------------------------------------------------------------- server children
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before it was ready")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/health", timeout=1
            ) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"server on :{port} not ready after {timeout} s")


def server_cmd(
    kind: str, port: int, workspace: Path | None, fsync: str = "batch"
) -> list[str]:
    """`bare`, `append` (parse and append, no validation), `stub` (the bare server
    validating and storing frames) or `trainledger`."""
    if kind == "bare":
        return [sys.executable, str(HERE / "_bare_ingest.py"), str(port)]
    if kind == "append":
        return [sys.executable, str(HERE / "_append_ingest.py"), str(port), str(workspace)]
    if kind == "stub":
        return [
            sys.executable,
            str(HERE / "_bare_ingest.py"),
            str(port),
            "--store",
            str(workspace),
        ]
    return [sys.executable, "-m", "trainledger.engines.capture", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--workspace", str(workspace), "--fsync", fsync]  # fmt: skip


def start_server(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_health(port, proc)
    except RuntimeError:
        stop_server(proc)
        raise RuntimeError(
            f"{' '.join(cmd)}: not ready; its log:\n{log.read_text()[-2000:]}"
        ) from None
    return proc


def stop_server(proc: subprocess.Popen, timeout: float = 15) -> bool:
    """SIGTERM and wait; SIGKILL after `timeout`. True when it stopped on SIGTERM."""
    if proc.poll() is not None:
        return proc.returncode == 0
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            n += chunk.count(b"\n")
    return n


def check_sessions(folder: Path, acked: dict[str, int]) -> list[str]:
    """Problems with the session files against the acknowledged counts (none: [])."""
    problems = []
    for session, n in sorted(acked.items()):
        path = folder / f"{session}.jsonl"
        if not path.exists():
            problems.append(f"{session}: {n} frames acknowledged, no file")
            continue
        have = count_lines(path)
        if have != n:
            problems.append(
                f"{session}: {n} frames acknowledged, {have} lines in {path.name}"
            )
        with open(path, "rb") as fh:
            first = fh.readline().rstrip(b"\n")
            fh.seek(max(0, path.stat().st_size - 8192))
            last = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        for where, line in (("first", first), ("last", last)):
            if (why := check_line(line)) is not None:
                problems.append(f"{session}: {where} line is not a frame: {why}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument(
        "--frames", type=int, default=60, help="frames per body (default 60)"
    )
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
    ap.add_argument("--prefix", default=f"load{os.getpid()}")
    a = ap.parse_args()
    bodies = make_bodies(make_frames(240), a.frames)
    res = asyncio.run(load(a.host, a.port, bodies, a.frames, a.concurrency, a.seconds, a.warmup,
                           a.client, a.prefix, until_sigterm=True))  # fmt: skip
    print(json.dumps(res.summary()))


if __name__ == "__main__":
    main()
