"""Snapshots of the Versions pane, its details and each confirmation, in the mono theme (the worst
case: no hue, states told apart by glyph and weight), at 80x24 and 160x48, on the frozen
workspace with the fixture registry and a fixed clock, times in UTC.

Update with `pytest tests/console/test_versions_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import time

import pytest

from tests.console.conftest import settle
from tests.console.snapshot_apps import versions_app
from trainledger.console.panes.versions import VersionsPane
from trainledger.console.panes.versions_actions import DeployChecked
from trainledger.console.screens.run_picker import DeployRequest

SIZES = [(80, 24), (160, 48)]
DRY_RUN = {  # the shape of `trainledger registry deploy ternary-vae --run ternary-v5-5 --json --dry-run`
    "ok": True,
    "candidate": {"checkpoint": "best", "epoch": 6, "last_epoch": 106, "is_best": True, "is_last": False,
                  "files": [{"name": "model.safetensors", "sha256": "5e" * 32}],
                  "dataset_path": "data/ternary-vae.jsonl", "dataset_sha256": "0a" * 32},
    "checks": [{"name": "files", "ok": True, "detail": "1 regular file(s)"}, {"name": "format", "ok": True},
               {"name": "size", "ok": True}, {"name": "sha256", "ok": True}, {"name": "weights", "ok": True},
               {"name": "loads", "ok": True}, {"name": "probe", "ok": True, "detail": "finite, not flat"}],
    "change": {"to": "v4", "message": "dry run: would deploy run ternary-v5-5 as ternary-vae v4 (inactive)"},
}  # fmt: skip


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def verified(pilot, pane: VersionsPane) -> None:  # type: ignore[no-untyped-def]
    """Every version's report marker known (the verify worker is started by the registry read's
    message, so on a loaded box it may not have begun when the first settle looks)."""
    deadline = time.monotonic() + 20.0
    while any(k not in pane.provenance for k in pane.versions) and time.monotonic() < deadline:
        await pilot.pause(0.05)
    await settle(pilot, rounds=2)


def at(model: str, version: str | None, *keys: str):  # type: ignore[no-untyped-def]
    """Open the Versions pane, put the cursor on a line, press keys."""

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("3")
        while not (pilot.app.query(VersionsPane) and pilot.app.query_one(VersionsPane).loads):
            await pilot.pause(0.01)
        await settle(pilot, rounds=2)
        pane = pilot.app.query_one(VersionsPane)
        assert pane.select_version(model, version)
        await settle(pilot, rounds=2)
        await verified(pilot, pane)
        for key in keys:
            await pilot.press(key)
            await settle(pilot, rounds=2)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_pane_and_the_details_of_a_canary(snap_compare, size) -> None:
    assert snap_compare(versions_app(), terminal_size=size, run_before=at("ternary-vae", "v3"))


def test_details_of_a_corrupt_version(snap_compare) -> None:
    assert snap_compare(versions_app(), terminal_size=(160, 48), run_before=at("san-motion", "v2"))


@pytest.mark.parametrize("size", SIZES)
def test_promote_confirmation(snap_compare, size) -> None:
    assert snap_compare(versions_app(), terminal_size=size, run_before=at("ternary-vae", "v3", "P"))


@pytest.mark.parametrize("size", SIZES)
def test_rollback_confirmation(snap_compare, size) -> None:
    assert snap_compare(versions_app(), terminal_size=size, run_before=at("ternary-vae", None, "R"))


def test_canary_prompt(snap_compare) -> None:
    assert snap_compare(versions_app(), terminal_size=(80, 24), run_before=at("lvm-amn", "v2", "C"))


@pytest.mark.parametrize("size", SIZES)
def test_canary_confirmation(snap_compare, size) -> None:
    assert snap_compare(versions_app(), terminal_size=size, run_before=at("lvm-amn", "v2", "C", "enter"))


@pytest.mark.parametrize("size", SIZES)
def test_abort_confirmation(snap_compare, size) -> None:
    assert snap_compare(versions_app(), terminal_size=size, run_before=at("ternary-vae", "v2", "A"))


@pytest.mark.parametrize("size", SIZES)
def test_deploy_confirmation(snap_compare, size) -> None:
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await at("ternary-vae", "v3")(pilot)
        pane = pilot.app.query_one(VersionsPane)
        pane.post_message(DeployChecked(DeployRequest("ternary-vae", "ternary-v5-5"), DRY_RUN, None))
        await settle(pilot)

    assert snap_compare(versions_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_history(snap_compare, size) -> None:
    assert snap_compare(versions_app(), terminal_size=size, run_before=at("lvm-amn", None, "H"))


@pytest.mark.parametrize("size", SIZES)
def test_run_picker(snap_compare, size) -> None:
    assert snap_compare(versions_app(checkpoints=True), terminal_size=size, run_before=at("ternary-vae", "v3", "D"))


def test_readonly_pane(snap_compare) -> None:
    assert snap_compare(versions_app(readonly=True), terminal_size=(80, 24), run_before=at("ternary-vae", "v3"))
