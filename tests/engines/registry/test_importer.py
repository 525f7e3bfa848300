"""Importing a seed-004 versions folder: real files, a real registry, nothing mocked."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from trainledger.engines.registry.importer import import_folder, tree_hash
from trainledger.engines.registry.store import Registry
from trainledger.engines.registry.types import RegistryError, RegistryUsageError
from trainledger.engines.workspace import Workspace


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def seed_folder(root: Path, current: str | None = "v1.0.2") -> Path:
    """Seed 004's layout: v1.0.0 (one file, right sha256), v1.0.1 (one file, wrong checksum),
    v1.0.2 (two files, tree hash with a sha256: prefix), current.txt naming v1.0.2."""
    a0, a1 = b"adapter zero" * 1000, b"adapter one" * 1000
    a2, cfg = b"adapter two" * 1000, b'{"lora_rank": 4}'
    _write(root / "v1.0.0" / "adapters" / "adapters.safetensors", a0)
    _write(root / "v1.0.1" / "adapters" / "adapters.safetensors", a1)
    _write(root / "v1.0.2" / "adapters" / "adapters.safetensors", a2)
    _write(root / "v1.0.2" / "adapters" / "adapter_config.json", cfg)
    tree = tree_hash([("adapters.safetensors", _sha(a2)), ("adapter_config.json", _sha(cfg))])
    base = "mlx-community/Qwen2.5-Coder-1.5B-Instruct-4bit"

    def rec(v: str, created: str, status: str, checksum: str, **more: object) -> dict[str, object]:
        return {"version": v, "created_at": created, "deployed_at": created, "status": status, "base_model": base,
                "adapter_path": f"/Volumes/David External/SAM_models/versions/{v}/adapters",
                "training_run_id": f"2026012{v[-1]}_100000", "training_samples": 100 * (int(v[-1]) + 1),
                "metrics": {"val_loss": 1.5 - int(v[-1]) / 10, "note": "ok"}, "checksum": checksum, **more}

    versions = [
        rec("v1.0.0", "2026-01-20T10:00:00", "rolled_back", _sha(a0)),
        rec("v1.0.1", "2026-01-22T10:00:00", "canary", _sha(b"something else")),
        rec("v1.0.2", "2026-01-25T10:00:00", "active", "sha256:" + tree.upper()),
    ]
    _write(root / "versions.json", json.dumps(versions, indent=2).encode())
    if current is not None:
        _write(root / "current.txt", f"{current}\n".encode())
    return root


def _nothing_written(ws: Workspace) -> None:
    assert not (ws.registry_dir / "registry.db").exists()
    assert not (ws.registry_dir / "artifacts").exists() or not any(
        p.is_file() for p in (ws.registry_dir / "artifacts").rglob("*")
    )


def test_seed_folder_imports_history_and_marks_the_mismatch_corrupt(ws: Workspace, tmp_path: Path) -> None:
    folder = seed_folder(tmp_path / "versions")
    reg = Registry(ws)
    changes = import_folder(reg, "sam-brain", folder, reason="moving off the external drive")

    state = reg.model("sam-brain")
    assert state.active == "v1.0.2" and state.canary is None
    v = {x.version: x for x in reg.versions("sam-brain")}
    assert [x.version for x in reg.versions("sam-brain")] == ["v1.0.0", "v1.0.1", "v1.0.2"]
    assert v["v1.0.0"].status == "rolled_back"
    assert v["v1.0.1"].status == "corrupt" and "differs" in (v["v1.0.1"].corrupt_detail or "")
    assert v["v1.0.2"].status == "active"
    assert v["v1.0.0"].created_at == datetime(2026, 1, 20, 10).timestamp()
    assert v["v1.0.2"].base_model == "mlx-community/Qwen2.5-Coder-1.5B-Instruct-4bit"
    assert v["v1.0.2"].run_id == "20260122_100000" and v["v1.0.2"].training_samples == 300
    assert v["v1.0.2"].metrics == {"val_loss": pytest.approx(1.3)}
    assert {a.name for a in v["v1.0.2"].artifacts} == {"adapters.safetensors", "adapter_config.json"}
    assert v["v1.0.0"].checksum == _sha(b"adapter zero" * 1000)
    assert [c.ok for c in v["v1.0.1"].checks] == [False]

    summary = changes[-1].message
    assert "corrupt" in summary and "v1.0.1" in summary and "v1.0.2 is active" in summary
    assert any("metric 'note' dropped" in n for n in changes[-1].details["notes"])
    actions = [(e.action, e.to_version) for e in reg.audit("sam-brain")]
    assert actions == [("import", "v1.0.0"), ("import", "v1.0.1"), ("import", "v1.0.2"), ("promote", "v1.0.2")]
    assert reg.audit("sam-brain")[0].reason == "moving off the external drive"
    assert all(problem is None for x, problem in reg.verify("sam-brain") if x.version != "v1.0.1")
    with pytest.raises(RegistryError, match="corrupt"):
        reg.promote("sam-brain", "v1.0.1")


def test_sam_models_layout_and_dict_form(ws: Workspace, tmp_path: Path) -> None:
    folder = seed_folder(tmp_path / "SAM_models" / "versions")
    listed = json.loads((folder / "versions.json").read_text())
    by_name = {r.pop("version"): r for r in listed}
    (folder / "versions.json").write_text(json.dumps({"versions": by_name}))
    reg = Registry(ws)
    import_folder(reg, "sam", tmp_path / "SAM_models")
    assert reg.model("sam").active == "v1.0.2"


def test_current_naming_a_corrupt_version_leaves_nothing_active(ws: Workspace, tmp_path: Path) -> None:
    folder = seed_folder(tmp_path / "v", current="v1.0.1")
    reg = Registry(ws)
    changes = import_folder(reg, "sam", folder)
    assert reg.model("sam").active is None
    assert "v1.0.1, which is corrupt: nothing is active" in changes[-1].message
    assert [e.action for e in reg.audit("sam")] == ["import"] * 3


def test_no_current_and_hidden_files(ws: Workspace, tmp_path: Path) -> None:
    folder = seed_folder(tmp_path / "v", current=None)
    _write(folder / "v1.0.0" / "adapters" / ".DS_Store", b"finder")
    reg = Registry(ws)
    changes = import_folder(reg, "sam", folder)
    assert reg.model("sam").active is None
    assert "v1.0.0/adapters/.DS_Store" in changes[-1].details["notes"][-1]
    assert reg.version("sam", "v1.0.0").status == "rolled_back"  # still matches: the hidden file was skipped


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (lambda f: (f / "versions.json").unlink(), RegistryUsageError, "no versions.json"),
        (lambda f: (f / "versions.json").write_text('[{"version": "v1.0.0",'), RegistryUsageError, "not valid JSON"),
        (lambda f: (f / "versions.json").write_text('"v1"'), RegistryUsageError, "a list or an object"),
        (lambda f: (f / "versions.json").write_text("[]"), RegistryUsageError, "no versions"),
        (lambda f: _rename_version(f, "../../etc"), RegistryUsageError, "invalid version"),
        (lambda f: _rename_version(f, "v1.0.0"), RegistryUsageError, "listed twice"),
        (lambda f: (f / "current.txt").write_text("v9.9.9\n"), RegistryUsageError, "does not list"),
        (lambda f: (f / "current.txt").write_text("../x\n"), RegistryUsageError, "invalid version"),
        (lambda f: _write(f / "v1.0.2" / "adapters" / "bad name.bin", b"x"), RegistryUsageError, "invalid file name"),
        (lambda f: os.symlink("/etc/passwd", f / "v1.0.2" / "adapters" / "passwd"), RegistryUsageError, "symlink"),
        (lambda f: _swap_for_link(f / "v1.0.1" / "adapters"), RegistryUsageError, "symlink"),
        (lambda f: os.mkfifo(f / "v1.0.2" / "adapters" / "pipe"), RegistryUsageError, "not a regular file"),
        (lambda f: _rmtree(f / "v1.0.1"), RegistryUsageError, "no v1.0.1/ folder"),
        (lambda f: _edit(f, 0, created_at="last tuesday"), RegistryUsageError, "not an ISO time"),
        (lambda f: _edit(f, 0, training_samples="many"), RegistryUsageError, "training_samples"),
        (lambda f: _edit(f, 0, training_run_id="../run"), RegistryUsageError, "training_run_id"),
    ],
)
def test_bad_folders_are_refused_and_write_nothing(ws: Workspace, tmp_path: Path, damage, error, match) -> None:
    folder = seed_folder(tmp_path / "versions")
    damage(folder)
    with pytest.raises(error, match=match):
        import_folder(Registry(ws), "sam", folder)
    _nothing_written(ws)


def test_bad_model_name_and_existing_model(ws: Workspace, tmp_path: Path) -> None:
    folder = seed_folder(tmp_path / "versions")
    with pytest.raises(RegistryUsageError, match="invalid model name"):
        import_folder(Registry(ws), "../sam", folder)
    with pytest.raises(RegistryUsageError, match="not a folder"):
        import_folder(Registry(ws), "sam", tmp_path / "nowhere")
    _nothing_written(ws)
    reg = Registry(ws)
    import_folder(reg, "sam", folder)
    before = len(reg.audit())
    with pytest.raises(RegistryError, match="already"):
        import_folder(reg, "sam", folder)
    assert len(reg.audit()) == before and len(reg.versions("sam")) == 3


def _rename_version(folder: Path, name: str) -> None:
    data = json.loads((folder / "versions.json").read_text())
    data[1]["version"] = name
    (folder / "versions.json").write_text(json.dumps(data))


def _edit(folder: Path, i: int, **fields: object) -> None:
    data = json.loads((folder / "versions.json").read_text())
    data[i].update(fields)
    (folder / "versions.json").write_text(json.dumps(data))


def _swap_for_link(path: Path) -> None:
    _rmtree(path)
    os.symlink(path.parent.parent / "v1.0.0" / "adapters", path)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
