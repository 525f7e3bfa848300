"""The ingest server over real sockets: what lands on disk, per-line rejects, /stats, tokens,
and a stalled client that cannot hold up the others."""

from __future__ import annotations

import json
import socket
import time

import pytest

from trainledger.engines.capture import server as server_mod
from trainledger.engines.capture.server import is_loopback
from trainledger.engines.workspace import Workspace

from .conftest import Running, body, frame, line, request, start_in_thread


def test_single_frame_lands_byte_exactly(server: Running, ws: Workspace) -> None:
    reply = request(server.port, line(7) + b"\n")
    assert reply.status == 200
    assert reply.json() == {"session": "sess-1", "accepted": 1, "rejected": []}
    assert reply.headers["content-type"].startswith("application/json")
    assert (ws.captures_dir / "sess-1.jsonl").read_bytes() == line(7) + b"\n"


@pytest.mark.parametrize("final_newline", [True, False])
def test_batch_of_60_lands_byte_for_byte(
    server: Running, ws: Workspace, final_newline: bool
) -> None:
    payload = b"\n".join(line(i) for i in range(60)) + (b"\n" if final_newline else b"")
    reply = request(server.port, payload)
    assert reply.status == 200
    assert reply.json() == {"session": "sess-1", "accepted": 60, "rejected": []}
    assert (ws.captures_dir / "sess-1.jsonl").read_bytes() == payload.rstrip(
        b"\n"
    ) + b"\n"


def test_valid_body_is_stored_as_sent_even_with_spaces(
    server: Running, ws: Workspace
) -> None:
    spaced = json.dumps(frame(1)).encode()  # ", " and ": " separators
    payload = b"  " + spaced + b"\n\t" + line(2) + b"  \n"
    reply = request(server.port, payload)
    assert reply.json()["accepted"] == 2
    assert (ws.captures_dir / "sess-1.jsonl").read_bytes() == payload


def test_lines_are_stripped_when_a_line_is_rejected(
    server: Running, ws: Workspace
) -> None:
    payload = b"  " + line(1) + b"\n\t" + line(2) + b"  \n{}\n"
    reply = request(server.port, payload)
    assert reply.json()["accepted"] == 2
    assert reply.json()["rejected"][0]["line"] == 3
    assert (ws.captures_dir / "sess-1.jsonl").read_bytes() == line(1) + b"\n" + line(
        2
    ) + b"\n"


def test_batch_of_60_with_crlf_and_blank_lines(server: Running, ws: Workspace) -> None:
    lines = [line(i) for i in range(60)]
    payload = (
        b"\r\n".join(lines[:30]) + b"\r\n\r\n\n" + b"\n".join(lines[30:])
    )  # no final newline
    reply = request(
        server.port, payload, {"Content-Type": "application/x-ndjson; charset=utf-8"}
    )
    assert reply.status == 200, reply.body
    assert reply.json()["accepted"] == 60
    assert (ws.captures_dir / "sess-1.jsonl").read_bytes() == b"\n".join(lines) + b"\n"


def test_line_with_inner_carriage_return_is_stored_compact(
    server: Running, ws: Workspace
) -> None:
    spaced = json.dumps(frame(3)).replace(", ", ",\r ").encode()
    reply = request(server.port, spaced + b"\n")
    assert reply.status == 200
    stored = (ws.captures_dir / "sess-1.jsonl").read_bytes()
    assert b"\r" not in stored
    assert json.loads(stored) == frame(3)


def test_mixed_lines_report_each_reject_by_field(
    server: Running, ws: Workspace
) -> None:
    bad_input = json.dumps(frame(1, input=[0.0] * 127)).encode()
    no_ts = json.dumps({k: v for k, v in frame(2).items() if k != "ts"}).encode()
    payload = body(line(0), bad_input, no_ts, b"not json", line(4))
    reply = request(server.port, payload)
    assert reply.status == 200
    out = reply.json()
    assert out["accepted"] == 2
    assert [r["line"] for r in out["rejected"]] == [2, 3, 4]
    assert out["rejected"][0]["reason"].startswith("input: expected 128 numbers")
    assert out["rejected"][1]["reason"] == "ts: missing"
    assert out["rejected"][2]["reason"].startswith("json: ")
    stored = (ws.captures_dir / "sess-1.jsonl").read_bytes()
    assert stored == line(0) + b"\n" + line(4) + b"\n"


def test_all_lines_rejected_is_422_and_writes_nothing(
    server: Running, ws: Workspace
) -> None:
    reply = request(server.port, body(b"{}", b"[1,2]"))
    assert reply.status == 422
    assert reply.json()["accepted"] == 0
    assert len(reply.json()["rejected"]) == 2
    assert not (ws.captures_dir / "sess-1.jsonl").exists()


