"""Capture test helpers: schema-v2 frames built by hand, a real server on an ephemeral port
in a background thread, and a raw HTTP/1.1 client for requests no library would send."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainledger.engines.capture.server import serve
from trainledger.engines.workspace import Workspace, init_workspace

HEADERS = {
    "Content-Type": "application/x-ndjson",
    "X-MotionMix-SAN-Session": "sess-1",
    "X-MotionMix-SAN-Schema": "2",
    "X-MotionMix-SAN-Dims": "128",
}


def frame(i: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid schema-v2 frame whose `frame` field is `i`; `changes` override fields."""
    obj: dict[str, Any] = {
        "schema_version": 2,
        "dims": 128,
        "ts": 1700000000.0 + i / 30,
        "frame": i,
        "bar": i // 96,
        "track_name": "demo track",
        "track_time": i / 30,
        "input": [((i + k) % 17) / 17 for k in range(128)],
        "audio_kick": [0.1] * 5,
        "audio_hihat": [0.2] * 5,
        "audio_bass": [0.3] * 5,
        "audio_pad": [0.4] * 5,
        "camera_scores": [1 / 7] * 7,
        "cut_timing": 0.5,
        "pattern_intensity": 0.25,
        "pattern_variation": 0.75,
        "phrase": [1.0, 0.0, 0.0, 0.0],
        "gesture_probs": [0.125] * 8,
        "phase": 0.1,
        "regime": 1,
        "calibration_confidence": 0.9,
        "latency_us": 1500.0 + i,
    }
    obj.update(changes)
    return obj


def line(i: int = 0, **changes: Any) -> bytes:
    return json.dumps(frame(i, **changes), separators=(",", ":")).encode()


def body(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


@dataclass
class Running:
    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    stop_event: asyncio.Event
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
            self.thread.join(10)


def start_in_thread(ws: Workspace, host: str = "127.0.0.1", **kwargs: Any) -> Running:
    """Run `serve` on an ephemeral port in a thread; returns once it listens."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        async def run() -> None:
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = asyncio.Event()

            def on_ready(h: str, p: int) -> None:
                box["port"] = p
                ready.set()

            await serve(
                host, 0, ws, kwargs.pop("token", None), kwargs.pop("fsync", "batch"),
                on_ready, stop=box["stop"], write_state=False, **kwargs,
            )  # fmt: skip

        try:
            asyncio.run(run())
        except Exception as exc:  # noqa: BLE001 - surfaced by the waiting test
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    if "error" in box:
        raise box["error"]
    return Running(host, box["port"], box["loop"], box["stop"], thread)


@pytest.fixture
def server(ws: Workspace) -> Iterator[Running]:
    running = start_in_thread(ws)
    yield running
    running.stop()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw(port: int, data: bytes, timeout: float = 5.0, host: str = "127.0.0.1") -> Reply:
    """Send raw bytes, read one HTTP response (Content-Length framed, or to close)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "-1"))
        while length < 0 or len(rest) < length:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            rest += chunk
        return Reply(status, headers, rest[:length] if length >= 0 else rest)


def request(
    port: int,
    payload: bytes,
    headers: dict[str, str | None] | None = None,
    method: str = "POST",
    path: str = "/san-frame",
    extra: bytes = b"",
) -> Reply:
    """A request with the standard headers, `headers` overriding (None removes one)."""
    merged: dict[str, str | None] = dict(HEADERS)
    merged.update(headers or {})
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
    )
    for k, v in merged.items():
        if v is not None:
            head += k.encode() + b": " + v.encode("utf-8", "surrogateescape") + b"\r\n"
    if "Transfer-Encoding" not in merged:
        head += f"Content-Length: {len(payload)}\r\n".encode()
    return raw(port, head + extra + b"\r\n" + payload)


def files_under(root: Path) -> dict[str, int]:
    """Every file under `root` (relative path -> size), to prove what a request wrote."""
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file()
    }
