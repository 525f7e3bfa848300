"""The port server as a real process on 127.0.0.1, serving real (tiny) trained LVM versions from
a real registry: answers, bad input, hot swap under load, the automatic abort, a tampered
artifact, drain on SIGTERM."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.engines.serving.served import CTX, DIM, MODEL, Served, context, copy_workspace, registry_workspace
from trainledger.engines.registry import blobs
from trainledger.engines.registry.store import Registry
from trainledger.engines.serving import records
from trainledger.engines.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return registry_workspace(tmp_path_factory.mktemp("serving") / "ws")


@pytest.fixture
def ws(trained: Workspace, tmp_path: Path) -> Workspace:
    return copy_workspace(trained, tmp_path / "ws")


def test_predict_names_its_version_and_health_and_metrics_say_what_is_served(ws: Workspace) -> None:
    with Served(ws) as s:
        status, body, header = s.post({"context": context()})
        assert status == 200 and header == "v1" and body["version"] == "v1"
        assert len(body["vector"]) == DIM and all(math.isfinite(x) for x in body["vector"])
        status, batch, _ = s.post({"contexts": [context(0.1), context(0.3)]})
        assert status == 200 and len(batch["vectors"]) == 2
        assert batch["vectors"][0] == pytest.approx(body["vector"], abs=1e-5)  # batched matmul rounds differently
        status, health = s.get("/health")
        with Registry(ws) as reg:
            v1 = reg.version(MODEL, "v1")
        assert status == 200 and health["model"] == MODEL and health["active"]["version"] == "v1"
        assert health["active"]["sha256"] == v1.checksum and health["active"]["parameters"] > 0
        assert health["active"]["artifacts"][0]["sha256"] == v1.artifacts[0].sha256
        assert health["canary"] is None and health["registry"] == {"active": "v1", "canary": None, "traffic": 0}
        assert health["input_shape"] and health["uptime_s"] >= 0 and health["rss_bytes"] > 0
        status, text = s.get("/metrics")
        assert status == 200 and 'trainledger_requests_total{version="v1"} 2.0' in text
        assert 'trainledger_request_duration_seconds_bucket{le="0.0005",version="v1"}' in text
        assert "process_resident_memory_bytes" in text
        assert records.read_records(ws)[0].port == s.port and records.read_records(ws)[0].alive


@pytest.mark.parametrize("raw, field", [
    (b"{not json", "body"), (b"[1, 2]", "body"), (json.dumps({"context": [[1.0] * DIM] * (CTX - 1)}).encode(), None),
    (json.dumps({"context": [[1.0] * (DIM + 1)] * CTX}).encode(), None),
    (json.dumps({"context": "abc"}).encode(), None), (json.dumps({"context": [["x"] * DIM] * CTX}).encode(), None),
    (b'{"context": [' + b",".join([b"[" + b",".join([b"NaN"] * DIM) + b"]"] * CTX) + b"]}", None),
    (json.dumps({"contexts": [[[0.0] * DIM] * CTX] * 5000}).encode(), None),
    (json.dumps({"nothing": 1}).encode(), None), (json.dumps({"context": [[0.0] * DIM] * CTX, "key": [1]}).encode(),
                                                  "key"),
], ids=["not-json", "not-object", "short-context", "wide-rows", "string", "strings", "nan", "huge-batch",
        "no-context", "bad-key"])  # fmt: skip
def test_bad_input_is_a_4xx_naming_the_field_and_the_server_stays_up(ws: Workspace, raw: bytes,
                                                                     field: str | None) -> None:  # fmt: skip
    with Served(ws) as s:
        status, body, _ = s.post(None, raw=raw)
        assert 400 <= status < 500 and body.get("error") and body.get("field"), (status, body)
        if field:
            assert body["field"] == field
        assert s.post(None, raw=b"{}", headers={"Content-Type": "text/plain"})[0] == 415
        assert s.post({"context": context()})[0] == 200  # still up, same connection


def test_a_body_over_the_limit_is_413(ws: Workspace) -> None:
    with Served(ws) as s:
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        c.request("POST", "/predict", body=b" " * (9 << 20), headers={"Content-Type": "application/json"})
        assert c.getresponse().status == 413
        assert s.get("/health")[0] == 200


def _live_during(entries, start: float, end: float) -> set[str]:  # type: ignore[no-untyped-def]
    """Versions live (active or canary) at some moment from `start` to `end`, by the audit log."""
    live: set[str] = set()
    before = None
    for e in entries:
        if e.time <= start:
            before = e
        elif e.time <= end:
            live |= {v for v in (e.active, e.canary) if v}
    if before is not None:
        live |= {v for v in (before.active, before.canary) if v}
    return live


def test_hot_swap_under_load_fails_no_request_and_serves_only_live_versions(ws: Workspace) -> None:
    with Served(ws) as s:
        results: list[tuple[float, float, int, str | None]] = []
        stop = threading.Event()

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            i = 0
            while not stop.is_set():
                sent = time.time()
                status, _, version = s.post({"context": context(i % 7 / 10), "key": i}, conn=conn)
                results.append((sent, time.time(), status, version))
                i += 1

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        with Registry(ws) as reg:
            for i in range(20):
                time.sleep(0.15)
                if i % 2 == 0:
                    reg.promote(MODEL, "v2" if reg.model(MODEL).active == "v1" else "v1", reason=f"swap {i}")
                else:
                    reg.rollback(MODEL, reason=f"swap {i}")
            time.sleep(1.0)
            stop.set()
            for t in threads:
                t.join()
            entries = reg.audit(MODEL)
        assert len(results) > 100
        assert [r for r in results if r[2] != 200] == []
        swap_s = 1.5  # the server sees a change within 0.2 s and loads in the background
        wrong = [r for r in results if r[3] not in _live_during(entries, r[0] - swap_s, r[1])]
        assert wrong == [], [(w[0], w[1], w[3]) for w in wrong[:5]]
        assert {r[3] for r in results} >= {"v1", "v2"}


def test_a_failing_canary_is_aborted_within_a_window_and_a_second_with_its_figures(ws: Workspace) -> None:
    with Registry(ws) as reg:
        reg.set_policy(MODEL, {"window_s": 1.0, "min_requests": 5})
    with Served(ws, faults=("v2:error=0.5",)) as s:
        with Registry(ws) as reg:
            reg.canary(MODEL, "v2", 50, reason="try v2")
            canary_at = reg.audit(MODEL, limit=1, newest_first=True)[0].time
        sent: list[tuple[float, str | None, int]] = []
        deadline = time.time() + 10
        aborted = None
        while time.time() < deadline:
            t = time.time()
            status, _, version = s.post({"context": context()})
            sent.append((t, version, status))
            with Registry(ws) as reg:
                last = reg.audit(MODEL, limit=1, newest_first=True)[0]
            if last.action == "abort":
                aborted = last
                break
            time.sleep(0.01)
        assert aborted is not None, "no abort within 10 s"
        assert aborted.time - canary_at <= 1.0 + 0.2 + 1.0 + 1.0  # first load, one window, one second
        figures = aborted.details["figures"]
        assert figures["threshold"] == "error_rate" and figures["observed"] > 0.15
        assert figures["window"]["requests"] >= 5 and "error rate" in aborted.reason
        after = [s.post({"context": context()})[2] for _ in range(50)]
        assert set(after) == {"v1"}
        assert not [v for t, v, _ in sent if t > aborted.time and v == "v2"]
        with Registry(ws) as reg:
            assert reg.model(MODEL).canary is None and reg.version(MODEL, "v2").status == "aborted"


def test_a_tampered_artifact_is_never_served_and_the_old_version_keeps_serving(ws: Workspace) -> None:
    with Served(ws) as s:
        os.kill(s.proc.pid, signal.SIGSTOP)  # hold it while the registry moves and the bytes change
        try:
            with Registry(ws) as reg:
                reg.promote(MODEL, "v2")
                blob = blobs.blob_path(ws.registry_dir, reg.version(MODEL, "v2").artifacts[0].sha256)
            data = bytearray(blob.read_bytes())
            data[-8] ^= 0xFF
            os.chmod(blob, 0o644)
            blob.write_bytes(bytes(data))
        finally:
            os.kill(s.proc.pid, signal.SIGCONT)
        deadline = time.time() + 10
        while time.time() < deadline and not s.get("/health")[1]["refused"]:
            time.sleep(0.1)
        health = s.get("/health")[1]
        assert health["refused"] and health["refused"][0]["version"] == "v2"
        assert health["active"]["version"] == "v1" and health["registry"]["active"] == "v2"
        assert {s.post({"context": context()})[2] for _ in range(20)} == {"v1"}
        with Registry(ws) as reg:
            assert reg.version(MODEL, "v2").status == "corrupt"
            assert any(e.action == "verify" and "refused" in e.reason for e in reg.audit(MODEL))
        with Registry(ws) as reg:
            reg.canary(MODEL, "v3", 10)  # another change: the server reconciles, v2 stays refused
        time.sleep(1.0)
        with Registry(ws) as reg:
            assert sum(e.action == "verify" for e in reg.audit(MODEL)) == 1  # re-verified once, not per reconcile


def test_sigterm_drains_a_request_in_flight_and_removes_the_record(ws: Workspace) -> None:
    s = Served(ws, faults=("v1:latency_ms=800",))
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(s.post({"context": context()})[0]))
    t.start()
    time.sleep(0.3)
    assert s.stop() == 0
    t.join()
    assert got == [200]
    assert not records.record_path(ws, s.port).exists()


def test_passthrough_gives_the_last_context_row_back(tmp_path: Path) -> None:
    from trainledger.engines.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    with Served(ws, model=None, dim=4) as s:
        ctx = [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
        status, body, version = s.post({"context": ctx})
        assert status == 200 and body["vector"] == ctx[-1] and version == "passthrough"
        assert s.get("/health")[1]["kind"] == "passthrough"


def test_a_healthy_canary_steps_through_its_plan_and_is_promoted_by_the_server(ws: Workspace) -> None:
    from trainledger.engines.registry.live import canary_plan

    with Registry(ws) as reg:
        reg.set_policy(MODEL, {"window_s": 0.5, "min_requests": 3})
    with Served(ws) as s:
        with Registry(ws) as reg:
            reg.canary(MODEL, "v2", 10, plan=canary_plan([10, 50, 100], 1.5))
        deadline = time.time() + 30
        while time.time() < deadline:
            s.post({"context": context()})
            with Registry(ws) as reg:
                if reg.model(MODEL).active == "v2":
                    break
        with Registry(ws) as reg:
            steps = [(e.action, e.traffic) for e in reg.audit(MODEL) if e.action in ("canary", "promote")][1:]
            assert reg.model(MODEL).active == "v2", steps
        assert steps == [("canary", 10), ("canary", 50), ("promote", 0)]


def test_a_promoted_version_failing_its_bake_is_rolled_back_by_the_server(ws: Workspace) -> None:
    with Registry(ws) as reg:
        reg.set_policy(MODEL, {"window_s": 0.5, "min_requests": 3})
    with Served(ws, faults=("v2:error=0.9",), bake_s=30.0) as s:
        with Registry(ws) as reg:
            reg.promote(MODEL, "v2", reason="a bad promote")
        deadline = time.time() + 20
        last = None
        while time.time() < deadline:
            s.post({"context": context()})
            with Registry(ws) as reg:
                last = reg.audit(MODEL, limit=1, newest_first=True)[0]
            if last.action == "rollback":
                break
        assert last is not None and last.action == "rollback" and last.to_version == "v1"
        assert last.details["automatic"] and last.details["figures"]["subject"] == "bake"
        time.sleep(0.5)
        assert {s.post({"context": context()})[2] for _ in range(20)} == {"v1"}


def test_a_port_served_from_another_workspace_is_not_shown_as_ours(tmp_path: Path) -> None:
    from trainledger.engines.serving.portsfile import PortSpec, write_ports
    from trainledger.engines.serving.prober import probe_once
    from trainledger.engines.workspace import init_workspace

    theirs, ours = init_workspace(tmp_path / "theirs"), init_workspace(tmp_path / "ours")
    with Served(theirs, model=None, dim=4) as s:
        write_ports(ours, [PortSpec(s.port, None, passthrough=True, dim=4)])
        row = next(r for r in probe_once(ours) if r.port == s.port)
        assert row.state == "garbage" and "another workspace" in row.detail
        write_ports(theirs, [PortSpec(s.port, None, passthrough=True, dim=4)])
        assert next(r for r in probe_once(theirs) if r.port == s.port).state == "up"
