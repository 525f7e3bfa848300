"""trainledger report's CLI, store and renderings on a real tiny vocab run and its registered
version: saved where verify finds it, json/md/text output, exit 2 on bad usage, checks
unavailable said so; a hostile metric name cannot break the Markdown table or reach the
terminal; a changed checkpoint or data file is no longer proven; field_share of artifacts."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from trainledger.engines.provenance import report_cli
from trainledger.engines.provenance.derive import derive_key
from trainledger.engines.provenance.model import REPORT_SCHEMA, Report
from trainledger.engines.provenance.render import to_markdown, to_text
from trainledger.engines.provenance.store import load_report
from trainledger.engines.provenance.subject import resolve
from trainledger.engines.registry.cli import main as registry_main
from trainledger.engines.training.cli import main as train_main
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow
HOSTILE = "val/a|b`c`\x1b]2;pwned\x07loss"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("report_cli") / "ws")
    assert train_main(["vocab", "--epochs", "2", "--run-id", "v", "--workspace", str(ws.root)]) == 0
    assert registry_main(["deploy", "voc", "--run", "v", "--version", "v1", "--no-probe", "--reason", "t",
                          "--workspace", str(ws.root)]) == 0  # fmt: skip
    hostile = ws.runs_dir / "hostile"
    hostile.mkdir()
    (hostile / "run.json").write_text(json.dumps({
        "schema": "trainledger-run/1", "id": "hostile", "name": "x\x1b[2J", "status": "finished",
        "metrics": {HOSTILE: {"direction": "min"}}, "primary_metric": HOSTILE,
    }))  # fmt: skip
    (hostile / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "epoch": s, HOSTILE: v}) + "\n"
                                                   for s, v in ((1, 0.5), (2, 0.25), (3, 0.375))))  # fmt: skip
    return ws


def cli(ws: Workspace, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = report_cli.main([*argv, "--workspace", str(ws.root)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def cells(row: str) -> list[str]:
    """A Markdown table row's cells, split on the pipes that are not escaped."""
    return re.split(r"(?<!\\)\|", row)[1:-1]


def test_report_of_a_run_is_saved_and_printed(ws: Workspace) -> None:
    code, out, err = cli(ws, "v")
    assert (code, err) == (0, "")
    stored = load_report(ws, resolve(ws, "v"))
    assert stored is not None and (ws.run_dir("v") / "report.json").is_file()
    assert stored.subject == "v" and stored.kind == "vocab"
    by = {c.key: c for c in stored.claims}
    assert by["parameters"].proven and f"  {by['parameters'].value}  " in out.replace("parameters", "", 1)
    assert "saved runs/v/report.json" in out and "reproduce: trainledger train vocab" in out
    assert stored.extra["reproduce"] == by["reproduce"].value
    assert all(isinstance(c, dict) and c.get("name") for c in stored.checks)  # the runner's results, as JSON
    assert "checks:" in out


def test_a_versions_report_goes_to_the_registry(ws: Workspace) -> None:
    code, out, err = cli(ws, "voc@v1", "--format", "json")
    assert code == 0 and "saved registry/reports/voc/v1.json" in err
    doc = json.loads(out)
    assert doc["schema"] == REPORT_SCHEMA and doc["subject"] == "voc@v1"
    assert Report.from_json(doc) == load_report(ws, resolve(ws, "voc@v1"))
    by = {c["key"]: c for c in doc["claims"]}
    assert by["deployed_epoch"]["value"] == resolve(ws, "voc@v1").version.epoch
    assert by["parameters"]["evidence"][0]["path"].startswith("registry/artifacts/")


