"""The Versions pane's verification state per version, and promote typed past a report that fails.

Real report files under registry/reports/<model>/<version>.json, verified by the real verify over
the real registry: a contradicted claim marks its version ⚠, failing stored checks ✗, no report
·; a report written while the pane is open is seen through the watcher; promote of the version
with the contradicted claim must be typed (even from canary), says which claim, keeps Cancel
focused, and the audit entry records what was typed past.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Input

from tests.console.conftest import FROZEN, settle
from tests.console.registry_fixture import build_registry
from tests.console.test_run_report import CHECKS, derived, write_report
from tests.console.test_versions_pane import Said, app_on, labels, opened, until
from trainledger.console.panes.versions_provenance import provenance_ask
from trainledger.console.provenance import Assessment
from trainledger.console.screens.confirm import Confirmation, ConfirmScreen
from trainledger.engines.provenance.model import Claim, Evidence, Report
from trainledger.engines.registry.store import Registry
from trainledger.engines.workspace import Workspace

_BUILT: list[Path] = []


@pytest.fixture
def reg_ws(tmp_path: Path) -> Workspace:
    """A private copy of the frozen workspace with the fixture registry (built once per session)."""
    if not _BUILT:
        _BUILT.append(tmp_path.parent / "versions-verify-fixture")
        shutil.copytree(FROZEN, _BUILT[0])
        build_registry(Workspace(_BUILT[0]))
    shutil.copytree(_BUILT[0], tmp_path / "ws", symlinks=True)
    return Workspace(tmp_path / "ws")


def report_file(ws: Workspace, model: str, version: str):  # type: ignore[no-untyped-def]
    return ws.registry_dir / "reports" / model / f"{version}.json"


def contradicted_report(ws: Workspace) -> str:
    """ternary-vae v3's report: the claims its files allow, one numeric value changed; returns its key."""
    claims = [c for c in derived(ws, "ternary-vae@v3") if c.proven]
    i = next(i for i, c in enumerate(claims) if isinstance(c.value, (int, float)) and not isinstance(c.value, bool)
             and all(e.path.startswith("runs/") for e in c.evidence))  # the run's files: no registry write moves them
    claims[i] = replace(claims[i], value=claims[i].value * 2 + 7)
    write_report(report_file(ws, "ternary-vae", "v3"), "ternary-vae@v3", claims, CHECKS[1:])
    return claims[i].key


def stale_claim(ws: Workspace, run_id: str) -> Claim:
    rel = f"runs/{run_id}/metrics.jsonl"
    return Claim("data_files", 1, (Evidence(rel, "00" * 32, "a sha256 the file never had"),))


async def test_markers_say_each_versions_state(reg_ws: Workspace) -> None:
    key = contradicted_report(reg_ws)
    write_report(report_file(reg_ws, "ternary-vae", "v2"), "ternary-vae@v2", [], CHECKS[:1])  # a failing check
    write_report(report_file(reg_ws, "lvm-amn", "v1"), "lvm-amn@v1", [stale_claim(reg_ws, "lvm-amn-mse")], ())
    async with app_on(reg_ws).run_test(size=(160, 40)) as pilot:
        pane = await opened(pilot)
        await until(pilot, lambda: len(pane.provenance) == len(pane.versions))
        await settle(pilot)
        tv = {line.split("  ")[0]: line for line in labels(pane, "ternary-vae")[1:]}
        assert "⚠ contradicted" in tv["◌ v3"] and "✗ checks failing" in tv["✔ v2"] and "· no report" in tv["· v1"]
        assert "⚠ stale" in labels(pane, "lvm-amn")[-1]  # v1, the oldest, is last
        assert pane.select_version("ternary-vae", "v3")
        await settle(pilot)
        detail = str(pane.query_one("#ver-detail").content)
        assert "provenance (the stored report, verified now)" in detail
        assert f"CONTRADICTED claims (the files say otherwise): {key}" in detail
        assert "trainledger verify ternary-vae@v3" in detail


