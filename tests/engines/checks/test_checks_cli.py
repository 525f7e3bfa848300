"""`trainledger check` (engines/checks/cli.py main) and the runner's rules, on run folders written
through MetricsWriter as the trainer writes them (no training here: runs_checks trains)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainledger.engines.checks import runner
from trainledger.engines.checks.base import CHECKS, CheckResult, check
from trainledger.engines.checks.cli import main
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.provenance.subject import resolve
from trainledger.engines.workspace import Workspace

FILE_CHECKS = {"field_preservation", "lvm_dataset", "loss_dominance", "schedule_smoothness",
               "best_vs_deployed_epoch", "coverage_logged", "data_pool"}  # fmt: skip


def dominated_run(ws: Workspace, run_id: str = "lvm1", ratio: float = 32.0) -> str:
    """An lvm run's logs as loop.Trainer writes them: balance rows every 5 steps, one event."""
    config = {"epochs": 1, "lr": 0.001, "balance_every": 5, "dominance_factor": 10.0}
    with MetricsWriter(ws, run_id, model="lvm-amn", config=config, primary_metric="val/cosine",
                       directions={"val/cosine": "max"}) as run:  # fmt: skip
        run.log({"val/cosine": 0.5, "val/loss": 1.0}, step=0, epoch=0)
        for step in (5, 10):
            mse, nce = 0.001, 0.001 * (ratio if step == 10 else 2.0)
            run.log({"train/loss": 0.2, "lr": 0.001, "infonce_weight": 0.05, "balance/mse/grad_norm": mse,
                     "balance/mse/share": mse / (mse + nce), "balance/infonce/grad_norm": nce,
                     "balance/infonce/share": nce / (mse + nce)}, step=step, epoch=step / 10)  # fmt: skip
        if ratio >= 10:
            run.event("loss_dominance", f"infonce gradient {ratio:.3g}x larger than mse", step=10, epoch=1.0,
                      dominant="infonce", dominated="mse", ratio=ratio, grad_norms={"infonce": 0.032, "mse": 0.001},
                      factor=10.0)  # fmt: skip
        run.log({"val/cosine": 0.6, "val/loss": 0.9}, step=10, epoch=1)
    return run_id


