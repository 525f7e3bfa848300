"""`python -m trainledger.engines.san`: load prints the code last and exits 0 only on a count;
export by run id or folder; infer prints one JSON line per frame."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines.san.conftest import Pair, TrainedRun
from trainledger.engines.san.cli import main

pytestmark = pytest.mark.slow


def san(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainledger.engines.san", *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=60, cwd=cwd)  # fmt: skip


def write_pair(folder: Path, blob: bytes, manifest: bytes) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "w.bin").write_bytes(blob)
    (folder / "m.json").write_bytes(manifest)
    return folder / "w.bin", folder / "m.json"


def test_load_good_and_bad_files_in_a_subprocess(pair: Pair, tmp_path: Path) -> None:
    good = san("load", *write_pair(tmp_path / "good", pair.blob, pair.manifest))
    assert good.returncode == 0 and good.stdout.splitlines()[-1] == "11", good.stderr
    assert "loaded 11 parameters" in good.stdout
    cases = {
        "-1": (
            tmp_path / "missing.bin",
            write_pair(tmp_path / "m1", b"x", pair.manifest)[1],
        ),
        "-2": write_pair(tmp_path / "m2", pair.blob, b"\xff\xfe"),
        "-3": write_pair(tmp_path / "m3", pair.blob, b"{}"),
        "-4": write_pair(tmp_path / "m4", pair.blob[:-4], pair.manifest),
    }
    for code, (blob, manifest) in cases.items():
        result = san("load", blob, manifest)
        assert result.returncode == 1, code
        assert result.stdout.splitlines()[-1] == code
        assert "error " + code in result.stdout


def test_load_in_process_empty_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blob, manifest = write_pair(tmp_path, b"", b"")
    assert main(["load", str(blob), str(manifest)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "-1"


def test_export_by_run_id_and_by_folder_then_load_and_infer(
    san_run: TrainedRun, tmp_path: Path
) -> None:
    by_id = san(
        "export", "san-run", "--workspace", san_run.workspace, "--out", tmp_path / "a"
    )
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.splitlines()[-1] == "load count 104470"
    by_path = san(
        "export", san_run.run_dir, "--out", tmp_path / "b", "--checkpoint", "last"
    )
    assert by_path.returncode == 0, by_path.stderr
    for name in ("san_weights.bin", "san_manifest.json", "san_report.json"):
        assert (tmp_path / "a" / name).is_file() and (tmp_path / "b" / name).is_file()
    loaded = san(
        "load", tmp_path / "a" / "san_weights.bin", tmp_path / "a" / "san_manifest.json"
    )
    assert loaded.returncode == 0 and loaded.stdout.splitlines()[-1] == "104470"

    frames = san_run.workspace / "san-training" / "session-00.jsonl"
    lines = frames.read_text().splitlines()
    bad = tmp_path / "frames.jsonl"
    bad.write_text(
        "\n".join([lines[0], '{"schema_version": 1}', lines[1], lines[2]]) + "\n"
    )
    weights = (tmp_path / "a" / "san_weights.bin", tmp_path / "a" / "san_manifest.json")
    out = san("infer", *weights, bad, "--mix", "0", "--limit", "2")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert rows[1]["error"].startswith("schema_version")
    first = json.loads(lines[0])
    assert rows[0]["mix"] == 0.0 and rows[0]["cut_timing"] == pytest.approx(
        first["cut_timing"], abs=1e-6
    )
    assert rows[0]["camera_scores"] == pytest.approx(first["camera_scores"], abs=1e-6)


def test_usage_errors_exit_2(san_run: TrainedRun, tmp_path: Path, pair: Pair) -> None:
    bad_id = san(
        "export", "../etc", "--workspace", san_run.workspace, "--out", tmp_path
    )
    assert bad_id.returncode == 2 and "invalid run id" in bad_id.stderr
    missing = san(
        "export", "no-such-run", "--workspace", san_run.workspace, "--out", tmp_path
    )
    assert missing.returncode == 2 and "no run.json" in missing.stderr
    blob, manifest = write_pair(tmp_path / "w", pair.blob, pair.manifest)
    frames = tmp_path / "f.jsonl"
    frames.write_text("")
    assert san("infer", blob, manifest, frames, "--mix", "1.5").returncode == 2
    not_san = san("infer", blob, manifest, frames)
    assert (
        not_san.returncode == 2
        and "not SAN weights: trunk.0.weight: missing" in not_san.stderr
    )
    no_manifest = san("infer", blob, tmp_path / "nope.json", frames)
    assert no_manifest.returncode == 1 and "error -1" in no_manifest.stderr