async def test_narrow_tree_keeps_a_one_glyph_column(reg_ws: Workspace) -> None:
    write_report(report_file(reg_ws, "ternary-vae", "v2"), "ternary-vae@v2", [], CHECKS[:1])
    async with app_on(reg_ws).run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        await until(pilot, lambda: len(pane.provenance) == len(pane.versions))
        await settle(pilot)
        tv = labels(pane, "ternary-vae")
        assert tv[2] == "✔ v2  active  ✗" and tv[3].startswith("· v1  inactive  ·")


async def test_promote_past_a_contradicted_claim_is_typed_and_audited(reg_ws: Workspace) -> None:
    key = contradicted_report(reg_ws)
    app = app_on(reg_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        assert pane.select_version("ternary-vae", "v3")  # on canary: a plain promote needs no typing
        await settle(pilot)
        audit_before = len(Registry(reg_ws).audit())
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        ask = app.screen.ask
        assert ask.type_to_confirm == "v3" and app.focused.id == "confirm-cancel"
        assert f"CONTRADICTED claims (the files say otherwise): {key}" in ask.details
        assert "90 % of requests move to v3" in ask.details  # the usual body stays
        await pilot.press("enter")  # Cancel has the focus
        await settle(pilot)
        with Registry(reg_ws) as reg:
            assert reg.model("ternary-vae").active == "v2" and len(reg.audit()) == audit_before
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")  # not typed yet: refused (the y goes into the box)
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.screen.query_one(Input).value == "y"
        await pilot.click("#confirm-ok")  # disabled until the name is typed
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        app.screen.query_one(Input).value = "v3"
        await pilot.pause()
        await pilot.click("#confirm-ok")
        await settle(pilot)
        await until(pilot, lambda: "Promote ternary-vae: ternary-vae: v2 -> v3 active" in said)
        with Registry(reg_ws) as reg:
            assert reg.model("ternary-vae").active == "v3"
            entry = reg.audit("ternary-vae", limit=1, newest_first=True)[0]
        assert entry.action == "promote" and entry.reason == "via the console"
        assert entry.details["provenance"] == {"stale": [], "contradicted": [key], "failing_checks": [],
                                               "confirmed_by_typing": True}  # fmt: skip
        assert entry.details["cleared_canary"] is None


async def test_promote_without_a_report_records_no_provenance(reg_ws: Workspace) -> None:
    app = app_on(reg_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        assert pane.select_version("ternary-vae", "v3")
        await settle(pilot)
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen.ask.type_to_confirm is None
        await pilot.press("y")
        await settle(pilot)
        with Registry(reg_ws) as reg:
            entry = reg.audit("ternary-vae", limit=1, newest_first=True)[0]
        assert entry.action == "promote" and "provenance" not in entry.details


async def test_a_report_written_while_open_changes_the_marker(reg_ws: Workspace) -> None:
    async with app_on(reg_ws, watch=True).run_test(size=(160, 40)) as pilot:
        pane = await opened(pilot)
        await until(pilot, lambda: "· no report" in labels(pane, "ternary-vae")[3])
        write_report(report_file(reg_ws, "ternary-vae", "v1"), "ternary-vae@v1", [stale_claim(reg_ws, "ternary-v5-5")],
                     ())  # fmt: skip
        await until(pilot, lambda: "⚠ stale" in labels(pane, "ternary-vae")[3])


def test_the_confirmation_says_why_only_when_something_stands_against() -> None:
    ask = Confirmation("Promote m v2?", "Promote v2", details="traffic: 100 %")
    clean = Assessment("m@v2", Report("m@v2", None, 0.0, ()))
    assert provenance_ask(ask, "v2", clean) == ask and not clean.blocks
    failing = Assessment("m@v2", Report("m@v2", None, 0.0, (), ({"name": "[/]x\x1b", "ok": False},)))
    typed = provenance_ask(ask, "v2", failing)
    assert typed.type_to_confirm == "v2" and "FAILING checks in the stored report: [/]x␛" in typed.details
    assert failing.audit_detail()["provenance"]["failing_checks"] == ["[/]x\x1b"]
