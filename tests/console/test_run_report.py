"""The run report screen (enter on a run in Curves) against real report files and real verification.

A report made from the run's files: its claims verified; a checkpoint changed after the report:
the claim resting on it stale, naming the file; the stored checks with pass/fail/skip, figure and
reason; hostile keys, values and reasons shown as text; a run without a report says how to make
one; the screen scrolls at 80x24 and fits at 200x50; Escape closes it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from textual.containers import VerticalScroll
from textual.widgets import Static

from tests.console.conftest import CLOCK, settle
from tests.console.registry_fixture import add_checkpoints
from trainledger.console.app import TrainledgerApp
from trainledger.console.panes.curves import CurvesPane
from trainledger.console.provenance import Assessment
from trainledger.console.screens.help import HelpScreen
from trainledger.console.screens.run_report import RunReportScreen
from trainledger.console.watcher import report_messages
from trainledger.console.widgets import report_render as render
from trainledger.console.widgets.runlist import RunList
from trainledger.engines.provenance.model import Claim, Evidence, Report
from trainledger.engines.provenance.subject import resolve
from trainledger.engines.workspace import Workspace, atomic_write_json

RUN = "ternary-v5-5"
HOSTILE = "[/]x [link=x]y\x1b]2;title\x07"
SHOWN = "[/]x [link=x]y␛]2;title␇"
CHECKS = (
    {"name": "best_vs_deployed_epoch", "ok": False, "figure": 100, "reason": "deployed epoch 106, best epoch 6",
     "details": {}, "evidence": []},
    {"name": "schedule_smoothness", "ok": True, "figure": 0.0005, "reason": "largest LR jump 0.0005 per epoch",
     "details": {}, "evidence": []},
    {"name": "latency", "ok": None, "figure": None, "reason": "needs the model (trainledger check)",
     "details": {}, "evidence": []},
)  # fmt: skip


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checkpoint_claim(ws: Workspace, run_id: str) -> Claim:
    """A report-only claim resting on the best checkpoint's bytes."""
    path = ws.run_dir(run_id) / "checkpoints" / "best.safetensors"
    rel = path.relative_to(ws.root).as_posix()
    return Claim("checkpoint", rel, (Evidence(rel, sha(path), "the best-of-run checkpoint"),), label="checkpoint")


def derived(ws: Workspace, label: str) -> list[Claim]:
    """Every claim the files allow for `label`, as `trainledger report` stores them."""
    from trainledger.engines.provenance.derive import derive_claims

    return list(derive_claims(ws, resolve(ws, label)))


def write_report(path: Path, subject: str, claims: list[Claim], checks: tuple = CHECKS, **extra: object) -> Path:
    report = Report(subject, "ternary-vae", CLOCK - 600, tuple(claims), tuple(checks), dict(extra))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, report.to_json())
    return path


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def ws(frozen_ws: Workspace) -> Workspace:
    add_checkpoints(frozen_ws, RUN, best_epoch=6, last_epoch=106)
    return frozen_ws


def app_on(ws: Workspace, **kwargs: object) -> TrainledgerApp:
    app = TrainledgerApp(ws, watch=kwargs.pop("watch", False), clock=lambda: CLOCK, **kwargs)  # type: ignore[arg-type]
    app.animation_level = "none"
    return app


async def until(pilot, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await pilot.pause(0.02)


def shown(screen: RunReportScreen, width: int = 150) -> str:
    """What the screen's sections say, as plain text (rendered by Rich, as the terminal gets it)."""
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    for static in screen.query(Static):
        if static.display:
            console.print(static.content)
    return console.export_text()


async def open_report(pilot, run_id: str = RUN) -> RunReportScreen:  # type: ignore[no-untyped-def]
    await settle(pilot)
    pane = pilot.app.query_one(CurvesPane)
    assert pane.show_run(run_id)
    await pilot.pause()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, RunReportScreen))
    screen = pilot.app.screen
    await until(pilot, lambda: screen.verified > 0)
    await pilot.pause()
    return screen


async def test_a_verified_claim_and_a_changed_checkpoint_stale(ws: Workspace) -> None:
    claims = [c for c in derived(ws, RUN) if c.proven and "checkpoints/" not in " ".join(e.path for e in c.evidence)]
    assert claims, "the run's files allow some claim"
    write_report(ws.run_dir(RUN) / "report.json", RUN, [*claims, checkpoint_claim(ws, RUN)],
                 reproduce="trainledger train ternary-vae --epochs 400")  # fmt: skip
    flip_last_byte(ws.run_dir(RUN) / "checkpoints" / "best.safetensors")
    async with app_on(ws).run_test(size=(120, 40)) as pilot:
        screen = await open_report(pilot)
        a = screen.assessment
        assert a is not None and a.verdicts is not None and a.error is None
        states = {v.claim.key: v.state for v in a.verdicts}
        assert states["checkpoint"] == "stale"
        assert all(states[c.key] == "verified" for c in claims), states
        text = shown(screen)
        assert "✓ verified" in text and "⚠ stale" in text
        assert f"changed: runs/{RUN}/checkpoints/best.safetensors" in text
        assert f"← runs/{RUN}/checkpoints/best.safetensors · sha256" in text  # the evidence it rests on
        for part in ("✗ fail", "best_vs_deployed_epoch", "deployed epoch 106, best epoch 6", "✓ pass", "- skip",
                     "needs the model", "reproduce", "trainledger train ternary-vae --epochs 400",
                     "1 stale", "0 contradicted", "checks: 1 pass, 1 fail, 1 skipped"):  # fmt: skip
            assert part in text, part
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, RunReportScreen)


