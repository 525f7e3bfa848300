"""The token rule: beyond loopback a token of at least 16 characters, the Bearer scheme in
any case (RFC 7235), and `capture serve` refusing a short token with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.engines.capture.conftest import body, line, request, start_in_thread
from trainledger.engines.capture.server import MIN_TOKEN, check_token
from trainledger.engines.workspace import Workspace

TOKEN = "0123456789abcdef-token"


@pytest.mark.parametrize("token", ["t", "x" * (MIN_TOKEN - 1)])
def test_a_short_token_is_refused_beyond_loopback(ws: Workspace, token: str) -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_TOKEN} characters"):
        start_in_thread(ws, host="0.0.0.0", token=token)


def test_sixteen_characters_are_enough_and_loopback_takes_any_token() -> None:
    assert MIN_TOKEN == 16
    check_token("0.0.0.0", "x" * 16)
    check_token("127.0.0.1", "t")
    check_token("127.0.0.1", None)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(ws: Workspace, scheme: str) -> None:
    srv = start_in_thread(ws, token=TOKEN)
    try:
        ok = request(srv.port, body(line(0)), {"Authorization": f"{scheme} {TOKEN}"})
        assert ok.status == 200, ok.json()
        wrong = request(srv.port, body(line(1)), {"Authorization": f"{scheme} {TOKEN}x"})
        assert wrong.status == 401
        assert request(srv.port, b"", {"Authorization": f"{scheme}  {TOKEN}"}, "GET", "/stats").status == 200
        assert request(srv.port, b"", {"Authorization": f"Basic {TOKEN}"}, "GET", "/stats").status == 401
        assert request(srv.port, b"", {"Authorization": TOKEN}, "GET", "/stats").status == 401
    finally:
        srv.stop()


def test_capture_serve_refuses_a_short_token_with_exit_2(ws: Workspace) -> None:
    env = {**os.environ, "TRAINLEDGER_CAPTURE_TOKEN": "short"}
    proc = subprocess.run(
        [sys.executable, "-m", "trainledger.engines.capture", "serve", "--workspace", str(ws.root),
         "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"at least {MIN_TOKEN} characters" in proc.stderr
    assert "listening" not in proc.stdout
