"""Bad input to `trainledger registry ...`: a clear error, exit 1 or 2, and nothing written.

Each case runs against a registry with one model (v1 active, v2 inactive) and compares
`export --json` and the files under registry/ before and after; cases on a workspace with
no registry check that none appears. Runs come from the real trainer (tests/.../test_cli.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.engines.registry.test_cli import reg, train
from trainledger.engines.registry.store import DB_FILE
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run r1 and a run folder `bare` with only run.json (no checkpoints)."""
    root = tmp_path_factory.mktemp("trained") / "ws"
    init_workspace(root)
    train(root, "r1")
    bare = root / "runs" / "bare"
    bare.mkdir()
    doc = json.loads((root / "runs" / "r1" / "run.json").read_text())
    (bare / "run.json").write_text(json.dumps({**doc, "id": "bare"}))
    return root


@pytest.fixture
def empty(trained: Path, tmp_path: Path) -> Workspace:
    """The trained workspace, no registry yet."""
    dest = tmp_path / "ws"
    shutil.copytree(trained, dest, symlinks=True)
    return Workspace(dest)


@pytest.fixture
def filled(empty: Workspace, capsys: pytest.CaptureFixture[str]) -> Workspace:
    """lvm v1 (active) and v2 (inactive)."""
    for args in (("deploy", "lvm", "--run", "r1", "--no-probe"),
                 ("deploy", "lvm", "--run", "r1", "--checkpoint", "last", "--no-probe"), ("promote", "lvm", "v1")):
        rc, _, err = reg(capsys, empty, *args)
        assert rc == 0, err
    return empty


def state(capsys: pytest.CaptureFixture[str], ws: Workspace) -> tuple[str, list[str]]:
    """What a change would show: the export and the files under registry/ (SQLite's -wal/-shm aside)."""
    _, exported, _ = reg(capsys, ws, "export", "--json")
    files = sorted(str(p.relative_to(ws.root)) for p in ws.registry_dir.rglob("*")
                   if not p.name.endswith(("-wal", "-shm")) and p.name != "changed")  # fmt: skip
    return exported, files


def refused(capsys: pytest.CaptureFixture[str], ws: Workspace, codes: tuple[int, ...], *args: str) -> str:
    """Run a command that must fail with one of `codes`, write nothing, and say why on stderr."""
    before = state(capsys, ws)
    rc, out, err = reg(capsys, ws, *args)
    assert rc in codes, (args, rc, out, err)
    assert err.strip() and "Traceback" not in err, args
    assert "\x00" not in err and "\x1b" not in err
    assert state(capsys, ws) == before, args
    return err


# --------------------------------------------------------------------------- names

BAD_MODELS = ("../x", "a/b", "x\x00y", ".hidden", "..", "", "a b", "x\x1b[31m")


@pytest.mark.parametrize("name", BAD_MODELS)
def test_bad_model_names_are_usage_errors(filled: Workspace, capsys, name: str) -> None:
    for args in (("deploy", name, "--run", "r1", "--no-probe"), ("canary", name, "v2", "--traffic", "10"),
                 ("promote", name), ("abort", name), ("rollback", name), ("list", name), ("show", name, "v1"),
                 ("history", name), ("verify", name), ("prune", name, "--keep", "1"), ("policy", name)):  # fmt: skip
        err = refused(capsys, filled, (2,), *args)
        assert "invalid model name" in err


@pytest.mark.parametrize("name", BAD_MODELS)
def test_bad_model_names_write_no_registry(empty: Workspace, capsys, name: str) -> None:
    refused(capsys, empty, (2,), "deploy", name, "--run", "r1", "--no-probe")
    assert not (empty.registry_dir / DB_FILE).exists()


@pytest.mark.parametrize("version", ("v1/x", "../v1", "v1\x00", ".v1", "v 1"))
def test_bad_versions_are_usage_errors(filled: Workspace, capsys, version: str) -> None:
    for args in (("deploy", "lvm", "--run", "r1", "--no-probe", "--version", version), ("show", "lvm", version),
                 ("canary", "lvm", version, "--traffic", "5"), ("promote", "lvm", version),
                 ("rollback", "lvm", version)):  # fmt: skip
        err = refused(capsys, filled, (2,), *args)
        assert "invalid version" in err


# --------------------------------------------------------------------------- unknown things

