"""Fixtures for the SAN weights tests: a small valid weights pair, and one real trained san run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainledger.engines.san.weights import export_weights


@dataclass(frozen=True)
class Pair:
    blob: bytes
    manifest: bytes
    tensors: dict[str, np.ndarray]

    def doc(self) -> dict[str, Any]:
        return json.loads(self.manifest)


def small_tensors() -> dict[str, np.ndarray]:
    """a [2,3] at offset 0, b [4] at 6, s [] (a scalar) at 10: 11 parameters."""
    return {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "b": np.array([-1.5, 0.0, 2.25, 1e-3], dtype=np.float32),
        "s": np.array(3.5, dtype=np.float32),
    }


@pytest.fixture
def pair() -> Pair:
    tensors = small_tensors()
    blob, manifest = export_weights(tensors)
    return Pair(blob, manifest, tensors)


@dataclass(frozen=True)
class TrainedRun:
    workspace: Path
    run_dir: Path


@pytest.fixture(scope="session")
def san_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """A real `san` run: 3 generated sessions of 60 frames, trained for 4 epochs (seconds)."""
    from trainledger.engines.training.loop import LoopConfig, StopFlag, Trainer
    from trainledger.engines.training.san import SANTask, generate
    from trainledger.engines.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("san") / "ws")
    generate(ws.captures_dir, 0, sessions=3, frames=60)
    cfg = LoopConfig(epochs=4, batch_size=32, lr=3e-3, log_every=5, patience=0)
    result = Trainer(
        SANTask(ws.captures_dir, seed=0),
        cfg,
        ws,
        run_id="san-run",
        stop=StopFlag(),
        monitor=False,
    ).run()
    assert result is not None and result.status == "finished"
    return TrainedRun(ws.root, result.run_dir)
