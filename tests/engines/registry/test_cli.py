"""`trainledger registry ...` as a user and a script use it, on runs made by the real trainer.

Two tiny `lvm-gru` runs are trained once per module (seconds); each test works on its own
copy of that workspace. A few checks go through real processes (`python -m ...`); the rest
call `main([...])` in this process to stay fast. Nothing of the engine is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from trainledger.engines.registry.cli import STATUS_GLYPHS, main
from trainledger.engines.registry.store import DB_FILE
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow

ENV = {**os.environ, "TRAINLEDGER_USER": "tester"}


def train(root: Path, run_id: str, seed: int = 0, epochs: int = 2) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trainledger", "train", "lvm-gru", "--epochs", str(epochs), "--seed", str(seed),
         "--workspace", str(root), "--run-id", run_id],
        capture_output=True, text=True, timeout=180, env=ENV,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


@pytest.fixture(autouse=True)
def _one_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit names the same user in this process and in the child processes."""
    monkeypatch.setenv("TRAINLEDGER_USER", "tester")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with two finished runs, r1 and r2 (never changed: tests copy it)."""
    root = tmp_path_factory.mktemp("trained") / "ws"
    init_workspace(root)
    train(root, "r1", seed=0)
    train(root, "r2", seed=1)
    return root


@pytest.fixture
def ws(trained: Path, tmp_path: Path) -> Workspace:
    dest = tmp_path / "ws"
    shutil.copytree(trained, dest, symlinks=True)
    return Workspace(dest)


def reg(capsys: pytest.CaptureFixture[str], ws: Workspace | Path, *args: str) -> tuple[int, str, str]:
    """Run one command in this process: (exit status, stdout, stderr)."""
    root = ws.root if isinstance(ws, Workspace) else ws
    capsys.readouterr()
    rc = main([*args, "--workspace", str(root)])
    out, err = capsys.readouterr()
    return rc, out, err


def reg_json(capsys: pytest.CaptureFixture[str], ws: Workspace | Path, *args: str) -> dict:
    rc, out, err = reg(capsys, ws, *args, "--json")
    assert rc == 0, err
    return json.loads(out)


def cli(*args: str, module: str = "trainledger.console.cli") -> subprocess.CompletedProcess[str]:
    prefix = ["registry"] if module == "trainledger.console.cli" else []
    return subprocess.run([sys.executable, "-m", module, *prefix, *args], capture_output=True, text=True,
                          timeout=120, env=ENV)  # fmt: skip


def between(a: float, b: float) -> float:
    assert a < b
    return (a + b) / 2


# --------------------------------------------------------------------------- the story

def test_deploy_canary_promote_rollback_and_history(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's "Done when" from the CLI: two runs deployed, one on canary at 10 %, promoted,
    rolled back; `history` shows each step and `--at` a moment between steps gives what was live."""
    # deploy through a real process, with the probe (torch loads the weights in that process)
    first = cli("deploy", "lvm", "--run", "r1", "--reason", "first", "--workspace", str(ws.root))
    assert first.returncode == 0, first.stderr
    assert "epoch 2" in first.stdout and "the best" in first.stdout and "the last" in first.stdout
    assert "✔" in first.stdout and "as lvm v1" in first.stdout
    rc, out, err = reg(capsys, ws, "deploy", "lvm", "--run", "r2", "--reason", "second")
    assert rc == 0, err
    assert "as lvm v2" in out

    assert reg(capsys, ws, "promote", "lvm", "v1", "--reason", "go live")[0] == 0
    rc, out, _ = reg(capsys, ws, "canary", "lvm", "v2", "--traffic", "10", "--reason", "try r2")
    assert rc == 0 and "10 %" in out and "v1 keeps 90 %" in out
    listed = reg_json(capsys, ws, "list")
    (model,) = listed["models"]
    assert (model["active"], model["canary"], model["traffic"]) == ("v1", "v2", 10)
    rc, out, _ = reg(capsys, ws, "list")
    assert f"{STATUS_GLYPHS['canary']} canary" in out and f"{STATUS_GLYPHS['active']} active" in out

    assert reg(capsys, ws, "promote", "lvm", "--reason", "canary is healthy")[0] == 0
    assert reg_json(capsys, ws, "list", "lvm")["models"][0]["active"] == "v2"
    rc, out, _ = reg(capsys, ws, "rollback", "lvm", "--reason", "latency up")
    assert rc == 0 and "v2 -> v1" in out
    state = reg_json(capsys, ws, "list", "lvm")["models"][0]
    assert (state["active"], state["canary"]) == ("v1", None)
    statuses = {v["version"]: v["status"] for v in state["versions"]}
    assert statuses == {"v1": "active", "v2": "rolled_back"}

    history = reg_json(capsys, ws, "history", "lvm")["audit"]
    assert [e["action"] for e in history] == ["deploy", "deploy", "promote", "canary", "promote", "rollback"]
    assert [e["reason"] for e in history][-1] == "latency up" and {e["user"] for e in history} == {"tester"}
    rc, out, _ = reg(capsys, ws, "history", "lvm")
    assert rc == 0
    for action in ("deploy", "promote", "canary", "rollback"):
        assert action in out
    assert "v1 -> v2" in out and "active v1, canary v2 at 10 %" in out and "\"latency up\"" in out

    t = [e["time"] for e in history]
    moments = {  # a moment between two entries -> (active, canary, traffic) then
        between(t[2], t[3]): ("v1", None, 0),
        between(t[3], t[4]): ("v1", "v2", 10),
        between(t[4], t[5]): ("v2", None, 0),
        t[5] + 60: ("v1", None, 0),
    }
    for moment, want in moments.items():
        at = reg_json(capsys, ws, "history", "lvm", "--at", repr(moment))
        assert (at["active"], at["canary"], at["traffic"]) == want
    iso = datetime.fromtimestamp(between(t[3], t[4])).isoformat()  # local time, microseconds
    rc, out, _ = reg(capsys, ws, "history", "lvm", "--at", iso)
    assert rc == 0 and "active v1, canary v2 at 10 %" in out
    rc, out, _ = reg(capsys, ws, "history", "lvm", "--at", "2001-01-01 10:00")
    assert rc == 0 and "nothing was live yet" in out