def test_claims_show_checking_until_their_verdicts_come() -> None:
    claim = Claim("parameters", 1234, (Evidence("runs/r/checkpoints/best.safetensors", "ab" * 32, "counted"),))
    console = Console(width=100, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render.claims_table([claim], None, render.Look(), 100))
    text = console.export_text()
    assert "… checking…" in text and "claimed 1,234" in text and "verified" not in text
    a = Assessment(RUN, Report(RUN, None, 0.0, (claim,)))
    assert "checking…" in render.counts_text(a, render.Look()).plain


async def test_hostile_keys_values_and_reasons_are_text(ws: Workspace) -> None:
    ckpt = checkpoint_claim(ws, RUN)
    hostile = [
        Claim(HOSTILE, HOSTILE, (Evidence(HOSTILE, "00" * 32, HOSTILE),), label=HOSTILE),
        Claim(f"best.{HOSTILE}", None, reason=HOSTILE),
        Claim("checkpoint", ckpt.value, ckpt.evidence),
    ]
    checks = ({"name": HOSTILE, "ok": False, "figure": HOSTILE, "reason": HOSTILE},)
    write_report(ws.run_dir(RUN) / "report.json", HOSTILE, hostile, checks, **{HOSTILE: HOSTILE})
    app = app_on(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_report(pilot)
        text = shown(screen)
        assert SHOWN in text and "\x1b" not in text
        assert screen.assessment is not None and screen.assessment.verdicts is not None
        states = [v.state for v in screen.assessment.verdicts]
        assert states[0] == "stale" and states[1] == "unverified"  # the hostile path is no file of the run
        await pilot.press("r")  # verify again: still alive
        await until(pilot, lambda: screen.verified > 1)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RunReportScreen) and app.query_one(CurvesPane).is_mounted


async def test_a_run_without_a_report_says_how_to_make_one(ws: Workspace) -> None:
    async with app_on(ws).run_test(size=(80, 24)) as pilot:
        screen = await open_report(pilot, "lvm-amn-mse")
        text = shown(screen)
        assert "No stored report for lvm-amn-mse" in text and "trainledger report lvm-amn-mse" in text
        assert not screen.query_one("#report-claims", Static).display


@pytest.mark.parametrize(("size", "scrolls"), [((80, 24), True), ((200, 50), False)])
async def test_80x24_scrolls_and_200x50_fits(ws: Workspace, size: tuple[int, int], scrolls: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("NO_COLOR", "1")  # the badges' words carry the states
    claims = [Claim(f"last.m{i}", i * 0.5, reason="no file says so") for i in range(3)]
    write_report(ws.run_dir(RUN) / "report.json", RUN, [*claims, checkpoint_claim(ws, RUN)], CHECKS[:1])
    app = app_on(ws)
    async with app.run_test(size=size) as pilot:
        assert app.no_color
        screen = await open_report(pilot)
        await pilot.press("6")  # the report's own tab
        await pilot.pause()
        box = screen.query_one("#report-scroll", VerticalScroll)
        assert (box.max_scroll_y > 0) is scrolls
        assert box.size.width <= size[0]
        text = shown(screen, width=box.size.width)
        assert "? unverified" in text and "no file says so" in text and "✗ fail" in text


async def test_help_lists_the_report_keys(ws: Workspace) -> None:
    app = app_on(ws)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = {(r[0], r[1], r[2]) for r in app.screen.rows}
        assert ("Curves", "enter", "Open the run") in rows
        assert ("Run", "esc, q", "Close the run screen") in rows and ("Run", "r", "Verify again") in rows
        for key, said in (("6", "Report tab"), ("/", "Search the log"), ("n", "Next match"), ("R", "Rename the run")):
            assert ("Run", key, said) in rows
        assert any(b.id == "curves.open_run" for b in CurvesPane.BINDINGS)


async def test_a_report_written_while_open_is_shown(ws: Workspace) -> None:
    app = app_on(ws, watch=True)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_report(pilot)
        assert screen.assessment is not None and screen.assessment.report is None
        write_report(ws.run_dir(RUN) / "report.json", RUN, [checkpoint_claim(ws, RUN)], ())
        await until(pilot, lambda: screen.assessment is not None and screen.assessment.report is not None)
        assert app.query_one(RunList).cursor_run == RUN


def test_a_written_report_is_a_change_for_its_subject(tmp_path: Path) -> None:
    paths = [tmp_path / "runs" / RUN / "report.json", tmp_path / "registry" / "reports" / "m" / "v1.json",
             tmp_path / "runs" / RUN / "metrics.jsonl", tmp_path / "registry" / "reports" / "m"]  # fmt: skip
    said = report_messages(tmp_path, [str(p) for p in paths])
    assert [m.subject for m in said] == ["m@v1", RUN]  # type: ignore[attr-defined]


def test_verifying_as_the_console_does_loads_no_torch(ws: Workspace) -> None:
    write_report(ws.run_dir(RUN) / "report.json", RUN, [*derived(ws, RUN), checkpoint_claim(ws, RUN)])
    code = ("import sys\nfrom trainledger.console.provenance import assess\n"
            "from pathlib import Path\nfrom trainledger.engines.workspace import Workspace\n"
            f"a = assess(Workspace(Path(sys.argv[1])), {RUN!r})\n"
            "print(a.error, a.verdicts is not None, 'torch' in sys.modules)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(ws.root)], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["None", "True", "False"], out.stderr
