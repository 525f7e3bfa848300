"""SAN on capture schema v2: frame validation, the generated capture, and a real training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.engines.conftest import jsonl
from trainledger.engines.capture.schema import check_frame
from trainledger.engines.training.datasets import DatasetError
from trainledger.engines.training.loop import LoopConfig, StopFlag, Trainer
from trainledger.engines.training.models import TaskOptions, load_builder
from trainledger.engines.training.san import (
    HEADS,
    SANTask,
    generate,
    read_sessions,
)
from trainledger.engines.workspace import Workspace, read_run_info

pytestmark = pytest.mark.slow


def small_capture(
    folder: Path, seed: int = 0, sessions: int = 3, frames: int = 60
) -> Path:
    generate(folder, seed, sessions=sessions, frames=frames)
    return folder


def test_san_trains_on_its_demo_capture(ws: Workspace) -> None:
    task = load_builder("san")(TaskOptions(ws, seed=0))
    assert task.data_path is not None and task.data_path.is_dir()
    cfg = LoopConfig(epochs=3, batch_size=64, lr=3e-3, log_every=5, patience=0)
    result = Trainer(task, cfg, ws, run_id="san", stop=StopFlag()).run()
    assert (
        result is not None and result.status == "finished" and result.epochs_done == 3
    )
    info = read_run_info(result.run_dir)
    assert (info.status, info.model, info.primary_metric) == (
        "finished",
        "san",
        "val/loss",
    )
    c = info.config
    assert (c["files"], c["frames_accepted"], c["frames_rejected"]) == (4, 2400, 0)
    assert (
        c["schema_version"] == 2
        and c["input_dims"] == 128
        and set(c["targets"]) == set(HEADS)
    )
    assert (
        c["split"].startswith("by session")
        and len(c["val_sessions"]) == 1
        and c["n_val"] == 600
    )
    assert all(len(f["sha256"]) == 64 for f in c["file_report"])
    vals = [r for r in jsonl(result.run_dir / "metrics.jsonl") if "val/loss" in r]
    assert len(vals) == 4
    assert vals[-1]["val/loss"] < 0.2 * vals[0]["val/loss"]
    assert all(f"val/{key}" in vals[-1] for key in HEADS)
    assert vals[-1]["val/gesture_acc"] > 0.6
    assert (result.run_dir / "checkpoints" / "best.safetensors").exists()


def test_malformed_frames_are_counted_as_rejected(tmp_path: Path) -> None:
    folder = small_capture(tmp_path / "cap", sessions=2, frames=20)
    session = folder / "session-00.jsonl"
    frames = jsonl(session)
    good = frames[0]
    bad = [
        {**good, "schema_version": 1},
        {**good, "dims": 64},
        {**good, "input": good["input"][:100]},
        {**good, "gesture_probs": [0.5] * 7},
        {**good, "camera_scores": [float("nan")] * 7},
        {**good, "cut_timing": None},
        [1, 2, 3],
    ]
    lines = [json.dumps(f) for f in frames + bad] + ["{not json", ""]
    session.write_text("\n".join(lines) + "\n")
    assert check_frame(bad[0]) == "schema_version: unsupported value 1"
    assert check_frame(bad[4]) == "camera_scores: not a finite number"
    assert check_frame(good) is None
    _, report = read_sessions(folder)
    first = report[0]
    assert (first["accepted"], first["rejected"]) == (20, 8)
    assert first["reject_reasons"]["json: malformed, object keys must be strings (byte 1)"] == 1
    assert first["reject_reasons"]["input: expected 128 numbers"] == 1
    task = SANTask(folder, seed=0)
    assert (task.config()["frames_accepted"], task.config()["frames_rejected"]) == (
        40,
        8,
    )


def test_one_session_file_is_split_by_frame(tmp_path: Path) -> None:
    folder = small_capture(tmp_path / "cap", sessions=1, frames=40)
    task = SANTask(folder / "session-00.jsonl", seed=0)
    assert task.config()["files"] == 1 and task.split.startswith("by frame")
    assert (task.train.shape[0], task.val.shape[0]) == (30, 10)


def test_no_valid_frames_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no \\*.jsonl"):
        SANTask(tmp_path / "empty", seed=0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"schema_version": 1}\n')
    with pytest.raises(DatasetError, match="no valid schema-v2 frames"):
        SANTask(bad, seed=0)


def test_generated_capture_is_deterministic(tmp_path: Path) -> None:
    a = small_capture(tmp_path / "a", seed=7)
    b = small_capture(tmp_path / "b", seed=7)
    c = small_capture(tmp_path / "c", seed=8)
    names = sorted(p.name for p in a.glob("*.jsonl"))
    assert names == ["session-00.jsonl", "session-01.jsonl", "session-02.jsonl"]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert (a / names[0]).read_bytes() != (c / names[0]).read_bytes()
    frame = jsonl(a / names[0])[0]
    assert check_frame(frame) is None and len(frame["input"]) == 128
    assert np.isclose(sum(frame["gesture_probs"]), 1.0, atol=1e-3)


def test_builder_reads_a_capture_folder_and_refuses_unknown_settings(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = small_capture(tmp_path / "san-training", sessions=2, frames=30)
    task = load_builder("san")(TaskOptions(ws, data=folder, seed=0, device="cpu"))
    assert (
        task.data_path == folder
        and task.device == "cpu"
        and task.config()["files"] == 2
    )
    with pytest.raises(ValueError, match="san has no setting 'hidden'"):
        load_builder("san")(TaskOptions(ws, data=folder, extra={"set": {"hidden": 3}}))
