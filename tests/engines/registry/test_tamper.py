"""A changed artifact never goes live: one flipped byte, a deleted blob, a symlink, a FIFO.

Each is found by `verify` (and `trainledger registry verify` exits 1), refused at promote,
canary and rollback alike with the version marked corrupt, and a version whose bytes are
put back verifies and is usable again. Real files, a real registry, real CLI processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engines.registry.registry_driver import candidate, consistency_problems, write_artifact
from trainledger.engines.registry.store import Registry
from trainledger.engines.registry.types import RegistryError
from trainledger.engines.workspace import Workspace, init_workspace

ENV = {**os.environ, "TRAINLEDGER_USER": "tester"}


@pytest.fixture
def reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """m: v1 (rollback target), v2 active, v3 and v4 inactive."""
    monkeypatch.setenv("TRAINLEDGER_USER", "tester")
    ws = init_workspace(tmp_path / "ws")
    with Registry(ws) as r:
        for i in range(4):
            r.deploy("m", candidate(write_artifact(tmp_path / "src" / f"f{i}.safetensors", seed=i)))
        r.promote("m", "v1")
        r.promote("m", "v2")
        yield r


def blob(reg: Registry, version: str) -> Path:
    return reg.blob_path(reg.version("m", version).checksum)


def flip_byte(path: Path, offset: int = 100) -> int:
    """Change one byte in place (the blob is read-only: make it writable for the damage)."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    original = data[offset]
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return original


def put_byte(path: Path, offset: int, value: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] = value
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainledger.engines.registry", *args, "--workspace", str(ws.root)],
                          capture_output=True, text=True, timeout=60, env=ENV)  # fmt: skip


ACTIVATIONS: dict[str, Callable[[Registry, str], object]] = {
    "promote": lambda r, v: r.promote("m", v),
    "canary": lambda r, v: r.canary("m", v, 10),
    "rollback": lambda r, v: r.rollback("m", v),
}


def assert_refused_and_marked(reg: Registry, version: str, action: str, problem: str) -> None:
    """`action` to `version` is refused, nothing live moves, and one `verify` entry marks it corrupt."""
    before_state, before_audit = reg.model("m"), reg.audit("m")
    with pytest.raises(RegistryError, match=f"{version} is corrupt .*{problem}.*nothing went live"):
        ACTIVATIONS[action](reg, version)
    state = reg.model("m")
    assert (state.active, state.canary, state.traffic, state.previous) == (
        before_state.active, before_state.canary, before_state.traffic, before_state.previous)
    v = reg.version("m", version)
    assert v.status == "corrupt" and problem in (v.corrupt_detail or "")
    new = reg.audit("m")[len(before_audit):]
    assert [(e.action, e.to_version, e.reason) for e in new] == [("verify", version, f"{action} refused")]
    assert problem in str(new[0].details["corrupt"])


@pytest.mark.parametrize("action", ["promote", "canary", "rollback"])
def test_one_changed_byte_is_refused_at_each_activation(reg: Registry, action: str) -> None:
    flip_byte(blob(reg, "v3"))
    assert_refused_and_marked(reg, "v3", action, "differs")
    for other in ACTIVATIONS:  # refused again, whichever way it is tried
        with pytest.raises(RegistryError, match="corrupt"):
            ACTIVATIONS[other](reg, "v3")
    assert reg.model("m").active == "v2"


def test_verify_reports_a_changed_byte_and_the_cli_exits_1(reg: Registry) -> None:
    offset = 200
    original = flip_byte(blob(reg, "v3"), offset)
    results = {v.version: problem for v, problem in reg.verify()}
    assert results["v3"] is not None and "differs" in results["v3"]
    assert [name for name, problem in results.items() if problem] == ["v3"]
    v3 = reg.version("m", "v3")
    assert v3.status == "corrupt" and "differs" in v3.corrupt_detail
    entry = reg.audit("m")[-1]
    assert entry.action == "verify" and "v3" in entry.details["corrupt"]
    out = cli(reg.ws, "verify")
    assert out.returncode == 1, out
    assert "m v3  CORRUPT" in out.stdout and "1 corrupt" in out.stdout
    out = cli(reg.ws, "promote", "m", "v3")
    assert out.returncode == 1 and "corrupt" in out.stderr, out
    assert reg.model("m").active == "v2"

    put_byte(blob(reg, "v3"), offset, original)  # the bytes are back
    assert dict((v.version, p) for v, p in reg.verify("m"))["v3"] is None
    v3 = reg.version("m", "v3")
    assert v3.status == "inactive" and v3.corrupt_detail is None and v3.verified_at is not None
    assert cli(reg.ws, "verify", "m").returncode == 0
    reg.canary("m", "v3", 10)
    reg.promote("m")
    assert reg.model("m").active == "v3"
    assert consistency_problems(reg.ws.root) == []


