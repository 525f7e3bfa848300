"""Malformed requests against a running server: each gets its 4xx and a JSON reason, never a
5xx, and a refused request writes nothing (and nothing is ever written outside san-training/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from trainledger.engines.workspace import Workspace

from .conftest import (
    Running,
    body,
    files_under,
    frame,
    line,
    raw,
    request,
    start_in_thread,
)

MAX_BODY = 64 * 1024
S, SC, D, CT = (
    "X-MotionMix-SAN-Session",
    "X-MotionMix-SAN-Schema",
    "X-MotionMix-SAN-Dims",
    "Content-Type",
)


@dataclass(frozen=True)
class Case:
    payload: bytes = field(default_factory=lambda: body(line(0)))
    headers: dict[str, str | None] = field(default_factory=dict)
    status: int = 400
    reason: str = ""  # a substring of the JSON reason
    method: str = "POST"
    path: str = "/san-frame"


def without(key: str) -> bytes:
    return json.dumps({k: v for k, v in frame(0).items() if k != key}).encode() + b"\n"


def changed(**kw: Any) -> bytes:
    return json.dumps(frame(0, **kw)).encode() + b"\n"


GOOD = line(0)
CASES: dict[str, Case] = {
    # content type
    "ct-missing": Case(headers={CT: None}, status=415, reason="content type"),
    "ct-json": Case(
        headers={CT: "application/json"}, status=415, reason="content type"
    ),
    "ct-text": Case(headers={CT: "text/plain"}, status=415, reason="content type"),
    "ct-empty": Case(headers={CT: ""}, status=415, reason="content type"),
    "ct-near-miss": Case(
        headers={CT: "application/x-ndjsonx"}, status=415, reason="content type"
    ),
    # session header
    "session-missing": Case(headers={S: None}, reason=f"{S}: missing"),
    "session-empty": Case(headers={S: ""}, reason=f"{S}: missing"),
    "session-dot": Case(headers={S: "."}, reason=S),
    "session-dotdot": Case(headers={S: ".."}, reason=S),
    "session-traversal": Case(headers={S: "../x"}, reason=S),
    "session-deep-traversal": Case(headers={S: "../../etc/passwd"}, reason=S),
    "session-slash": Case(headers={S: "a/b"}, reason=S),
    "session-backslash": Case(headers={S: "a\\b"}, reason=S),
    "session-129-chars": Case(headers={S: "x" * 129}, reason=S),
    "session-space": Case(headers={S: "a b"}, reason=S),
    "session-hidden": Case(headers={S: ".hidden"}, reason="must not start with '.'"),
    "session-unicode": Case(headers={S: "séance"}, reason=S),
    "session-tab": Case(headers={S: "a\tb"}, reason=S),
    "session-huge-8000": Case(headers={S: "y" * 8000}, reason=S),
    # schema and dims headers
    "schema-missing": Case(headers={SC: None}, reason=f"{SC}: missing"),
    "schema-empty": Case(headers={SC: ""}, reason=f"{SC}: missing"),
    "schema-1": Case(headers={SC: "1"}, reason=f"{SC}: must be 2"),
    "schema-3": Case(headers={SC: "3"}, reason=f"{SC}: must be 2"),
    "schema-abc": Case(headers={SC: "abc"}, reason=f"{SC}: must be 2"),
    "dims-missing": Case(headers={D: None}, reason=f"{D}: missing"),
    "dims-empty": Case(headers={D: ""}, reason=f"{D}: missing"),
    "dims-64": Case(headers={D: "64"}, reason=f"{D}: must be 128"),
    "dims-abc": Case(headers={D: "abc"}, reason=f"{D}: must be 128"),
    "dims-129": Case(headers={D: "129"}, reason=f"{D}: must be 128"),
    # frames that disagree with the headers refuse the whole request
    "frame-schema-1": Case(
        payload=body(GOOD, changed(schema_version=1)), reason="line 2: schema_version"
    ),
    "frame-dims-64": Case(payload=changed(dims=64), reason="line 1: dims"),
    "frame-dims-string": Case(
        payload=body(GOOD, GOOD, changed(dims="128")), reason="line 3: dims"
    ),
    # bytes
    "utf8-bad-first-byte": Case(
        payload=b"\xff" + GOOD + b"\n", reason="invalid UTF-8 at byte offset 0"
    ),
    "utf8-bad-in-string": Case(
        payload=GOOD.replace(b"demo track", b"demo \xc3\x28rack") + b"\n",
        reason=f"invalid UTF-8 at byte offset {GOOD.index(b'demo track') + 5}",
    ),
    "utf8-truncated-at-end": Case(
        payload=GOOD + b"\n\xe2\x82", reason=f"byte offset {len(GOOD) + 1}"
    ),
    "utf8-surrogate": Case(payload=b'{"a":"\xed\xa0\x80"}\n', reason="byte offset 6"),
    "body-empty": Case(payload=b"", reason="body: empty"),
    "body-only-newlines": Case(payload=b"\n\n\r\n\n", reason="body: empty"),
    "body-only-spaces": Case(payload=b"   \n \t \n", reason="body: empty"),
    "body-over-limit": Case(
        payload=body(*[GOOD] * 40), status=413, reason="over the limit"
    ),
    # every line rejected: 422 with per-line reasons
    "line-not-json": Case(payload=b"hello\n", status=422, reason="json: "),
    "line-json-array": Case(
        payload=b"[1, 2, 3]\n", status=422, reason="line: not a JSON object"
    ),
    "line-json-string": Case(
        payload=b'"frame"\n', status=422, reason="line: not a JSON object"
    ),
    "line-truncated": Case(payload=GOOD[:-40] + b"\n", status=422, reason="json: "),
    "line-nan": Case(
        payload=GOOD.replace(b'"cut_timing":0.5', b'"cut_timing":NaN') + b"\n",
        status=422,
        reason="json: ",
    ),
    "line-infinity": Case(
        payload=GOOD.replace(b'"phase":0.1', b'"phase":Infinity') + b"\n",
        status=422,
        reason="json: ",
    ),
    "line-1e999": Case(
        payload=GOOD.replace(b'"phase":0.1', b'"phase":1e999') + b"\n",
        status=422,
        reason="phase: not a finite number",
    ),
    "missing-input": Case(
        payload=without("input"), status=422, reason="input: missing"
    ),
    "missing-ts": Case(payload=without("ts"), status=422, reason="ts: missing"),
    "missing-latency": Case(
        payload=without("latency_us"), status=422, reason="latency_us: missing"
    ),
    "input-127": Case(
        payload=changed(input=[0.0] * 127),
        status=422,
        reason="input: expected 128 numbers",
    ),
    "input-string": Case(
        payload=changed(input="0" * 128), status=422, reason="input: "
    ),
    "input-has-string": Case(
        payload=changed(input=[0.0] * 127 + ["x"]), status=422, reason="input[127]: "
    ),
    "gesture-9": Case(
        payload=changed(gesture_probs=[0.1] * 9),
        status=422,
        reason="gesture_probs: expected 8",
    ),
    "camera-null": Case(
        payload=changed(camera_scores=None), status=422, reason="camera_scores: "
    ),
    "ts-string": Case(payload=changed(ts="now"), status=422, reason="ts: "),
    "track-name-number": Case(
        payload=changed(track_name=5), status=422, reason="track_name: "
    ),
    "regime-bool": Case(payload=changed(regime=True), status=422, reason="regime: "),
    "frame-float": Case(payload=changed(frame=1.5), status=422, reason="frame: "),
    "extra-field": Case(
        payload=changed(extra=1), status=422, reason="extra: unknown field"
    ),
    "schema-missing-in-frame": Case(
        payload=without("schema_version"), status=422, reason="schema_version: missing"
    ),
    # method and path
    "get-san-frame": Case(method="GET", status=405, reason="Method Not Allowed"),
    "put-san-frame": Case(method="PUT", status=405, reason="Method Not Allowed"),
    "delete-stats": Case(
        method="DELETE", path="/stats", status=405, reason="Method Not Allowed"
    ),
    "post-wrong-path": Case(path="/san-frames", status=404, reason="Not Found"),
    "post-traversal-path": Case(path="/../san-frame", status=404, reason="Not Found"),
}


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Workspace, Running]]:
    from trainledger.engines.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("bad") / "ws")
    srv = start_in_thread(ws, max_body=MAX_BODY)
    yield ws, srv
    srv.stop()


def _outside(ws: Workspace) -> dict[str, int]:
    return {
        k: v
        for k, v in files_under(ws.root).items()
        if not k.startswith("san-training/")
    }


def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_malformed_request(shared: tuple[Workspace, Running], case: Case) -> None:
    ws, srv = shared
    before_outside = _outside(ws)
    before_captures = files_under(ws.captures_dir)
    reply = request(srv.port, case.payload, case.headers, case.method, case.path)
    assert 400 <= reply.status < 500
    assert reply.status == case.status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    out = reply.json()
    reason = out["rejected"][0]["reason"] if case.status == 422 else out["error"]
    assert case.reason in reason
    assert _outside(ws) == before_outside
    assert files_under(ws.captures_dir) == before_captures  # refused: nothing written


def test_content_length_over_limit_is_refused_before_reading(
    shared: tuple[Workspace, Running],
) -> None:
    ws, srv = shared
    head = (
        "POST /san-frame HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/x-ndjson\r\nX-MotionMix-SAN-Session: big\r\n"
        f"X-MotionMix-SAN-Schema: 2\r\nX-MotionMix-SAN-Dims: 128\r\nContent-Length: {10**9}\r\n\r\n"
    ).encode()
    reply = raw(srv.port, head + GOOD)
    assert reply.status == 413
    assert f"{10**9} bytes is over the limit" in reply.json()["error"]
    assert not (ws.captures_dir / "big.jsonl").exists()


def test_chunked_body_over_limit(shared: tuple[Workspace, Running]) -> None:
    ws, srv = shared
    chunk = GOOD + b"\n"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // len(chunk) + 5)
    )
    reply = request(
        srv.port, chunks + b"0\r\n\r\n", {"Transfer-Encoding": "chunked", S: "chunky"}
    )
    assert reply.status == 413
    assert "over the limit" in reply.json()["error"]
    assert not (ws.captures_dir / "chunky.jsonl").exists()


def test_chunked_body_under_limit_is_accepted(
    shared: tuple[Workspace, Running],
) -> None:
    ws, srv = shared
    chunk = GOOD + b"\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3))
    reply = request(
        srv.port, chunks + b"0\r\n\r\n", {"Transfer-Encoding": "chunked", S: "chunk-ok"}
    )
    assert reply.status == 200
    assert reply.json()["accepted"] == 3
    assert (ws.captures_dir / "chunk-ok.jsonl").read_bytes() == chunk * 3


PARSER_CASES: dict[str, bytes] = {
    # aiohttp's HTTP parser refuses these before the application runs: a plain-text 400
    # (documented in docs/formats.md), still never a 5xx and never a write
    "session-nul": b"X-MotionMix-SAN-Session: a\x00b\r\n",
    "session-control-char": b"X-MotionMix-SAN-Session: a\x01b\r\n",
    "header-over-parser-limit": b"X-Junk: " + b"z" * 20000 + b"\r\n",
    "negative-content-length": b"Content-Length: -5\r\n",
}


@pytest.mark.parametrize("extra", PARSER_CASES.values(), ids=PARSER_CASES.keys())
def test_protocol_level_garbage_is_a_4xx(
    shared: tuple[Workspace, Running], extra: bytes
) -> None:
    ws, srv = shared
    before = files_under(ws.root)
    head = (
        b"POST /san-frame HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-ndjson\r\nX-MotionMix-SAN-Schema: 2\r\n"
        b"X-MotionMix-SAN-Dims: 128\r\n"
    )
    if b"Content-Length" not in extra:
        head += b"Content-Length: %d\r\n" % (len(GOOD) + 1)
    reply = raw(srv.port, head + extra + b"\r\n" + GOOD + b"\n")
    assert 400 <= reply.status < 500
    assert files_under(ws.root) == before


def test_bad_chunk_framing_is_a_4xx(shared: tuple[Workspace, Running]) -> None:
    ws, srv = shared
    before = files_under(ws.root)
    reply = request(
        srv.port, b"zz\r\n" + GOOD + b"\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}
    )
    assert 400 <= reply.status < 500
    assert files_under(ws.root) == before


def test_no_malformed_request_produced_a_5xx(shared: tuple[Workspace, Running]) -> None:
    _ws, srv = shared
    stats = request(srv.port, b"", method="GET", path="/stats").json()
    assert stats["requests"] > 0
    assert not any(code.startswith("5") for code in stats["bad_requests"])