def cli(capsys: pytest.CaptureFixture[str], ws: Workspace, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([*args, "--workspace", str(ws.root)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_runner_finds_every_check_module() -> None:
    names = set(runner.check_names())
    assert FILE_CHECKS <= names
    assert not runner.load_checks()  # every module imported


def test_text_lines_and_exit_status(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    dominated_run(ws)
    rc, out, err = cli(capsys, ws, "lvm1")
    assert rc == 1 and not err
    lines = out.splitlines()
    assert all(line.split(" ", 1)[0] in ("PASS", "FAIL", "SKIP") for line in lines)
    by_name = {line.split(" ")[1]: line for line in lines}
    assert by_name["loss_dominance"].startswith("FAIL loss_dominance ratio=32,dominant=infonce,dominated=mse ")
    assert by_name["schedule_smoothness"].startswith("PASS ")
    assert by_name["lvm_dataset"].startswith("SKIP lvm_dataset - no data path recorded")
    assert "field_preservation" not in by_name and "data_pool" not in by_name  # nothing asked, no pool
    rc, out, _ = cli(capsys, ws, "lvm1", "--only", "schedule_smoothness")
    assert rc == 0 and len(out.splitlines()) == 1 and out.startswith("PASS schedule_smoothness lr=0 ")


def test_balanced_logs_pass(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    dominated_run(ws, "lvm2", ratio=3.0)
    rc, out, _ = cli(capsys, ws, "lvm2", "--only", "loss_dominance")
    assert rc == 0 and out.startswith("PASS loss_dominance ratio=3,")


def test_json_output(ws: Workspace, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    dominated_run(ws)
    art = tmp_path / "model.json"
    art.write_text(json.dumps({"audio_frames": [{"t": i} for i in range(1500)]}))
    rc, out, _ = cli(capsys, ws, "lvm1", "--json", "--artifact", str(art), "--fields", "audio_frames[].gesture_token")
    assert rc == 1
    doc = json.loads(out)
    assert doc["schema"] == "trainledger-checks/1" and doc["subject"] == "lvm1" and doc["kind"] == "lvm-amn"
    assert doc["ok"] is False
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["field_preservation"]["ok"] is False and checks["field_preservation"]["figure"] == 0.0
    assert checks["field_preservation"]["reason"] == "0 of 1,500 audio_frames[] carry gesture_token"
    assert set(checks["loss_dominance"]) == {"name", "ok", "figure", "reason", "details", "evidence"}


@pytest.mark.parametrize("args, says", [
    (["nope"], "no run 'nope'"),
    (["../x"], ""),
    (["lvm1", "--only", "bogus"], "no check 'bogus'; checks: "),
    (["lvm1", "--fields", "a"], "--fields needs --artifact"),
    (["lvm1", "--artifact", "a.json"], "--artifact needs --fields"),
    (["lvm1", "--frobnicate"], "unrecognized arguments"),
    (["m@v1"], ""),
])  # fmt: skip
def test_bad_usage_is_one_line_and_exit_2(ws: Workspace, capsys: pytest.CaptureFixture[str], args: list[str],
                                          says: str) -> None:  # fmt: skip
    dominated_run(ws)
    rc, out, err = cli(capsys, ws, *args)
    assert rc == 2 and not out
    assert len(err.strip().splitlines()) == 1 and err.startswith("trainledger check: ") and says in err
    assert "Traceback" not in err


def test_no_workspace_is_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["r1", "--workspace", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "none").exists()  # never created
    assert "trainledger check: " in capsys.readouterr().err


def test_only_a_check_of_another_kind_is_skipped_with_why(ws: Workspace) -> None:
    with MetricsWriter(ws, "tv", model="ternary-vae") as run:
        run.log({"train/loss": 1.0, "lr": 0.001, "beta": 0.0}, step=1, epoch=0.5)
    [r] = runner.run_checks(ws, resolve(ws, "tv"), only="lvm_dataset")
    assert r.ok is None and r.reason == "applies to lvm-*; tv is ternary-vae"


@pytest.fixture
def temporary_checks():
    """Checks registered by a test, and removed after it."""
    added: list[str] = []

    def add(name: str, fn, **kw) -> None:
        check(name, **kw)(fn)
        added.append(name)

    yield add
    for name in added:
        CHECKS.pop(name, None)


def test_an_exception_in_a_check_is_a_failed_result(ws: Workspace, temporary_checks) -> None:
    def boom(ctx):
        raise KeyError("audio_frames")

    def wrong_type(ctx):
        return {"ok": True}

    def renamed(ctx):
        return CheckResult("other_name", True, 1, "fine")

    temporary_checks("zz_boom", boom)
    temporary_checks("zz_wrong", wrong_type)
    temporary_checks("zz_renamed", renamed)
    dominated_run(ws)
    results = {r.name: r for r in runner.run_checks(ws, resolve(ws, "lvm1"))}
    assert results["zz_boom"].ok is False and results["zz_boom"].reason == "the check raised KeyError: 'audio_frames'"
    assert results["zz_wrong"].ok is False and "not a CheckResult" in results["zz_wrong"].reason
    assert results["zz_renamed"].ok is True  # kept under its registered name
    assert "other_name" not in results


def test_torch_checks_are_skipped_without_torch(ws: Workspace, temporary_checks) -> None:
    calls = []
    temporary_checks("zz_model", lambda ctx: calls.append(1) or CheckResult("zz_model", True, 1, "ran"),
                     needs_torch=True)  # fmt: skip
    dominated_run(ws)
    subject = resolve(ws, "lvm1")
    [r] = runner.run_checks(ws, subject, only="zz_model", allow_torch=False)
    assert r.ok is None and "torch" in r.reason and not calls
    [r] = runner.run_checks(ws, subject, only="zz_model")
    assert r.ok is True and calls == [1]


def test_file_checks_import_no_torch() -> None:
    code = ("import sys\n"
            "import trainledger.engines.checks.runner as r\n"
            "import trainledger.engines.checks.cli\n"
            "for m in ('data_checks', 'lvm_checks', 'log_checks', 'epoch_checks', 'pool_checks'):\n"
            "    __import__('trainledger.engines.checks.' + m)\n"
            "print('torch' in sys.modules)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_fifo_for_a_log_fails_the_checks_that_read_it(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    dominated_run(ws)
    metrics = ws.run_dir("lvm1") / "metrics.jsonl"
    metrics.unlink()
    os.mkfifo(metrics)
    rc, out, err = cli(capsys, ws, "lvm1")
    assert rc == 1 and not err
    lines = {line.split(" ")[1]: line for line in out.splitlines()}
    for name in ("loss_dominance", "schedule_smoothness", "best_vs_deployed_epoch"):
        assert lines[name].startswith(f"FAIL {name} - metrics.jsonl: ") and "not a regular file" in lines[name]
