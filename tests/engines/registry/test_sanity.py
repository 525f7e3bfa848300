"""The deploy file checks (sanity.py, no torch) on a real run's checkpoint and on hand-made files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from trainledger.engines.registry import sanity
from trainledger.engines.registry.types import Candidate, Check, SourceFile
from trainledger.engines.san.weights import export_weights
from trainledger.engines.workspace import init_workspace


def checkpoint_candidate(run_dir: Path, kind: str = "lvm-gru") -> Candidate:
    """What source.candidate_from_run builds: the best checkpoint and its sidecar's sha256."""
    sidecar = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    files = (SourceFile("model.safetensors", run_dir / "checkpoints" / "best.safetensors", sidecar["sha256"]),)
    return Candidate(kind=kind, files=files, source=f"run {run_dir.name}, checkpoint best", run_id=run_dir.name,
                     checkpoint="best", backend="torch")  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = init_workspace(tmp_path_factory.mktemp("sanity") / "ws")
    cmd = [sys.executable, "-m", "trainledger", "train", "lvm-gru", "--epochs", "2", "--run-id", "r1",
           "--workspace", str(ws.root)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return ws.run_dir("r1")


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def folder(tmp_path: Path, *names: str, kind: str | None = None) -> Candidate:
    return Candidate(kind=kind, files=tuple(SourceFile(n, tmp_path / n) for n in names), source=str(tmp_path))


def bf16_safetensors(path: Path, raw: np.ndarray) -> None:
    """A safetensors file of one BF16 tensor (safetensors.numpy cannot write bf16), by the format."""
    data = (raw.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"w": {"dtype": "BF16", "shape": [raw.size], "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)


def test_a_real_checkpoint_passes_every_file_check(run_dir: Path) -> None:
    checks = sanity.file_checks(checkpoint_candidate(run_dir))
    assert [c.name for c in checks] == ["files", "format", "size", "sha256", "weights"]
    assert all(c.ok and not c.skipped for c in checks), checks
    size = by_name(checks)["size"]
    total = (run_dir / "checkpoints" / "best.safetensors").stat().st_size
    assert f"{total:,} bytes" in size.detail and "1,024 to 2,147,483,648" in size.detail


def test_a_changed_byte_fails_sha256_only(run_dir: Path, tmp_path: Path) -> None:
    c = checkpoint_candidate(run_dir)
    data = bytearray(c.files[0].path.read_bytes())
    data[-1] ^= 1  # the last byte of the last tensor: it still parses
    (tmp_path / "m.safetensors").write_bytes(bytes(data))
    checks = by_name(sanity.file_checks(replace(c, files=(replace(c.files[0], path=tmp_path / "m.safetensors"),))))
    assert not checks["sha256"].ok and "model.safetensors" in checks["sha256"].detail
    assert checks["files"].ok and checks["format"].ok and checks["size"].ok


def test_a_nan_weight_fails_the_weights_check(run_dir: Path, tmp_path: Path) -> None:
    tensors = load_file(str(checkpoint_candidate(run_dir).files[0].path))
    name = next(k for k, v in tensors.items() if v.dtype.kind == "f")
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan
    save_file(tensors, str(tmp_path / "model.safetensors"))
    weights = by_name(sanity.file_checks(folder(tmp_path, "model.safetensors", kind="lvm-gru")))["weights"]
    assert not weights.ok and name in weights.detail


def test_bf16_tensors_are_checked_too(tmp_path: Path) -> None:
    bf16_safetensors(tmp_path / "ok.safetensors", np.linspace(-1, 1, 600))
    assert by_name(sanity.file_checks(folder(tmp_path, "ok.safetensors")))["weights"].ok
    bf16_safetensors(tmp_path / "inf.safetensors", np.array([1.0] * 599 + [np.inf]))
    assert not by_name(sanity.file_checks(folder(tmp_path, "inf.safetensors")))["weights"].ok


def test_formats_other_than_weights_and_json_are_refused(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"\x80\x04" + b"p" * 4096)
    (tmp_path / "config.json").write_text("{}")
    fmt = by_name(sanity.file_checks(folder(tmp_path, "model.pt", "config.json")))["format"]
    assert not fmt.ok and "model.pt" in fmt.detail
    only_json = by_name(sanity.file_checks(folder(tmp_path, "config.json")))
    assert not only_json["format"].ok and "weights" not in only_json  # nothing to check the values of


def test_files_that_are_not_weights_fail_without_raising(tmp_path: Path) -> None:
    (tmp_path / "noise.safetensors").write_bytes(b"\xff" * 2048)  # header length far past the file
    (tmp_path / "short.safetensors").write_bytes(b"\x01")
    (tmp_path / "text.safetensors").write_bytes((8).to_bytes(8, "little") + b"not json" + b"\0" * 2048)
    (tmp_path / "pickled.npz").write_bytes(b"PK\x03\x04" + b"\0" * 2048)
    for name in ("noise.safetensors", "short.safetensors", "text.safetensors", "pickled.npz"):
        weights = by_name(sanity.file_checks(folder(tmp_path, name)))["weights"]
        assert not weights.ok and name in weights.detail, name


def test_npz_arrays_open_without_pickle_and_must_be_finite(tmp_path: Path) -> None:
    np.savez(tmp_path / "ok.npz", w=np.ones((32, 32), np.float32), step=np.array(3))
    assert all(c.ok for c in sanity.file_checks(folder(tmp_path, "ok.npz")))
    np.savez(tmp_path / "nan.npz", w=np.full((32, 32), np.nan, np.float32))
    assert not by_name(sanity.file_checks(folder(tmp_path, "nan.npz")))["weights"].ok
    np.savez(tmp_path / "objects.npz", w=np.array([{"a": 1}] * 200, dtype=object))
    objects = by_name(sanity.file_checks(folder(tmp_path, "objects.npz")))["weights"]
    assert not objects.ok and "pickle" in objects.detail.lower()


def test_size_ranges_per_kind(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = checkpoint_candidate(run_dir)
    monkeypatch.setitem(sanity.SIZE_RANGES, "lvm-gru", (10 << 20, 2 << 30))
    size = by_name(sanity.file_checks(c))["size"]
    assert not size.ok and "10,485,760 to 2,147,483,648" in size.detail
    save_file({"w": np.ones((64, 64), np.float32)}, str(tmp_path / "a.safetensors"))  # 16 KB
    assert by_name(sanity.file_checks(folder(tmp_path, "a.safetensors", kind="lora-lm")))["size"].ok
    adapters = folder(tmp_path, "a.safetensors", kind="lora-adapters")
    size = by_name(sanity.file_checks(adapters))["size"]
    assert not size.ok and "1,048,576" in size.detail  # seed 004's 1 MB floor


def test_a_seed_004_adapters_folder_gets_the_1_mb_floor(tmp_path: Path) -> None:
    (tmp_path / "adapters").mkdir()
    save_file({"w": np.ones((64, 64), np.float32)}, str(tmp_path / "adapters" / "a.safetensors"))
    holding = folder(tmp_path, "adapters/a.safetensors")
    assert not by_name(sanity.file_checks(holding))["size"].ok
    itself = Candidate(kind=None, files=(SourceFile("a.safetensors", tmp_path / "adapters" / "a.safetensors"),),
                       source=str(tmp_path / "adapters"))  # fmt: skip
    assert "1,048,576" in by_name(sanity.file_checks(itself))["size"].detail
    save_file({"w": np.ones((512, 512), np.float32)}, str(tmp_path / "adapters" / "a.safetensors"))  # 1 MB
    assert all(c.ok for c in sanity.file_checks(holding))


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "model.safetensors")
    result: list[list[Check]] = []
    worker = threading.Thread(target=lambda: result.append(sanity.file_checks(folder(tmp_path, "model.safetensors"))),
                              daemon=True)  # fmt: skip
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "file_checks blocked on a FIFO"
    files = by_name(result[0])["files"]
    assert not files.ok and "FIFO" in files.detail
    assert not by_name(sanity.file_checks(folder(tmp_path, "missing.safetensors")))["files"].ok


def test_a_san_export_folder_passes_and_a_broken_one_fails(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bin_bytes, manifest = export_weights({"enc.w": rng.standard_normal((16, 32)).astype(np.float32),
                                          "enc.b": np.zeros(16, np.float32)})  # fmt: skip
    (tmp_path / "san_weights.bin").write_bytes(bin_bytes)
    (tmp_path / "san_manifest.json").write_bytes(manifest)
    (tmp_path / "san_report.json").write_text("{}")
    checks = sanity.file_checks(folder(tmp_path, "san_manifest.json", "san_report.json", "san_weights.bin", kind="san"))
    assert all(c.ok for c in checks), checks
    assert by_name(checks)["format"].detail == "bin"
    (tmp_path / "san_weights.bin").write_bytes(bin_bytes[:-4])
    weights = by_name(sanity.file_checks(folder(tmp_path, "san_manifest.json", "san_weights.bin")))["weights"]
    assert not weights.ok and "-4" in weights.detail
    lone = by_name(sanity.file_checks(folder(tmp_path, "san_weights.bin")))["weights"]
    assert not lone.ok and "san_manifest.json" in lone.detail


def test_checking_imports_no_torch(run_dir: Path) -> None:
    """The console runs these checks (the demo seeder): torch must stay out of its process."""
    code = ("import sys; from pathlib import Path; from trainledger.engines.registry import sanity, types; "
            "f = types.SourceFile('model.safetensors', Path(sys.argv[1])); "
            "c = sanity.file_checks(types.Candidate(kind='lvm-gru', files=(f,), source='t')); "
            "print(all(x.ok for x in c), 'torch' in sys.modules)")  # fmt: skip
    best = str(run_dir / "checkpoints" / "best.safetensors")
    out = subprocess.run([sys.executable, "-c", code, best], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["True", "False"]
