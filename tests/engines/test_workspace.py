from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.workspace import (
    MARKER,
    InvalidId,
    NotAWorkspace,
    Workspace,
    classify_change,
    init_workspace,
    list_runs,
    open_workspace,
    read_run_info,
    resolve_workspace,
    validate_id,
)


@pytest.mark.parametrize("good", ["run-1", "a", "2026.11.22_x", "A" * 128])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a b", "A" * 129, "é", "a\x00b", "run\n"]
)
def test_invalid_ids_never_become_paths(bad: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidId):
        validate_id(bad)
    with pytest.raises(InvalidId):
        Workspace(tmp_path).run_dir(bad)


def test_init_creates_layout_and_is_idempotent(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    for sub in ("runs", "san-training", "registry"):
        assert (ws.root / sub).is_dir()
    assert (ws.root / MARKER).is_file() and ws.ports_file.is_file()
    marker = (ws.root / MARKER).read_bytes()
    init_workspace(tmp_path / "ws")
    assert (ws.root / MARKER).read_bytes() == marker
    assert open_workspace(ws.root) == ws


def test_open_refuses_a_folder_without_marker(tmp_path: Path) -> None:
    with pytest.raises(NotAWorkspace):
        open_workspace(tmp_path)


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    a = init_workspace(tmp_path / "a")
    b = init_workspace(tmp_path / "b")
    c = init_workspace(tmp_path / "c")
    assert resolve_workspace(str(a.root), {"TRAINLEDGER_WORKSPACE": str(b.root)}, c.root) == (a, "argument")
    assert resolve_workspace(None, {"TRAINLEDGER_WORKSPACE": str(b.root)}, c.root) == (b, "environment")
    assert resolve_workspace(None, {}, c.root) == (c, "current folder")
    ws, origin = resolve_workspace(None, {}, tmp_path)
    assert origin == "default" and (ws.root / MARKER).is_file()
    assert str(ws.root).startswith(str(tmp_path / "xdg"))


def test_explicit_folder_with_files_but_no_marker_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotAWorkspace):
        resolve_workspace(str(tmp_path), {}, tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_run_info_from_writer_and_lost_status(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path)
    with MetricsWriter(ws, run_id="r1", model="m", directions={"val/cov": "max"}) as w:
        w.log({"val/cov": 0.5}, step=0)
        info = read_run_info(w.dir)
        assert info.status == "running" and info.directions == {"val/cov": "max"}
    assert read_run_info(ws.run_dir("r1")).status == "finished"

    # A run that says "running" but whose process is gone is shown as lost.
    code = (
        "import sys; from trainledger.engines.metrics.writer import MetricsWriter\n"
        f"w = MetricsWriter({str(ws.root)!r}, run_id='r2'); w.log({{'loss': 1.0}})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert read_run_info(ws.run_dir("r2")).status == "lost"
    assert [r.id for r in list_runs(ws)] == ["r1", "r2"]


def test_failed_run_records_error(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path)
    with pytest.raises(RuntimeError):
        with MetricsWriter(ws, run_id="bad") as w:
            raise RuntimeError("boom")
    info = read_run_info(w.dir)
    assert info.status == "failed" and "boom" in (info.error or "")


def test_bad_run_json_still_lists(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path)
    (ws.runs_dir / "broken").mkdir()
    (ws.runs_dir / "broken" / "run.json").write_text("{nope")
    (ws.runs_dir / "bare").mkdir()
    infos = {r.id: r for r in list_runs(ws)}
    assert "unreadable" in (infos["broken"].problem or "")
    assert infos["bare"].problem == "no run.json"


def test_writer_writes_nan_as_null(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path)
    with MetricsWriter(ws, run_id="n") as w:
        w.log({"loss": float("nan"), "acc": float("inf"), "ok": 1.0}, step=3, epoch=0.5)
        w.event("phase", "beta warm-up", step=3)
    line = (w.dir / "metrics.jsonl").read_text().strip()
    assert '"loss":null' in line and '"acc":null' in line and '"step":3' in line
    assert '"kind":"phase"' in (w.dir / "events.jsonl").read_text()


def test_classify_change(tmp_path: Path) -> None:
    root = tmp_path
    def c(*p):
        return classify_change(root, root.joinpath(*p))
    assert c("runs", "r1", "metrics.jsonl").kind == "metrics"
    assert c("runs", "r1", "metrics.jsonl").run_id == "r1"
    assert c("runs", "r1", "events.jsonl").kind == "events"
    assert c("runs", "r1", "run.json").kind == "run"
    assert c("runs", "r1").kind == "runs"
    assert c("runs", "r1", ".run.json.abc.tmp") is None
    assert c("runs", "r1", "checkpoints", "best.safetensors") is None
    assert c(".trainledger", "cache", "x") is None
    assert c("san-training", "s.jsonl").kind == "capture"
    assert c("registry", "changed").kind == "registry"
    assert c("registry", "registry.db-wal") is None
    assert c("ports.toml").kind == "ports"
    assert c("ports.json").kind == "ports"  # an older workspace's file
    assert c(".ports.toml.abc.tmp") is None
    assert classify_change(root, "/elsewhere/file") is None


def test_atomic_writes_get_the_usual_file_mode(tmp_path: Path) -> None:
    from trainledger.engines.workspace import _FILE_MODE, atomic_write_bytes

    target = tmp_path / "x.json"
    atomic_write_bytes(target, b"{}")
    assert target.stat().st_mode & 0o777 == _FILE_MODE
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------ typos create nothing


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "TRAINLEDGER_WORKSPACE"}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "trainledger", *args], capture_output=True,
                          text=True, env=full, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.mark.parametrize(
    "args,env_var",
    [(["runs", "{typo}"], False), (["{typo}"], False), (["runs"], True), ([], True)],
    ids=["runs-arg", "open-arg", "runs-env", "open-env"],
)
def test_reading_commands_never_create_a_workspace(
    tmp_path: Path, args: list[str], env_var: bool
) -> None:
    typo = tmp_path / "some" / "typo"
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    if env_var:
        env["TRAINLEDGER_WORKSPACE"] = str(typo)
    done = _cli([a.replace("{typo}", str(typo)) for a in args], env)
    assert done.returncode == 2, done.stderr
    assert str(typo) in done.stderr and "trainledger init" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "some").exists(), "a typo left folders behind"


def test_reading_an_empty_folder_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _cli(["runs", str(empty)], {"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert done.returncode == 2 and "trainledger init" in done.stderr
    assert list(empty.iterdir()) == []


def test_runs_without_any_workspace_creates_no_default(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "trainledger", "runs"], capture_output=True,
                          text=True, env={**os.environ, **env}, cwd=tmp_path,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2 and "trainledger init" in done.stderr
    assert not (tmp_path / "xdg").exists()


def test_writing_commands_still_make_a_new_folder_a_workspace(tmp_path: Path) -> None:
    ws, origin = resolve_workspace(str(tmp_path / "new"), {}, tmp_path)
    assert origin == "argument" and (ws.root / MARKER).is_file()


@pytest.mark.parametrize("verb", ["status", "stop"])
def test_capture_status_and_stop_never_create_a_workspace(tmp_path: Path, verb: str) -> None:
    typo = tmp_path / "typo"
    done = _cli(["capture", verb, "--workspace", str(typo)], {"XDG_DATA_HOME": str(tmp_path / "x")})
    assert done.returncode == 2 and "trainledger init" in done.stderr
    assert not typo.exists()
