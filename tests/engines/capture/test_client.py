"""The capture client against real HTTP servers on 127.0.0.1: the project's ingest app when it
is importable and a small contract server written here, so the client is held to the
contract (headers, 200/422 bodies, 4xx errors) whichever of the two it meets."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from trainledger.engines.capture.client import (
    SendError,
    endpoint,
    send_files,
    send_lines,
    session_for,
)
from trainledger.engines.capture.schema import check_line
from trainledger.engines.capture.synth import FrameSynth
from trainledger.engines.workspace import Workspace

TOKEN = "s3cret-token"


def append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(data)


def contract_app(ws: Workspace, token: str | None) -> web.Application:
    """The server contract in a few lines: headers checked, lines validated, good ones appended."""

    async def san_frame(request: web.Request) -> web.Response:
        if token and request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response(
                {"error": "authorization: missing or wrong"}, status=401
            )
        if request.content_type != "application/x-ndjson":
            return web.json_response({"error": "content-type"}, status=415)
        session = request.headers.get("X-MotionMix-SAN-Session", "")
        if (
            request.headers.get("X-MotionMix-SAN-Schema") != "2"
            or request.headers.get("X-MotionMix-SAN-Dims") != "128"
        ):
            return web.json_response({"error": "schema/dims headers"}, status=400)
        good, rejected = [], []
        for k, line in enumerate((await request.read()).splitlines(), 1):
            reason = check_line(line)
            if reason is None:
                good.append(line)
            else:
                rejected.append({"line": k, "reason": reason})
        if good:
            append(ws.captures_dir / f"{session}.jsonl", b"\n".join(good) + b"\n")
        body = {"session": session, "accepted": len(good), "rejected": rejected}
        return web.json_response(body, status=200 if good else 422)

    app = web.Application()
    app.router.add_post("/san-frame", san_frame)
    return app


def real_app(ws: Workspace, token: str | None) -> web.Application:
    from trainledger.engines.capture.server import make_app

    return make_app(ws, token=token, fsync="off")


def _real_available() -> bool:
    try:
        from trainledger.engines.capture.server import make_app  # noqa: F401
    except ImportError:
        return False
    return True


APPS = [pytest.param(contract_app, id="contract")]
if _real_available():
    APPS.append(pytest.param(real_app, id="real"))


class ThreadServer:
    """An aiohttp app served from a thread of this process on an ephemeral port."""

    def __init__(self, app: web.Application) -> None:
        self.peers: list[Any] = []
        self.requests = 0

        async def note(request: web.Request, response: web.StreamResponse) -> None:
            self.requests += 1
            self.peers.append(
                request.transport.get_extra_info("peername")
                if request.transport
                else None
            )

        app.on_response_prepare.append(note)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.runner = web.AppRunner(app)
        self._call(self.runner.setup())
        self._call(web.SockSite(self.runner, self.sock).start())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(params=APPS)
def server(request: pytest.FixtureRequest, ws: Workspace) -> Iterator[ThreadServer]:
    srv = ThreadServer(request.param(ws, None))
    yield srv
    srv.close()


@pytest.fixture(params=APPS)
def token_server(
    request: pytest.FixtureRequest, ws: Workspace
) -> Iterator[ThreadServer]:
    srv = ThreadServer(request.param(ws, TOKEN))
    yield srv
    srv.close()


def frames(n: int, seed: int = 0) -> list[bytes]:
    synth = FrameSynth(seed)
    return [synth.frame_line(i / 30, i) for i in range(n)]


def stored(ws: Workspace, session: str) -> list[dict[str, Any]]:
    path = ws.captures_dir / f"{session}.jsonl"
    return (
        [json.loads(line) for line in path.read_bytes().splitlines()]
        if path.exists()
        else []
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_batches_go_over_one_keep_alive_connection(
    server: ThreadServer, ws: Workspace
) -> None:
    seen: list[tuple[int, dict[str, Any]]] = []
    res = send_lines(
        server.url,
        "sess-1",
        frames(10),
        batch=4,
        on_response=lambda s, b: seen.append((s, b)),
    )
    assert (res.requests, res.frames_sent, res.accepted, res.rejected) == (3, 10, 10, 0)
    assert (
        res.statuses == {200: 3} and res.first_error is None and not res.request_failed
    )
    assert [b["accepted"] for _, b in seen] == [4, 4, 2]
    assert len(set(server.peers)) == 1, server.peers
    assert [f["frame"] for f in stored(ws, "sess-1")] == list(range(10))


def test_rejected_lines_are_counted_by_reason(
    server: ThreadServer, ws: Workspace
) -> None:
    synth = FrameSynth(1)
    good = [synth.frame_line(i / 30, i) for i in range(3)]
    lines = [
        good[0],
        synth.bad_frame("short_input"),
        good[1],
        synth.bad_frame("missing_field"),
        good[2],
    ]
    res = send_lines(server.url, "mixed", lines, batch=5)
    assert (res.accepted, res.rejected) == (3, 2)
    assert (
        res.reasons["input: expected 128 numbers"] == 1
        and res.reasons["latency_us: missing"] == 1
    )
    only_bad = send_lines(server.url, "mixed", [synth.bad_frame("truncated")])
    assert (
        only_bad.statuses == {422: 1}
        and only_bad.rejected == 1
        and not only_bad.request_failed
    )
    assert len(stored(ws, "mixed")) == 3


def test_rate_paces_frames_to_a_schedule(server: ThreadServer) -> None:
    res = send_lines(server.url, "paced", frames(50), rate_hz=50)
    assert res.accepted == 50
    assert 0.85 < res.elapsed_s < 1.5, (
        res.elapsed_s
    )  # 50 frames at 50 Hz: the last leaves at 0.98 s
    batched = send_lines(server.url, "paced", frames(50), rate_hz=100, batch=10)
    assert batched.requests == 5 and 0.35 < batched.elapsed_s < 0.9, batched.elapsed_s


def test_unpaced_send_is_fast(server: ThreadServer) -> None:
    res = send_lines(server.url, "fast", frames(200), batch=20)
    assert res.accepted == 200 and res.frames_per_s > 500


def test_a_4xx_is_recorded_not_retried_and_ends_the_send(
    token_server: ThreadServer, ws: Workspace
) -> None:
    res = send_lines(token_server.url, "locked", frames(5))
    assert res.statuses == {401: 1} and res.requests == 1 and token_server.requests == 1
    assert res.request_failed and res.refused == 1 and res.accepted == 0
    assert res.first_error is not None and res.first_error.startswith("HTTP 401")
    ok = send_lines(token_server.url, "locked", frames(5), token=TOKEN)
    assert ok.accepted == 5 and len(stored(ws, "locked")) == 5


def test_connection_refused_names_the_url_and_the_fix() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SendError) as err:
        send_lines(url, "nobody", frames(1))
    assert url in str(err.value) and "trainledger capture serve" in str(err.value)


def test_a_dropped_keep_alive_connection_is_reopened_once() -> None:
    """A server that answers one request per connection, then hangs up without saying so."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    served: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(
                    next(
                        h.split(b":")[1]
                        for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length")
                    )
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                served.append(length)
                body = json.dumps(
                    {"session": "s", "accepted": 1, "rejected": []}
                ).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        res = send_lines(
            f"http://127.0.0.1:{lsock.getsockname()[1]}/san-frame", "s", frames(3)
        )
    finally:
        lsock.close()
    assert (res.requests, res.accepted) == (3, 3) and len(served) == 3


