"""Snapshots of the Ports pane, a port's drill-down and the drain confirmation, in the mono theme
(the worst case: no hue, states told apart by glyph and weight), at 80x24 and 160x48.

No live timing reaches a picture: the pane is fed fixed PortView rows through its test hook
(`PortsPane.hold`, after which the prober's rows are ignored), on the frozen workspace with the
fixture registry (tests/console/registry_fixture.py: its audit is what the drill-down reads), a
fixed clock, times in UTC. Update with `pytest tests/console/test_ports_snapshots.py
--snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from tests.console.conftest import CLOCK, settle
from tests.console.snapshot_apps import versions_app
from trainledger.console.panes.ports import PortsPane
from trainledger.engines.registry.store import Registry
from trainledger.engines.serving.view import PortView

SIZES = [(80, 24), (160, 48)]
HISTORY = (0.41, 0.44, 0.39, 0.52, 0.47, 0.43, 0.88, 0.45, 0.42, 0.40, 0.46, 0.61, 0.44, 0.43, 0.42, 0.47, 0.45,
           0.43, 0.39, 0.41)  # fmt: skip
WINDOWS = (
    {"start": CLOCK - 95, "end": CLOCK - 65, "requests": 31, "errors": 0, "mean_latency_ms": 0.6,
     "memory_bytes": 190 << 20, "outcome": "pass", "reason": "errors 0.0 % ≤ 15 %, mean 0.6 ms ≤ 5,000 ms"},
    {"start": CLOCK - 65, "end": CLOCK - 35, "requests": 29, "errors": 1, "mean_latency_ms": 0.7,
     "memory_bytes": 191 << 20, "outcome": "pass", "reason": "errors 3.4 % ≤ 15 %, mean 0.7 ms ≤ 5,000 ms"},
    {"start": CLOCK - 35, "end": CLOCK - 5, "requests": 3, "errors": 0, "mean_latency_ms": 0.5,
     "memory_bytes": 191 << 20, "outcome": "inconclusive", "reason": "3 requests < 5"},
)  # fmt: skip


def fixture_rows(checksums: dict[str, str] | None = None) -> list[PortView]:
    """Seed 003's six ports and one started by hand, with every health state but garbage twice."""
    sums = checksums or {}

    def row(port: int, model: str | None, state: str, **kw: object) -> PortView:
        base: dict[str, object] = dict(
            port=port, host="127.0.0.1", url=f"http://127.0.0.1:{port}", model=model, kind=model, configured=True,
            pid=4000 + port - 9000 if state != "stopped" else None, state=state, detail="",
            probed_at=CLOCK - 1, uptime_s=7380.0 if state != "stopped" else None,
        )  # fmt: skip
        base.update(kw)
        return PortView(**base)  # type: ignore[arg-type]

    return [
        row(9001, "lvm-amn", "up", active="v1", active_sha256=sums.get("lvm-amn v1"), run_id="lvm-amn-mse",
            dataset_path="data/lvm.jsonl", dataset_sha256="04" * 32, val_metric=("val/cosine", 0.71),
            parameters=12_672, p50_ms=0.42, p95_ms=0.88, probe_p50_ms=0.61, probe_p95_ms=1.3, error_rate=0.0,
            rps=12.0, rss_bytes=182 << 20, latency_history=HISTORY,
            artifact_path="/home/alice/frozen_ws/registry/artifacts/1f/1f3c.safetensors"),
        row(9002, "ternary-vae", "up", active="v2", active_sha256=sums.get("ternary-vae v2"), canary="v3",
            traffic=10, run_id="ternary-v5-5", dataset_path="data/ternary-vae.jsonl", dataset_sha256="02" * 32,
            val_metric=("val/loss", 0.028), parameters=48_231, p50_ms=0.55, p95_ms=1.21, probe_p50_ms=0.7,
            probe_p95_ms=1.4, error_rate=0.016, rps=21.3, rss_bytes=191 << 20,
            latency_history=tuple(x * 1.3 for x in HISTORY), windows=WINDOWS, analysis_subject="canary",
            artifact_path="/home/alice/frozen_ws/registry/artifacts/9a/9a41.safetensors"),
        row(9003, "lvm-gru", "stopped", detail="configured in ports.toml; nothing runs", run_id=None),
        row(9004, "lvm-lstm", "slow", detail="/health took 312 ms (slow above 250 ms)", active="v2",
            note="registry says v3; refused: sha256 mismatch", run_id="lvm-lstm-s1", dataset_path="data/lvm.jsonl",
            dataset_sha256="04" * 32, val_metric=("val/cosine", 0.56), parameters=25_344, p50_ms=180.0, p95_ms=640.0,
            error_rate=0.2, rps=3.1, rss_bytes=1_610 << 20, latency_history=(120.0, 180.0, 310.0, 290.0, 305.0, 312.0)),
        row(9005, None, "up", kind="passthrough", detail="", p50_ms=0.08, p95_ms=0.19, error_rate=0.0, rps=40.0,
            rss_bytes=64 << 20, latency_history=tuple(x / 4 for x in HISTORY)),
        row(9006, "lvm-transformer", "hung", detail="no answer for 12.0 s", active="v1", run_id="lvm-tf-opt",
            p50_ms=None, p95_ms=None, latency_history=(0.9, 1.1, 500.0, 500.0, 500.0)),
        row(9100, "lvm-amn", "garbage", configured=False, detail="/health: not JSON (b'<html>\\x1b]2;x')",
            pid=4100, uptime_s=65.0),
    ]  # fmt: skip


def checksums(ws) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The fixture registry's version checksums, as a port's /health would say them."""
    with Registry(ws) as reg:
        return {f"{v.model} {v.version}": v.checksum for v in reg.versions()}


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def at(port: int, *keys: str):  # type: ignore[no-untyped-def]
    """Open the Ports pane, feed it the fixture rows, put the cursor on `port`, press keys."""

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("4")
        while not pilot.app.query(PortsPane):
            await pilot.pause(0.01)
        pane = pilot.app.query_one(PortsPane)
        rows = fixture_rows(checksums(pilot.app.workspace))
        pane.hold([dataclasses.replace(r, probed_at=CLOCK - 1) for r in rows])
        await settle(pilot, rounds=2)
        assert pane.select_port(port)
        await settle(pilot, rounds=2)
        for key in keys:
            await pilot.press(key)
            await settle(pilot, rounds=3)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_ports_pane(snap_compare, size) -> None:
    assert snap_compare(versions_app(), terminal_size=size, run_before=at(9004))


@pytest.mark.parametrize("size", SIZES)
def test_port_drill_down(snap_compare, size) -> None:
    assert snap_compare(versions_app(), terminal_size=size, run_before=at(9002, "enter"))


def test_drain_confirmation(snap_compare) -> None:
    assert snap_compare(versions_app(), terminal_size=(80, 24), run_before=at(9002, "d"))