def test_deploy_dry_run_checks_everything_and_writes_nothing(ws: Workspace, capsys) -> None:
    rc, out, err = reg(capsys, ws, "deploy", "lvm", "--run", "r1", "--dry-run", "--no-probe")
    assert rc == 0, err
    assert "dry run" in out and "would deploy" in out and "not run (--no-probe)" in out
    assert not (ws.registry_dir / DB_FILE).exists()
    doc = reg_json(capsys, ws, "deploy", "lvm", "--run", "r1", "--checkpoint", "last", "--dry-run")
    assert doc["ok"] is True and doc["change"]["dry_run"] is True
    assert doc["candidate"]["checkpoint"] == "last" and doc["candidate"]["epoch"] == 2
    assert all(c["ok"] or c["skipped"] for c in doc["checks"]) and len(doc["checks"]) >= 2
    assert not (ws.registry_dir / DB_FILE).exists()


def test_deploy_records_where_the_bytes_came_from(ws: Workspace, capsys) -> None:
    doc = reg_json(capsys, ws, "deploy", "lvm", "--run", "r1", "--checkpoint", "last", "--version", "v1.0.3")
    assert doc["change"]["to"] == "v1.0.3"
    shown = reg_json(capsys, ws, "show", "lvm", "v1.0.3")["version"]
    assert shown["run_id"] == "r1" and shown["checkpoint"] == "last" and shown["epoch"] == 2
    assert shown["is_last"] is True and shown["kind"] == "lvm-gru"
    assert shown["reproduce"].startswith("trainledger train lvm-gru")
    assert shown["artifacts"] and all(len(a["sha256"]) == 64 for a in shown["artifacts"])
    rc, out, _ = reg(capsys, ws, "show", "lvm", "v1.0.3")
    assert rc == 0
    for part in ("run               r1", "sha256", "reproduce", "checks", "audit", "deploy"):
        assert part in out
    assert shown["artifacts"][0]["sha256"] in out


def test_deploy_from_a_folder_inside_the_workspace(ws: Workspace, capsys) -> None:
    folder = ws.root / "handmade"
    folder.mkdir()
    shutil.copy(ws.run_dir("r1") / "checkpoints" / "best.safetensors", folder / "model.safetensors")
    rc, out, err = reg(capsys, ws, "deploy", "lvm", "--path", str(folder), "--kind", "lvm-gru", "--no-probe")
    assert rc == 0, err
    assert "as lvm v1" in out
    assert reg_json(capsys, ws, "show", "lvm", "v1")["version"]["run_id"] is None


# --------------------------------------------------------------------------- verify, prune, export

def _deploy_two(capsys, ws: Workspace) -> None:
    for run in ("r1", "r2"):
        rc, _, err = reg(capsys, ws, "deploy", "lvm", "--run", run, "--no-probe")
        assert rc == 0, err