def test_url_forms() -> None:
    assert endpoint("http://10.0.0.2:9471") == ("http", "10.0.0.2", 9471, "/san-frame")
    assert endpoint("http://10.0.0.2:9471/") == ("http", "10.0.0.2", 9471, "/san-frame")
    assert endpoint("http://h:1/san-frame") == ("http", "h", 1, "/san-frame")
    assert endpoint("127.0.0.1:9471") == ("http", "127.0.0.1", 9471, "/san-frame")
    for bad in ("ftp://h/x", "http://", "http://h:notaport"):
        with pytest.raises(SendError):
            endpoint(bad)


def test_send_files_uses_each_stem_as_session(
    server: ThreadServer, ws: Workspace, tmp_path: Path
) -> None:
    a, b = tmp_path / "take-01.jsonl", tmp_path / "take-02.jsonl"
    a.write_bytes(b"\n".join(frames(4)) + b"\n")
    b.write_bytes(
        b"\n".join(frames(6, seed=2)) + b"\n\n"
    )  # a trailing blank line is not a frame
    results = send_files([a, b], server.url, batch=3)
    assert [(r.session, r.result.accepted) for r in results] == [
        ("take-01", 4),
        ("take-02", 6),
    ]
    assert len(stored(ws, "take-01")) == 4 and len(stored(ws, "take-02")) == 6
    (only,) = send_files([a], server.url, session="renamed")
    assert only.session == "renamed" and len(stored(ws, "renamed")) == 4