def test_a_restored_byte_makes_a_refused_version_usable_without_verify(reg: Registry) -> None:
    """Every activation re-hashes: once the bytes match again, the next promote succeeds."""
    original = flip_byte(blob(reg, "v4"), 50)
    assert_refused_and_marked(reg, "v4", "promote", "differs")
    put_byte(blob(reg, "v4"), 50, original)
    reg.promote("m", "v4")
    v4 = reg.version("m", "v4")
    assert (reg.model("m").active, v4.status, v4.corrupt_detail) == ("v4", "active", None)


def test_a_changed_live_version_is_reported_and_comes_back_in_its_place(reg: Registry) -> None:
    reg.canary("m", "v3", 20)
    original_active, original_canary = flip_byte(blob(reg, "v2"), 10), flip_byte(blob(reg, "v3"), 10)
    assert {v.version for v, p in reg.verify("m") if p} == {"v2", "v3"}
    assert cli(reg.ws, "verify", "--json").returncode == 1
    put_byte(blob(reg, "v2"), 10, original_active)
    put_byte(blob(reg, "v3"), 10, original_canary)
    reg.verify("m")
    assert {v.version: v.status for v in reg.versions("m")} == {
        "v1": "inactive", "v2": "active", "v3": "canary", "v4": "inactive"}
    assert consistency_problems(reg.ws.root) == []


def test_a_deleted_blob_is_refused_and_a_redeploy_of_the_bytes_repairs_it(reg: Registry, tmp_path: Path) -> None:
    path = blob(reg, "v1")  # the rollback target
    saved = tmp_path / "saved.safetensors"
    shutil.copy(path, saved)
    path.unlink()
    assert_refused_and_marked(reg, "v1", "rollback", "missing")
    assert dict((v.version, p) for v, p in reg.verify())["v1"] == "model.safetensors: missing"
    assert cli(reg.ws, "verify").returncode == 1
    reg.deploy("m", candidate(saved))  # the same bytes again: the blob is back (and v5 shares it)
    assert dict((v.version, p) for v, p in reg.verify())["v1"] is None
    reg.rollback("m")
    assert reg.model("m").active == "v1"
    assert consistency_problems(reg.ws.root) == []


def test_a_symlink_in_place_of_a_blob_is_refused(reg: Registry, tmp_path: Path) -> None:
    """Even one that points at the right bytes: they are no longer the registry's to keep."""
    path = blob(reg, "v3")
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.copy(path, elsewhere)
    path.unlink()
    path.symlink_to(elsewhere)
    assert_refused_and_marked(reg, "v3", "canary", "link")
    assert dict((v.version, p) for v, p in reg.verify())["v3"] is not None
    path.unlink()
    path.symlink_to("/dev/zero")  # would read forever if it were followed
    assert_refused_and_marked(reg, "v3", "promote", "")
    assert reg.model("m").active == "v2"


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_a_blob_is_refused_without_hanging(reg: Registry) -> None:
    path = blob(reg, "v4")
    path.unlink()
    os.mkfifo(path)
    for action in ACTIVATIONS:
        with pytest.raises(RegistryError, match="v4 is corrupt"):
            ACTIVATIONS[action](reg, "v4")
    assert reg.version("m", "v4").status == "corrupt"
    assert dict((v.version, p) for v, p in reg.verify())["v4"] is not None
    out = cli(reg.ws, "verify")
    assert out.returncode == 1 and "m v4  CORRUPT" in out.stdout
    assert reg.model("m").active == "v2"


def test_a_truncated_blob_is_refused(reg: Registry) -> None:
    path = blob(reg, "v3")
    os.chmod(path, 0o644)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_refused_and_marked(reg, "v3", "promote", "size")
