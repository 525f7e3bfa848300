"""Send schema-v2 frames to a capture server the way the app does: NDJSON POSTs to /san-frame.

`trainledger capture send`, the demo's live stream and the benchmark all go through
send_lines: one keep-alive connection, optional batching, pacing to a frame schedule, and a
SendResult that counts what the server accepted and why it rejected the rest. Standard
library only (http.client), so the sender is as light as the phone it stands in for.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trainledger.engines.capture.schema import DIMS, SCHEMA_VERSION
from trainledger.engines.workspace import validate_id

DEFAULT_URL = "http://127.0.0.1:9471"
ENDPOINT = "/san-frame"
# Statuses that say every later request with the same headers fails the same way.
FATAL_STATUSES = frozenset({401, 403, 404, 405, 415})
MAX_LAG_S = (
    1.0  # further behind its schedule than this, a paced sender stops catching up
)
_DROPPED = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError,
            BrokenPipeError, ConnectionAbortedError)  # fmt: skip
_BYTE_POS = re.compile(r" \(byte \d+\)")

OnResponse = Callable[[int, dict[str, Any]], None]


class SendError(RuntimeError):
    """The frames could not be sent at all: no server, a dead connection, a bad URL or id."""


@dataclass
class SendResult:
    """What one sender did and what the server made of it."""

    requests: int = 0
    frames_sent: int = 0
    accepted: int = 0
    rejected: int = 0  # lines the server read and refused (200/422 bodies)
    refused: int = 0  # frames in requests answered with another 4xx/5xx
    reasons: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    first_error: str | None = None

    @property
    def frames_per_s(self) -> float:
        return self.frames_sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def request_failed(self) -> bool:
        """True when some request was refused as a whole (a 4xx other than 422, a 5xx)."""
        return any(s >= 400 and s != 422 for s in self.statuses)

    def top_reasons(self, n: int = 3) -> list[tuple[str, int]]:
        return self.reasons.most_common(n)


@dataclass(frozen=True)
class FileResult:
    path: Path
    session: str
    result: SendResult


def endpoint(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of `url`; a bare http://host:port gets /san-frame."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SendError(f"not an http URL: {url!r} (expected e.g. {DEFAULT_URL})")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise SendError(f"bad port in {url!r}: {exc}") from None
    path = parts.path if parts.path not in ("", "/") else ENDPOINT
    return (
        parts.scheme,
        parts.hostname,
        port,
        path + (f"?{parts.query}" if parts.query else ""),
    )


class _Connection:
    """One keep-alive connection that reconnects once when the server dropped it."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.scheme, self.host, self.port, self.path = endpoint(url)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        cls = (
            http.client.HTTPSConnection
            if self.scheme == "https"
            else http.client.HTTPConnection
        )
        return cls(self.host, self.port, timeout=self.timeout)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = self._open()
            try:
                self._conn.request("POST", self.path, body=body, headers=headers)
                resp = self._conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except ConnectionRefusedError:
                self.close()
                raise SendError(
                    f"cannot connect to {self.url}: connection refused. Is a capture server "
                    f"running there? Start one with `trainledger capture serve`."
                ) from None
            except _DROPPED as exc:
                self.close()
                if attempt:
                    raise SendError(
                        f"{self.url} dropped the connection twice: {exc!r}"
                    ) from None
            except TimeoutError:
                self.close()
                raise SendError(
                    f"{self.url} did not answer within {self.timeout:g} s"
                ) from None
            except OSError as exc:
                self.close()
                raise SendError(f"cannot send to {self.url}: {exc}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _batches(lines: Iterable[bytes], batch: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for line in lines:
        line = line.rstrip(b"\r\n")
        if not line:
            continue
        chunk.append(line)
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _parse(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {"error": data[:200].decode("utf-8", "replace").strip() or "no body"}
    return body if isinstance(body, dict) else {"error": repr(body)[:200]}


def send_lines(
    url: str,
    session: str,
    lines: Iterable[bytes],
    *,
    batch: int = 1,
    rate_hz: float | None = None,
    token: str | None = None,
    timeout: float = 10.0,
    on_response: OnResponse | None = None,
) -> SendResult:
    """POST `lines` (one frame each) to `url` as session `session`, `batch` frames a request.

    `rate_hz` paces frames per second against a schedule, so slow requests do not slow the
    average rate. A 4xx is recorded in the result, not retried; one that every later request
    would get too (401, 403, 404, 405, 415) ends the send. Raises SendError when nothing can
    be sent: no server at `url`, a connection dropped twice, or a bad session id.
    """
    try:
        session = validate_id(session, "session id")
    except ValueError as exc:
        raise SendError(str(exc)) from None
    if batch < 1:
        raise SendError(f"batch must be at least 1, not {batch}")
    if rate_hz is not None and rate_hz <= 0:
        rate_hz = None
    headers = {
        "Content-Type": "application/x-ndjson",
        "X-MotionMix-SAN-Session": session,
        "X-MotionMix-SAN-Schema": str(SCHEMA_VERSION),
        "X-MotionMix-SAN-Dims": str(DIMS),
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = _Connection(url, timeout)
    result = SendResult()
    start = time.monotonic()
    schedule = start
    try:
        for chunk in _batches(lines, batch):
            if rate_hz is not None:
                now = time.monotonic()
                if now < schedule:
                    time.sleep(schedule - now)
                elif now - schedule > MAX_LAG_S:
                    schedule = now
                schedule += len(chunk) / rate_hz
            status, data = conn.post(b"\n".join(chunk) + b"\n", headers)
            body = _parse(data)
            _record(result, status, body, len(chunk))
            if on_response is not None:
                on_response(status, body)
            if status in FATAL_STATUSES:
                break
    finally:
        conn.close()
        result.elapsed_s = time.monotonic() - start
    return result


def rejected_count(body: dict[str, Any]) -> int:
    """How many lines a response rejected: its count, or (older servers) its list's length."""
    count = body.get("rejected_count")
    return int(count) if isinstance(count, int) else len(body.get("rejected") or [])


def _record(result: SendResult, status: int, body: dict[str, Any], n: int) -> None:
    result.requests += 1
    result.frames_sent += n
    result.statuses[status] += 1
    if status in (200, 422) and "accepted" in body:
        result.accepted += int(body.get("accepted", 0))
        rejected = body.get("rejected") or []
        result.rejected += rejected_count(body)
        by_kind = body.get("rejects_by_reason")
        if isinstance(by_kind, dict):  # every reject counted by kind (servers since issue 9)
            for kind, count in by_kind.items():
                result.reasons[str(kind)] += int(count)
            return
        for item in rejected:
            reason = (
                str(item.get("reason", "?")) if isinstance(item, dict) else str(item)
            )
            result.reasons[_BYTE_POS.sub("", reason)] += 1
        return
    result.refused += n
    error = str(body.get("error") or body)
    result.reasons[f"HTTP {status}: {error}"] += n
    if result.first_error is None:
        result.first_error = f"HTTP {status}: {error}"


def session_for(path: Path, session: str | None = None) -> str:
    """The session a file is sent as: `session`, else the file's stem; validated either way."""
    return validate_id(session if session is not None else path.stem, "session id")


def _file_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from f


def send_files(
    paths: Sequence[str | Path],
    url: str = DEFAULT_URL,
    session: str | None = None,
    *,
    batch: int = 1,
    rate_hz: float | None = None,
    token: str | None = None,
    timeout: float = 10.0,
    on_file: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Replay JSONL files, each as the session `session` or its stem. Every file and session
    id is checked before the first frame goes out; a bad one raises SendError."""
    plan: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise SendError(f"{p}: no such file")
        try:
            plan.append((p, session_for(p, session)))
        except ValueError as exc:
            raise SendError(f"{p}: {exc}; name the session with --session") from None
    endpoint(url)
    out: list[FileResult] = []
    for p, sid in plan:
        res = send_lines(url, sid, _file_lines(p), batch=batch, rate_hz=rate_hz, token=token,
                         timeout=timeout)  # fmt: skip
        out.append(FileResult(p, sid, res))
        if on_file is not None:
            on_file(out[-1])
    return out
