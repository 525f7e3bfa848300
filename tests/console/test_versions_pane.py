"""The Versions pane against a real registry: real SQLite, real artifacts, the real watcher.

Keys do what they say (the registry changes, or with Cancel does not), --readonly refuses,
a change made outside the console shows within a second, a changed byte shows ✖ after V,
hostile strings are text, and enter on a version opens its run's curves.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.style import Style
from textual.widgets import Input, TabbedContent

from tests.console.conftest import CLOCK, FROZEN, settle
from tests.console.registry_fixture import build_registry, tamper
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.versions import VersionsPane
from trainledger.console.screens.canary_prompt import CanaryPrompt, parse_traffic
from trainledger.console.screens.confirm import ConfirmScreen
from trainledger.console.screens.run_picker import DeployRequest, deploy_ask
from trainledger.console.screens.version_history import VersionHistory
from trainledger.console.widgets import versions_render as render
from trainledger.console.widgets.runlist import RunList
from trainledger.engines.registry.store import Registry
from trainledger.engines.registry.types import Artifact, AuditEntry, Check, ModelState, Version
from trainledger.engines.workspace import Workspace

HOSTILE = "[/]x [link=x]y\x1b]2;title\x07"
SHOWN = "[/]x [link=x]y␛]2;title␇"

_BUILT: Path | None = None


@pytest.fixture
def reg_ws(tmp_path: Path) -> Workspace:
    """A private copy of the frozen workspace with the fixture registry (built once per session)."""
    global _BUILT
    if _BUILT is None:
        _BUILT = Path(tmp_path.parent / "versions-fixture")
        shutil.copytree(FROZEN, _BUILT)
        build_registry(Workspace(_BUILT))
    dest = tmp_path / "ws"
    shutil.copytree(_BUILT, dest, symlinks=True)
    return Workspace(dest)


async def until(pilot, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await pilot.pause(0.02)


class Said:
    """What the app notified (a spy around the real App.notify)."""

    def __init__(self, app: TrainledgerApp) -> None:
        self.texts: list[str] = []
        real = app.notify

        def spy(message, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.texts.append(f"{kwargs.get('title', '')}: {message}")
            return real(message, *args, **kwargs)

        app.notify = spy  # type: ignore[method-assign]

    def __contains__(self, part: str) -> bool:
        return any(part in t for t in self.texts)


async def opened(pilot) -> VersionsPane:  # type: ignore[no-untyped-def]
    await pilot.press("3")
    await until(pilot, lambda: bool(pilot.app.query(VersionsPane)) and pilot.app.query_one(VersionsPane).loads > 0)
    await settle(pilot)
    pane = pilot.app.query_one(VersionsPane)
    deadline = time.monotonic() + 15.0  # the cursor lands after the frame that drew the lines (slow on a loaded box)
    while pane.versions and ((pane.cursor_key() or (None, None))[1] is None) and time.monotonic() < deadline:
        await pilot.pause(0.05)
    return pane


def labels(pane: VersionsPane, model: str) -> list[str]:
    return [str(n.label) for k, n in pane._lines.items() if k[0] == model]


def app_on(ws: Workspace, **kwargs: object) -> TrainledgerApp:
    app = TrainledgerApp(ws, watch=kwargs.pop("watch", False), clock=lambda: CLOCK, **kwargs)  # type: ignore[arg-type]
    app.animation_level = "none"  # no tab underline slide to wait for
    return app


async def test_tree_newest_first_with_glyphs_and_the_rollback_target(reg_ws: Workspace) -> None:
    async with app_on(reg_ws).run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        tv = labels(pane, "ternary-vae")
        assert tv[0].startswith("ternary-vae  ✔ v2  ◌ v3 10 %")
        assert [x.split("  ")[0] for x in tv[1:]] == ["◌ v3", "✔ v2", "· v1"]
        assert "◂ rollback target" in tv[3] and "canary 10 %" in tv[1]
        assert labels(pane, "lvm-amn")[0] == "lvm-amn  ⚠ aborted, serving v1"
        assert labels(pane, "san-motion")[1].startswith("✖ v2  corrupt")
        assert pane.cursor_key() == ("lvm-amn", "v1")  # the first model's active version
        detail = str(pane.query_one("#ver-detail").content)
        for part in ("model.safetensors", "ok", "sha256", "run        lvm-amn-mse", "epoch 20", "the best, the last",
                     "data/lvm.jsonl", "val/cosine", "trainledger train lvm", "alice@lab-1  promote"):  # fmt: skip
            assert part in detail, part


async def test_promote_from_the_pane_and_cancel_changes_nothing(reg_ws: Workspace) -> None:
    app = app_on(reg_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        assert pane.select_version("ternary-vae", "v3")
        await settle(pilot)
        audit_before = len(Registry(reg_ws).audit())
        await pilot.press("P")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.focused.id == "confirm-cancel"
        assert "90 % of requests move to v3" in app.screen.ask.details
        await pilot.press("enter")  # Cancel has the focus
        await settle(pilot)
        with Registry(reg_ws) as reg:
            assert reg.model("ternary-vae").active == "v2" and len(reg.audit()) == audit_before
        await pilot.press("P")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        await until(pilot, lambda: "Promote ternary-vae: ternary-vae: v2 -> v3 active" in said)
        with Registry(reg_ws) as reg:
            m = reg.model("ternary-vae")
            assert (m.active, m.previous, m.canary) == ("v3", "v2", None)
        await until(pilot, lambda: labels(pane, "ternary-vae")[0].startswith("ternary-vae  ✔ v3"))


async def test_rollback_canary_and_abort_keys(reg_ws: Workspace) -> None:
    app = app_on(reg_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        pane.select_version("ternary-vae", None)
        await settle(pilot)
        await pilot.press("R")  # the model's rollback target, v1: all traffic at once
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await settle(pilot)
        with Registry(reg_ws) as reg:
            m = reg.model("ternary-vae")
            assert (m.active, m.canary) == ("v1", None)
        pane.select_version("lvm-amn", "v2")
        await settle(pilot)
        await pilot.press("C")
        await pilot.pause()
        assert isinstance(app.screen, CanaryPrompt)
        app.screen.query_one(Input).value = "30"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "v2 0 % -> 30 %" in app.screen.ask.details
        await pilot.press("y")
        await settle(pilot)
        with Registry(reg_ws) as reg:
            m = reg.model("lvm-amn")
            assert (m.canary, m.traffic) == ("v2", 30)
        await until(pilot, lambda: "◌ v2 30 %" in labels(pane, "lvm-amn")[0])
        await pilot.press("A")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.screen.ask.cancel == "Keep the canary"
        await pilot.press("y")
        await settle(pilot)
        with Registry(reg_ws) as reg:
            m = reg.model("lvm-amn")
            assert (m.canary, m.traffic, m.condition) == (None, 0, "aborted")


async def test_refusals_are_said_and_nothing_changes(reg_ws: Workspace) -> None:
    app = app_on(reg_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        pane.select_version("san-motion", "v2")  # corrupt: the store refuses it
        await settle(pilot)
        await pilot.press("P")
        await pilot.pause()
        assert app.screen.ask.type_to_confirm == "v2"  # never on canary: type its name
        app.screen.query_one(Input).value = "v2"
        await pilot.pause()
        await pilot.click("#confirm-ok")  # wherever the focus is, the button confirms
        await settle(pilot)
        await until(pilot, lambda: "refused: refused: san-motion v2 is corrupt" in said)
        await pilot.press("A")  # no canary
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and "san-motion has no canary to abort" in said
        with Registry(reg_ws) as reg:
            assert reg.model("san-motion").active == "v1"


async def test_readonly_hides_and_refuses_every_writing_key(reg_ws: Workspace) -> None:
    app = app_on(reg_ws, readonly=True)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        pane.select_version("ternary-vae", "v3")
        await settle(pilot)
        shown = {b.binding.key for b in app.screen.active_bindings.values()}
        assert not shown & {"P", "R", "C", "A", "D", "V"} and "H" in shown
        for key in ("P", "R", "C", "A", "D", "V"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, (ConfirmScreen, CanaryPrompt))
        assert "promote: refused, the console is read-only" in said and "deploy: refused" in said
        await pilot.press("H")
        await pilot.pause()
        assert isinstance(app.screen, VersionHistory)  # reading is allowed
        with Registry(reg_ws) as reg:
            assert reg.model("ternary-vae").canary == "v3" and reg.audit()[-1].action == "verify"


async def test_a_change_from_another_terminal_shows_within_a_second(reg_ws: Workspace) -> None:
    async with app_on(reg_ws, watch=True).run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        await pilot.pause(0.3)  # the watcher is up
        with Registry(reg_ws) as reg:  # what the CLI does: it writes registry/changed after the commit
            reg.promote("ternary-vae", reason="from a shell")
        t0 = time.monotonic()
        await until(pilot, lambda: labels(pane, "ternary-vae")[0].startswith("ternary-vae  ✔ v3"), timeout=1.0)
        assert time.monotonic() - t0 < 1.0


async def test_a_changed_byte_is_marked_corrupt_after_v(reg_ws: Workspace) -> None:
    app = app_on(reg_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        with Registry(reg_ws) as reg:
            sha = reg.version("ternary-vae", "v1").artifacts[0].sha256
        tamper(reg_ws, sha)
        pane.select_version("ternary-vae", "v1")
        await settle(pilot)
        assert "corrupt: sha256" in str(pane.query_one("#ver-detail").content)  # the pane's own re-hash
        await pilot.press("V")
        await settle(pilot)
        await until(pilot, lambda: labels(pane, "ternary-vae")[3].startswith("✖ v1  corrupt"))
        assert "1 of 8 version(s) corrupt" not in said  # V checks the selected model only
        assert "1 of 3 version(s) corrupt" in said
        with Registry(reg_ws) as reg:
            assert reg.version("ternary-vae", "v1").status == "corrupt"


async def test_hostile_strings_are_text_and_the_app_keeps_running(reg_ws: Workspace) -> None:
    conn = sqlite3.connect(reg_ws.registry_dir / "registry.db")  # a database someone else wrote
    with conn:
        conn.execute("UPDATE models SET condition_reason = ? WHERE name = 'lvm-amn'", (HOSTILE,))
        conn.execute("UPDATE versions SET source = ?, dataset_path = ?, reproduce = ?, metrics = ? "
                     "WHERE model = 'lvm-amn' AND version = 'v1'",
                     (HOSTILE, HOSTILE, HOSTILE, '{"' + HOSTILE.replace("\x1b", "\\u001b").replace("\x07", "\\u0007")
                      + '": 1.5}'))  # fmt: skip
        conn.execute("UPDATE audit SET reason = ? WHERE model = 'lvm-amn'", (HOSTILE,))
        conn.execute("INSERT INTO models (name, kind, traffic, policy, created_at, updated_at) "
                     "VALUES (?, ?, 0, '{}', 0, 0)", (HOSTILE, HOSTILE))  # fmt: skip
    conn.close()
    app = app_on(reg_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        assert any(SHOWN in label for label in labels(pane, HOSTILE))
        pane.select_version("lvm-amn", "v1")
        await settle(pilot)
        detail = pane.query_one("#ver-detail").content
        assert detail.plain.count(SHOWN) >= 4 and "\x1b" not in detail.plain
        pane.select_version(HOSTILE, None)
        await settle(pilot)
        await pilot.press("H")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.press("R")  # refused by the engine: not a valid model name
        await settle(pilot)
        assert app.is_running and said.texts and all("\x1b" not in t for t in said.texts)


async def test_enter_opens_the_versions_run_and_curves_marks_registered_runs(reg_ws: Workspace) -> None:
    app = app_on(reg_ws)
    async with app.run_test(size=(120, 30)) as pilot:
        pane = await opened(pilot)
        pane.select_version("ternary-vae", "v2")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        runs = app.query_one(RunList)
        assert app.query_one(TabbedContent).active == "curves" and runs.cursor_run == "ternary-v5-5"
        names = {k.value: str(runs.get_row(k)[0]) for k in runs.rows}
        assert "®" in names["ternary-v5-5"] and "®" in names["lvm-amn-mse"] and "®" not in names["demo-live"]


# --------------------------------------------------------------------------- pure parts

def _version(**kw: object) -> Version:
    base = dict(model="m", version="v1", seq=1, status="inactive", created_at=0.0, deployed_at=None, kind="k",
                artifacts=(Artifact("a.safetensors", "ab" * 32, 10),), checksum="ab" * 32, source="run r")
    base.update(kw)
    return Version(**base)  # type: ignore[arg-type]


def test_render_never_reads_markup_or_controls() -> None:
    v = _version(model=HOSTILE, version=HOSTILE, status="canary", run_id=HOSTILE, dataset_path=HOSTILE,
                 metrics={HOSTILE: 1.0}, reproduce=HOSTILE, checks=(Check(HOSTILE, False, HOSTILE),))
    m = ModelState(HOSTILE, None, HOSTILE, HOSTILE, HOSTILE, 10, "aborted", HOSTILE, 1, 0.0)
    e = AuditEntry(1, 0.0, HOSTILE, HOSTILE, HOSTILE, "promote", HOSTILE, HOSTILE, HOSTILE, {}, HOSTILE, None, 0)
    look = render.look_from({"success": Style(color="green")})
    for text in (render.model_line(m, look), render.version_line(v, m, look, wide=True),
                 render.details_text(v, m, [e], {}, look, 0.0), render.history_text(m, [e], look)):  # fmt: skip
        assert SHOWN in text.plain and "\x1b" not in text.plain and "\x07" not in text.plain
    for ask in (render.promote_ask(m, v, {}), render.rollback_ask(m, v, {}), render.canary_ask(m, v, 5, {}),
                render.abort_ask(m)):  # fmt: skip
        assert HOSTILE in ask.title + ask.details  # as data: ConfirmScreen shows it plain (test_confirm.py)


def test_status_looks_differ_without_colour() -> None:
    look = render.look_from({})  # the mono theme / NO_COLOR: no colour at all
    seen = {render.glyph(s) + str(look.of(s)) for s in render.STATUS_LOOK}
    assert len(seen) == len(render.STATUS_LOOK)
    assert [render.glyph(s) for s in ("active", "canary", "aborted", "corrupt", "rolled_back", "inactive")] == [
        "✔", "◌", "⚠", "✖", "↺", "·"]  # fmt: skip


def test_canary_traffic_and_the_deploy_confirmation() -> None:
    assert parse_traffic(" 10 %") == 10
    assert "1 to 99" in str(parse_traffic("100")) and "not a whole percent" in str(parse_traffic("ten"))
    result = {"ok": True, "candidate": {"checkpoint": "best", "epoch": 6, "last_epoch": 106, "is_best": True,
              "is_last": False, "files": [{"name": "model.safetensors", "sha256": "cd" * 32}]},
              "checks": [{"name": "format", "ok": True}, {"name": "load and probe", "ok": True, "skipped": True,
                         "detail": "not run"}], "change": {"to": "v4"}}  # fmt: skip
    ask = deploy_ask(DeployRequest("ternary-vae", "ternary-v5-5"), result)
    assert ask.change == ("run ternary-v5-5, best checkpoint", "ternary-vae v4 (inactive)")
    assert "epoch 6 of 106 · the best, not the last" in ask.details and "traffic: none;" in ask.details
    assert "– load and probe: not run" in ask.details and "1 of 2 passed: ✔ format" in ask.details
    assert f"model.safetensors  sha256 {'cd' * 32}" in ask.details


async def test_deploy_picks_a_run_by_its_best_checkpoint(reg_ws: Workspace) -> None:
    from textual.widgets import DataTable, Static

    from tests.console.registry_fixture import add_checkpoints
    from trainledger.console.screens.run_picker import RunPicker

    add_checkpoints(reg_ws, "ternary-v5-5", 6, 106)
    app = app_on(reg_ws)
    async with app.run_test(size=(120, 30)) as pilot:
        pane = await opened(pilot)
        said = Said(app)
        pane.select_version("ternary-vae", "v3")
        await settle(pilot)
        await pilot.press("D")
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, RunPicker) and picker.query_one("#picker-model", Input).value == "ternary-vae"
        table = picker.query_one(DataTable)
        rows = {k.value: [str(c) for c in table.get_row(k)] for k in table.rows}
        assert rows["ternary-v5-5"][3] == "epoch 6 of 106, not the last"
        assert rows["demo-live"][3] == "no best checkpoint"
        assert table.cursor_row == list(rows).index("ternary-v5-5")  # the newest deployable run
        table.move_cursor(row=list(rows).index("demo-live"))
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is picker and "demo-live has no best checkpoint" in str(
            picker.query_one("#picker-error", Static).content)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is not picker and not said.texts
        await pilot.press("D")  # again, and this time the run: the CLI's dry run in a child process
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: "Deploy ternary-vae: refused" in said, timeout=60)
        assert "✖ size: 392 bytes of weights" in said  # the fixture's weights are too small to deploy
        assert not isinstance(app.screen, ConfirmScreen)
        with Registry(reg_ws) as reg:
            assert len(reg.versions("ternary-vae")) == 3
