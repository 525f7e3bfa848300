"""`trainledger reproduce`: a real tiny CPU run trained again from its run.json alone gives
identical metrics; changed data is refused before anything trains; the comparison names the
largest difference."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from trainledger.engines.provenance import reproduce_cli
from trainledger.engines.provenance.reproduce import compare
from trainledger.engines.training.cli import main as train_main
from trainledger.engines.workspace import Workspace, init_workspace

RUN = "g1"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("repro"))
    assert train_main(["lvm-gru", "--epochs", "1", "--seed", "3", "--run-id", RUN, "--workspace", str(ws.root)]) == 0
    return ws


def run_cli(ws: Workspace, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = reproduce_cli.main([*argv, "--workspace", str(ws.root)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_cpu_run_reproduces_identically(ws: Workspace) -> None:
    code, out, err = run_cli(ws, RUN, "--json")
    assert code == 0, out + err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["identical"] and result["ok"] and result["differing"] == 0
    assert result["values"] > 10 and result["only_original"] == 0 and result["only_new"] == 0
    new = json.loads((ws.run_dir(result["new_run"]) / "run.json").read_text())
    assert new["name"] == f"reproduces {RUN}" and new["status"] == "finished"
    assert new["config"]["seed"] == 3


def test_changed_data_is_refused_before_training(ws: Workspace, tmp_path: Path) -> None:
    run = json.loads((ws.run_dir(RUN) / "run.json").read_text())
    data = Path(run["data"]["path"])
    keep = tmp_path / "keep.npz"
    shutil.copy2(data, keep)
    before = set(ws.run_ids())
    try:
        with open(data, "ab") as f:
            f.write(b"\0")
        code, out, err = run_cli(ws, RUN)
    finally:
        shutil.copy2(keep, data)
    assert code == 1
    assert "refused" in err and "data changed" in err and len(err.strip().splitlines()) == 1
    assert set(ws.run_ids()) == before  # nothing was trained


def test_bad_usage_is_one_line_and_exit_2(ws: Workspace) -> None:
    for argv in (("no-such-run",), (RUN, "--epochs", "0"), ("../etc",)):
        code, _, err = run_cli(ws, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, (argv, err)


def test_compare_names_the_largest_difference(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"step": 0, "loss": 1.0, "time": 5}\n{"step": 1, "loss": 0.5, "acc": 0.1}\nnot json\n')
    b.write_text('{"step": 0, "loss": 1.0, "time": 9}\n{"step": 1, "loss": 0.25, "acc": 0.1000001}\n')
    r = compare(a, b)
    assert not r.identical and r.differing == 2 and r.values == 3 and r.steps == 2
    assert r.largest is not None and r.largest["metric"] == "loss" and r.largest["step"] == 1
    assert (r.largest["original"], r.largest["new"]) == (0.5, 0.25)
    assert compare(a, a).identical