def test_a_bad_stem_is_refused_before_anything_is_sent(
    server: ThreadServer, tmp_path: Path
) -> None:
    good, bad = tmp_path / "fine.jsonl", tmp_path / "two words.jsonl"
    for p in (good, bad):
        p.write_bytes(b"\n".join(frames(2)) + b"\n")
    with pytest.raises(SendError, match="two words"):
        send_files([good, bad], server.url)
    with pytest.raises(SendError, match="no such file"):
        send_files([good, tmp_path / "missing.jsonl"], server.url)
    with pytest.raises(SendError, match="session id"):
        send_lines(server.url, "../escape", frames(1))
    assert server.requests == 0
    assert session_for(Path("x/abc.jsonl")) == "abc"


def run_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainledger.engines.capture", *args],
                          check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})  # fmt: skip


def test_send_exit_codes(
    token_server: ThreadServer, ws: Workspace, tmp_path: Path
) -> None:
    synth = FrameSynth(3)
    good, mixed = tmp_path / "good.jsonl", tmp_path / "mixed.jsonl"
    good.write_bytes(b"\n".join(frames(5)) + b"\n")
    mixed.write_bytes(b"\n".join([*frames(3), synth.bad_frame("nan")]) + b"\n")
    url = token_server.url

    ok = run_cli(
        "send",
        str(good),
        "--url",
        url,
        "--batch",
        "2",
        env={"TRAINLEDGER_CAPTURE_TOKEN": TOKEN},
    )
    assert ok.returncode == 0, ok.stderr
    assert "5 accepted, 0 rejected" in ok.stdout and "frames/s" in ok.stdout

    some = run_cli("send", str(mixed), "--url", url, "--token", TOKEN)
    assert (
        some.returncode == 1
        and "3 accepted, 1 rejected" in some.stdout
        and "json:" in some.stdout
    )

    unauthorised = run_cli("send", str(good), "--url", url)
    assert unauthorised.returncode == 2 and "HTTP 401" in unauthorised.stderr

    refused = run_cli("send", str(good), "--url", f"http://127.0.0.1:{free_port()}")
    assert refused.returncode == 2 and "trainledger capture serve" in refused.stderr
    assert len(stored(ws, "good")) == 5 and len(stored(ws, "mixed")) == 3


def test_stream_sends_synthetic_frames_with_rejects(
    server: ThreadServer, ws: Workspace
) -> None:
    res = run_cli("stream", "--url", server.url, "--session", "live", "--rate", "200", "--seconds", "0.5",
                  "--bad-every", "10", "--batch", "5")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "100 sent, 90 accepted, 10 rejected" in res.stdout
    assert [f["frame"] for f in stored(ws, "live")] == [
        i for i in range(100) if i % 10 != 9
    ]


def test_run_send_ignores_other_commands_and_main_reports_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from trainledger.engines.capture.cli_send import main, run_send

    assert run_send(argparse.Namespace(command="serve")) is None
    assert (
        main(
            [
                "send",
                str(tmp_path / "nope.jsonl"),
                "--url",
                f"http://127.0.0.1:{free_port()}",
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err