def test_unknown_model_or_version_is_a_refusal(filled: Workspace, capsys) -> None:
    for args in (("show", "nope", "v1"), ("canary", "nope", "v1", "--traffic", "10"), ("promote", "nope"),
                 ("rollback", "nope"), ("abort", "nope"), ("history", "nope"), ("verify", "nope"),
                 ("list", "nope"), ("prune", "nope", "--keep", "0"), ("policy", "nope", "--failure-limit", "1")):
        assert "no model 'nope'" in refused(capsys, filled, (1,), *args)
    for args in (("show", "lvm", "v9"), ("canary", "lvm", "v9", "--traffic", "10"), ("promote", "lvm", "v9"),
                 ("rollback", "lvm", "v9")):  # fmt: skip
        err = refused(capsys, filled, (1,), *args)
        assert "no version 'v9'" in err and "v1, v2" in err


def test_refusals_name_the_reason(filled: Workspace, capsys) -> None:
    assert "no canary to abort" in refused(capsys, filled, (1,), "abort", "lvm")
    assert "already" in refused(capsys, filled, (1,), "promote", "lvm", "v1")
    assert "no canary to promote" in refused(capsys, filled, (1,), "promote", "lvm")
    assert "never overwritten" in refused(capsys, filled, (1,), "deploy", "lvm", "--run", "r1", "--no-probe",
                                          "--version", "v1")  # fmt: skip


@pytest.mark.parametrize("traffic", ("0", "100", "-5", "abc", "10.5", "", "1e1", "099x"))
def test_bad_traffic_is_a_usage_error(filled: Workspace, capsys, traffic: str) -> None:
    err = refused(capsys, filled, (2,), "canary", "lvm", "v2", "--traffic", traffic)
    assert "1 to 99" in err


def test_unknown_run_and_a_run_without_checkpoints(empty: Workspace, capsys) -> None:
    err = refused(capsys, empty, (1,), "deploy", "lvm", "--run", "r9", "--no-probe")
    assert "no run 'r9'" in err and "r1" in err
    err = refused(capsys, empty, (1, 2), "deploy", "lvm", "--run", "bare", "--no-probe")
    assert "bare" in err and "checkpoint" in err
    refused(capsys, empty, (2,), "deploy", "lvm", "--run", "../r1", "--no-probe")
    assert not (empty.registry_dir / DB_FILE).exists()


def test_a_path_outside_the_workspace_is_refused(empty: Workspace, capsys, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(empty.run_dir("r1") / "checkpoints" / "best.safetensors", outside / "model.safetensors")
    (empty.root / "inside-link").symlink_to(outside, target_is_directory=True)
    for path in (str(outside), str(empty.root / "inside-link"), str(empty.root / "runs" / ".." / ".." / "outside"),
                 str(empty.root)):  # fmt: skip
        err = refused(capsys, empty, (2,), "deploy", "lvm", "--path", path, "--kind", "lvm-gru", "--no-probe")
        assert "outside the workspace" in err
    refused(capsys, empty, (2,), "deploy", "lvm", "--path", str(empty.root / "missing"), "--no-probe")
    assert not (empty.registry_dir / DB_FILE).exists()


def test_bad_options(filled: Workspace, capsys) -> None:
    refused(capsys, filled, (2,), "deploy", "lvm", "--no-probe")  # neither --run nor --path
    refused(capsys, filled, (2,), "deploy", "lvm", "--run", "r1", "--path", str(filled.root / "runs"))
    refused(capsys, filled, (2,), "deploy", "lvm", "--run", "r1", "--checkpoint", "middle")
    refused(capsys, filled, (2,), "deploy", "lvm", "--run", "r1", "--kind", "lvm-gru")
    assert "--at" in refused(capsys, filled, (2,), "history", "lvm", "--at", "yesterday")
    refused(capsys, filled, (2,), "prune", "lvm", "--keep", "two")
    refused(capsys, filled, (2,), "policy", "lvm", "--max-error-rate", "high")
    refused(capsys, filled, (2,), "frobnicate", "lvm")
    refused(capsys, filled, (2,), "import", "lvm", str(filled.root / "no-such-folder"))


def test_a_failed_check_refuses_the_deploy(empty: Workspace, capsys) -> None:
    folder = empty.root / "junk"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(os.urandom(64))  # not a safetensors file
    err = refused(capsys, empty, (1, 2), "deploy", "lvm", "--path", str(folder), "--kind", "lvm-gru")
    assert "junk" in err or "safetensors" in err
    assert not (empty.registry_dir / DB_FILE).exists()