def test_verify_reports_a_changed_byte_and_refuses_to_activate_it(ws: Workspace, capsys) -> None:
    _deploy_two(capsys, ws)
    assert reg(capsys, ws, "promote", "lvm", "v1")[0] == 0
    rc, out, _ = reg(capsys, ws, "verify")
    assert rc == 0 and "lvm v1  ok" in out and "lvm v2  ok" in out
    sha = reg_json(capsys, ws, "show", "lvm", "v2")["version"]["artifacts"][0]["sha256"]
    blob = ws.registry_dir / "artifacts" / sha[:2] / sha
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    rc, out, _ = reg(capsys, ws, "verify", "lvm")
    assert rc == 1 and "lvm v2  CORRUPT" in out and "lvm v1  ok" in out
    doc = json.loads(reg(capsys, ws, "verify", "--json")[1])
    assert doc["ok"] is False and [v["version"] for v in doc["versions"] if not v["ok"]] == ["v2"]
    rc, _, err = reg(capsys, ws, "canary", "lvm", "v2", "--traffic", "10")
    assert rc == 1 and "corrupt" in err
    rc, _, err = reg(capsys, ws, "promote", "lvm", "v2")
    assert rc == 1 and "corrupt" in err
    rc, out, _ = reg(capsys, ws, "list")
    assert f"{STATUS_GLYPHS['corrupt']} corrupt" in out
    assert reg_json(capsys, ws, "list")["models"][0]["active"] == "v1"


def test_prune_keeps_the_records(ws: Workspace, capsys) -> None:
    _deploy_two(capsys, ws)
    assert reg(capsys, ws, "deploy", "lvm", "--run", "r1", "--checkpoint", "last", "--no-probe")[0] == 0
    assert reg(capsys, ws, "promote", "lvm", "v3")[0] == 0
    rc, out, err = reg(capsys, ws, "prune", "lvm", "--keep", "1")
    assert rc == 0, err
    assert "pruned the artifacts of v1" in out
    versions = {v["version"]: v for v in reg_json(capsys, ws, "list", "lvm")["models"][0]["versions"]}
    assert set(versions) == {"v1", "v2", "v3"} and versions["v1"]["pruned_at"] is not None
    assert versions["v2"]["pruned_at"] is None
    rc, _, _ = reg(capsys, ws, "prune", "lvm", "--keep", "-1")
    assert rc == 2


def test_export_is_stable_and_readable(ws: Workspace, capsys) -> None:
    _deploy_two(capsys, ws)
    assert reg(capsys, ws, "promote", "lvm", "v1", "--reason", "ok")[0] == 0
    first = reg(capsys, ws, "export", "--json")[1]
    assert first == reg(capsys, ws, "export", "--json")[1]
    doc = json.loads(first)
    assert doc["schema"] == "trainledger-registry-export/1"
    assert [m["name"] for m in doc["models"]] == ["lvm"]
    assert [v["version"] for v in doc["versions"]] == ["v1", "v2"]
    assert [e["action"] for e in doc["audit"]] == ["deploy", "deploy", "promote"]
    rc, text, _ = reg(capsys, ws, "export")
    assert rc == 0 and "model lvm" in text and "audit" in text and doc["versions"][0]["checksum"] in text


# --------------------------------------------------------------------------- policy, import

def test_policy_shows_and_sets_thresholds(ws: Workspace, capsys) -> None:
    _deploy_two(capsys, ws)
    rc, out, err = reg(capsys, ws, "policy", "lvm", "--max-error-rate", "0.1", "--min-requests", "20",
                       "--reason", "stricter")  # fmt: skip
    assert rc == 0, err
    policy = reg_json(capsys, ws, "policy", "lvm")["policy"]
    assert policy["max_error_rate"] == 0.1 and policy["min_requests"] == 20
    assert reg_json(capsys, ws, "history", "lvm")["audit"][-1]["action"] == "policy"
    rc, _, _ = reg(capsys, ws, "policy", "lvm", "--min-requests", "lots")
    assert rc == 2


def test_policy_defaults_are_seed_004s(ws: Workspace, capsys) -> None:
    pytest.importorskip("trainledger.engines.registry.policy")
    _deploy_two(capsys, ws)
    policy = reg_json(capsys, ws, "policy", "lvm")["policy"]
    assert policy["max_error_rate"] == pytest.approx(0.15)
    assert policy["max_latency_ms"] == pytest.approx(5000) and policy["max_memory_gb"] == pytest.approx(6)