def test_stats_counts_requests_frames_and_sessions(server: Running) -> None:
    request(server.port, body(line(0), line(1), b"{}"))
    request(server.port, body(line(2)), {"X-MotionMix-SAN-Session": "other"})
    request(server.port, body(line(3)), {"X-MotionMix-SAN-Dims": "64"})
    request(server.port, b"", method="GET", path="/nowhere")
    stats = request(server.port, b"", method="GET", path="/stats").json()
    assert set(stats) == {
        "version", "started_at", "uptime_s", "host", "port", "fsync", "requests",
        "bad_requests", "frames_accepted", "frames_rejected", "rejects_by_reason",
        "bytes_in", "sessions", "recent_fps",
    }  # fmt: skip
    assert stats["version"] == 1
    assert stats["port"] == server.port and stats["host"] == "127.0.0.1"
    assert stats["fsync"] == "batch"
    assert stats["requests"] == 5  # this /stats included
    assert stats["bad_requests"] == {"400": 1, "404": 1}
    assert stats["frames_accepted"] == 3 and stats["frames_rejected"] == 1
    assert sum(stats["rejects_by_reason"].values()) == 1
    assert stats["sessions"]["sess-1"]["accepted"] == 2
    assert stats["sessions"]["sess-1"]["rejected"] == 1
    assert stats["sessions"]["other"]["accepted"] == 1
    assert sum(n for _, n in stats["recent_fps"]) == 3
    assert all(sec > time.time() - 130 for sec, _ in stats["recent_fps"])


def test_health_needs_no_token_but_everything_else_does(ws: Workspace) -> None:
    srv = start_in_thread(ws, token="s3cret")
    try:
        assert request(srv.port, b"", method="GET", path="/health").status == 200
        for auth in (
            None,
            "Bearer wrong",
            "s3cret",
            "Bearer s3cret2",
            "Basic s3cret",
            "Bearer ",
        ):
            r = request(srv.port, body(line(0)), {"Authorization": auth})
            assert r.status == 401, auth
            assert "token" in r.json()["error"]
            assert (
                request(srv.port, b"", {"Authorization": auth}, "GET", "/stats").status
                == 401
            )
        assert not (ws.captures_dir / "sess-1.jsonl").exists()
        ok = request(srv.port, body(line(0)), {"Authorization": "Bearer s3cret"})
        assert ok.status == 200
        stats = request(
            srv.port, b"", {"Authorization": "Bearer s3cret"}, "GET", "/stats"
        )
        assert stats.json()["bad_requests"] == {"401": 12}
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.20", "example.org", "myhost"]
)
def test_non_loopback_without_token_is_refused(ws: Workspace, host: str) -> None:
    with pytest.raises(ValueError, match="token"):
        start_in_thread(ws, host=host)


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.5") and is_loopback("[::1]")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("::")
        and not is_loopback("10.0.0.1")
    )


def test_wildcard_with_token_serves(ws: Workspace) -> None:
    token = "a-token-of-24-characters"
    srv = start_in_thread(ws, host="0.0.0.0", token=token)
    try:
        r = request(srv.port, body(line(0)), {"Authorization": f"Bearer {token}"})
        assert r.status == 200
    finally:
        srv.stop()


def test_stalled_client_does_not_block_others(ws: Workspace) -> None:
    srv = start_in_thread(ws, body_timeout=1.0)
    try:
        payload = body(line(0), line(1))
        stalled = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        stalled.sendall(
            b"POST /san-frame HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            b"X-MotionMix-SAN-Session: slow\r\nX-MotionMix-SAN-Schema: 2\r\n"
            b"X-MotionMix-SAN-Dims: 128\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload[: len(payload) // 2]
        )
        t0 = time.monotonic()
        for i in range(20):
            r = request(srv.port, body(line(i)), {"X-MotionMix-SAN-Session": "fast"})
            assert r.status == 200
        assert time.monotonic() - t0 < 0.9  # all done before the stalled body times out
        stalled.settimeout(5)
        answer = b""
        while b'"}' not in answer:
            answer += stalled.recv(65536)
        assert time.monotonic() - t0 < 2  # answered at the 1 s body timeout
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert b'"error":"body: not received within 1 s"' in answer
        assert stalled.recv(65536) == b""  # then closed, after a short linger
        assert time.monotonic() - t0 < 1 + server_mod.LINGER + 1
        stalled.close()
        assert not (ws.captures_dir / "slow.jsonl").exists()
        assert len((ws.captures_dir / "fast.jsonl").read_bytes().splitlines()) == 20
    finally:
        srv.stop()


def test_keep_alive_connection_serves_many_requests(
    server: Running, ws: Workspace
) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    headers = {k: v for k, v in request.__globals__["HEADERS"].items()}
    for i in range(30):
        conn.request("POST", "/san-frame", body=line(i) + b"\n", headers=headers)
        resp = conn.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read())["accepted"] == 1
    conn.close()
    assert len((ws.captures_dir / "sess-1.jsonl").read_bytes().splitlines()) == 30


def test_store_failure_is_503_and_not_acknowledged(
    server: Running, ws: Workspace
) -> None:
    (ws.captures_dir / "blocked.jsonl").mkdir()  # the session file cannot be opened
    reply = request(server.port, body(line(0)), {"X-MotionMix-SAN-Session": "blocked"})
    assert reply.status == 503
    assert reply.json()["error"].startswith("store: cannot write the session file")
    assert request(server.port, body(line(1))).status == 200  # other sessions carry on