def test_no_save_no_checks_and_checks_not_available(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    target = ws.registry_dir / "reports" / "voc" / "v1.json"
    target.unlink(missing_ok=True)
    code, out, _ = cli(ws, "voc@v1", "--no-save", "--no-checks", "--format", "json")
    assert code == 0 and not target.exists()
    doc = json.loads(out)
    assert doc["checks"] == [] and doc["extra"]["checks_note"] == "checks: not run (--no-checks)"
    monkeypatch.setitem(sys.modules, "trainledger.engines.checks.runner", None)  # as if H3's module were absent
    code, out, _ = cli(ws, "v", "--no-save")
    assert code == 0 and "checks: not available" in out


@pytest.mark.parametrize("argv", [["nope"], ["../x"], ["voc@v9"], ["v", "--format", "pdf"], []])
def test_bad_usage_is_one_line_and_exit_2(ws: Workspace, argv: list[str]) -> None:
    code, out, err = cli(ws, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("trainledger report: ")


def test_a_missing_workspace_is_exit_2(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert report_cli.main(["v", "--workspace", str(tmp_path / "none")], out=out, err=err) == 2
    assert not (tmp_path / "none").exists() and err.getvalue().count("\n") == 1


def test_md_escapes_a_hostile_metric_name(ws: Workspace) -> None:
    code, out, _ = cli(ws, "hostile", "--format", "md", "--no-save")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert rows and all(len(cells(r)) == len(cells(rows[0])) for r in rows[:2])
    claim_rows = [r for r in rows if len(cells(r)) == 5]
    best = next(r for r in claim_rows if cells(r)[0].strip().startswith("best."))
    assert r"a\|b\`c\`␛" in best and cells(best)[1].strip() == "0.25"
    assert all(len(cells(r)) == 5 for r in claim_rows)  # no cell split by a name
    text = to_text(Report.from_json(json.loads(cli(ws, "hostile", "--format", "json", "--no-save")[1])))
    assert "\x1b" not in text and "\x07" not in text and "␛" in text


def test_md_has_the_claims_table_checks_and_the_command(ws: Workspace) -> None:
    report = load_report(ws, resolve(ws, "v"))
    assert report is not None
    md = to_markdown(report)
    assert "| claim | value | evidence file | sha256 | how |" in md
    param = next(c for c in report.claims if c.key == "parameters")
    row = next(line for line in md.splitlines() if line.startswith("| parameters |"))
    assert cells(row)[1].strip() == str(param.value) and param.evidence[0].sha256[:12] in row
    assert "### Checks" in md and "```sh\ntrainledger train vocab" in md


def test_changed_checkpoint_and_data_are_no_longer_proven(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    assert train_main(["vocab", "--epochs", "1", "--run-id", "t", "--workspace", str(ws.root)]) == 0
    assert derive_key(ws, "t", "parameters").proven and derive_key(ws, "t", "data_sha256").proven
    ckpt = ws.run_dir("t") / "checkpoints" / "best.safetensors"
    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 0xFF  # a byte of a tensor; the header still parses
    ckpt.write_bytes(bytes(data))
    for key in ("parameters", "checkpoint"):
        got = derive_key(ws, "t", key)
        assert not got.proven and "does not match checkpoints/best.json" in got.reason
    npz = Path(json.loads((ws.run_dir("t") / "run.json").read_text())["data"]["path"])
    npz.write_bytes(npz.read_bytes() + b"\0")
    got = derive_key(ws, "t", "data_sha256")
    assert not got.proven and "the data changed since training" in got.reason


def test_field_share_of_json_and_jsonl_artifacts(ws: Workspace, tmp_path: Path) -> None:
    saved = tmp_path / "model.json"
    saved.write_text(json.dumps({"audio_frames": [{"gesture_token": 3}, {"x": 1}, {"gesture_token": None},
                                                  {"gesture_token": 0}]}))  # fmt: skip
    got = derive_key(ws, "v", "field_share.audio_frames[].gesture_token", saved)
    assert got.proven and got.value == 0.5 and got.evidence[0].path == str(saved)
    assert got.evidence[0].how == "2 of 4 records carry audio_frames[].gesture_token"
    lines = tmp_path / "frames.jsonl"
    lines.write_text("".join(json.dumps({"frame": i}) + "\n" for i in range(1500)))
    none = derive_key(ws, "v", "field_share.gesture_token", lines)  # seed 001: 0 of 1,500
    assert none.proven and none.value == 0.0 and "0 of 1500" in none.evidence[0].how
    nested = derive_key(ws, "v", "field_share.frame", lines)
    assert nested.value == 1.0
    missing = derive_key(ws, "v", "field_share.x", tmp_path / "gone.json")
    assert not missing.proven and "no such file" in missing.reason