def test_import_a_seed_004_folder(ws: Workspace, capsys, tmp_path: Path) -> None:
    pytest.importorskip("trainledger.engines.registry.importer")
    import hashlib

    folder = tmp_path / "seed004"
    for name, body in (("v1.0.0", b"one" * 1000), ("v1.0.1", b"two" * 1000)):
        (folder / name / "adapters").mkdir(parents=True)
        (folder / name / "adapters" / "adapter_model.safetensors").write_bytes(body)
    good = hashlib.sha256(b"one" * 1000).hexdigest()
    versions = [
        {"version": "v1.0.0", "created_at": "2026-01-01T10:00:00", "status": "active", "checksum": good},
        {"version": "v1.0.1", "created_at": "2026-01-02T10:00:00", "status": "inactive", "checksum": "0" * 64},
    ]
    (folder / "versions.json").write_text(json.dumps(versions))
    (folder / "current.txt").write_text("v1.0.0\n")
    rc, out, err = reg(capsys, ws, "import", "adapters", str(folder), "--reason", "from seed 004")
    assert rc == 0, err
    state = reg_json(capsys, ws, "list", "adapters")["models"][0]
    assert state["active"] == "v1.0.0"
    assert {v["version"]: v["status"] for v in state["versions"]}["v1.0.1"] == "corrupt"


# --------------------------------------------------------------------------- reading creates nothing

def test_reading_a_workspace_without_a_registry_creates_nothing(tmp_path: Path, capsys) -> None:
    ws = init_workspace(tmp_path / "ws")
    shutil.rmtree(ws.registry_dir)
    before = sorted(p.relative_to(ws.root) for p in ws.root.rglob("*"))
    assert reg(capsys, ws, "list")[0] == 0
    assert reg_json(capsys, ws, "list") == {"models": []}
    assert reg(capsys, ws, "verify")[0] == 0
    assert reg(capsys, ws, "export")[0] == 0
    assert json.loads(reg(capsys, ws, "export", "--json")[1])["versions"] == []
    for args in (("show", "lvm", "v1"), ("history", "lvm"), ("history", "lvm", "--at", "2026-12-02 10:00"),
                 ("verify", "lvm"), ("list", "lvm"), ("policy", "lvm")):  # fmt: skip
        rc, _, err = reg(capsys, ws, *args)
        assert rc == 1 and "no model 'lvm'" in err, args
    assert sorted(p.relative_to(ws.root) for p in ws.root.rglob("*")) == before
    # a folder that is not a workspace stays as it was
    plain = tmp_path / "plain"
    plain.mkdir()
    rc, _, err = reg(capsys, plain, "list")
    assert rc == 2 and "trainledger init" in err and list(plain.iterdir()) == []


# --------------------------------------------------------------------------- processes, text

def test_processes_and_exit_codes(ws: Workspace) -> None:
    root = str(ws.root)
    assert cli("deploy", "lvm", "--run", "r1", "--no-probe", "--workspace", root).returncode == 0
    listed = cli("list", "--json", "--workspace", root, module="trainledger.engines.registry")
    assert listed.returncode == 0 and json.loads(listed.stdout)["models"][0]["name"] == "lvm"
    refused = cli("abort", "lvm", "--workspace", root)
    assert refused.returncode == 1 and "no canary to abort" in refused.stderr and refused.stdout == ""
    usage = cli("canary", "lvm", "v1", "--workspace", root)  # --traffic missing
    assert usage.returncode == 2 and "--traffic" in usage.stderr
    helped = subprocess.run([sys.executable, "-m", "trainledger", "--help"], capture_output=True, text=True)
    assert "trainledger registry" in helped.stdout
    assert cli("--help").returncode == 0


def test_control_characters_are_made_visible(ws: Workspace, capsys) -> None:
    reason = "ok\x1b]2;pwned\x07 \x9b31m"
    assert reg(capsys, ws, "deploy", "lvm", "--run", "r1", "--no-probe", "--reason", reason)[0] == 0
    for args in (("history", "lvm"), ("show", "lvm", "v1"), ("export",)):
        _, out, _ = reg(capsys, ws, *args)
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "␛]2;pwned␇" in out
    _, out, _ = reg(capsys, ws, "history", "lvm", "--json")
    assert "\x1b" not in out and "\x9b" not in out and json.loads(out)["audit"][0]["reason"] == reason


def test_list_json_imports_nothing_heavy(tmp_path: Path) -> None:
    """`list --json` must start fast: no torch, numpy or textual in its process."""
    root = init_workspace(tmp_path / "ws").root
    code = ("import sys; from trainledger.engines.registry.cli import main; main(['list', '--json']); "
            "print(sorted(m for m in ('torch', 'numpy', 'textual') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**ENV, "TRAINLEDGER_WORKSPACE": str(root)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
