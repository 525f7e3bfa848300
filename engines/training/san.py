"""SAN: from the 128-d input of a capture frame to the performance heads (camera, cuts,
pattern, phrase, gesture).

Trains on capture schema v2: JSONL session files, one frame object per line, as the app's
SANTrajectoryLogger writes them into a workspace's `san-training/`. Seed 000's rule is that
training claims need files, so the run's config records what a SAN training report asks
for: the data path, each file's sha256 and its accepted/rejected frame counts, the schema,
the input size, the target fields and the split method.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainledger.engines.capture.schema import (
    DIMS,
    SCHEMA_VERSION,
    FrameError,
    decode_frame,
    to_dict,
)
from trainledger.engines.training.datasets import (
    DatasetError,
    model_device,
    shuffled_batches,
    split_groups,
    task_settings,
)
from trainledger.engines.training.loop import Schedule
from trainledger.engines.training.models import TaskOptions, datasets_dir
from trainledger.engines.workspace import atomic_write_bytes

# ----------------------------------------------------------------------------- config
HIDDEN = 256
# The heads: field -> (width, loss). gesture_probs is a distribution (KL); the rest regress (MSE).
HEADS = {"camera_scores": (7, "mse"), "cut_timing": (1, "mse"), "pattern_intensity": (1, "mse"),
         "pattern_variation": (1, "mse"), "phrase": (4, "mse"), "gesture_probs": (8, "kl")}  # fmt: skip
TARGET_DIM = sum(width for width, _ in HEADS.values())  # 22
VAL_FRACTION = 0.25  # of sessions (or, with one session, the last 25 % of its frames)
DEMO_SESSIONS = 4
DEMO_FRAMES = 600
DEMO_LATENT = 8  # the demo's hidden performance state, a slow random walk


# ----------------------------------------------------------------------------- data
# Frames are checked by trainledger.engines.capture.schema, the same decoder the ingest server uses.
def frame_row(frame: dict[str, Any]) -> list[float]:
    """One training row: the 128 inputs, then the heads' targets in HEADS order."""
    row = list(frame["input"])
    for key in HEADS:
        value = frame[key]
        row.extend(value if isinstance(value, list) else [value])
    return row


def _read_session(file: Path) -> bytes:
    """A session file's bytes; a FIFO, a device or a folder is refused at once, never read."""
    from trainledger.engines.safeio import NotRegularFile, describe_kind, open_regular_file

    try:
        with open_regular_file(file) as fh:
            return fh.read()
    except NotRegularFile:
        found = describe_kind(os.stat(file).st_mode)
        raise DatasetError(f"{file}: expected a JSONL capture session file; found {found}") from None
    except OSError as exc:
        raise DatasetError(f"{file}: cannot be read ({exc.strerror or exc})") from None


def read_sessions(path: Path) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Accepted rows per session (file stem) and a report per file; bad frames are counted, not fatal."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise DatasetError(f"{path}: no *.jsonl session files")
    sessions: dict[str, np.ndarray] = {}
    report = []
    for file in files:
        data = _read_session(file)
        rows, reasons = [], {}
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                rows.append(frame_row(to_dict(decode_frame(line))))
            except FrameError as exc:
                reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
        if rows:
            sessions[file.stem] = np.asarray(rows, dtype=np.float32)
        report.append({"file": file.name, "sha256": hashlib.sha256(data).hexdigest(), "accepted": len(rows),
                       "rejected": sum(reasons.values()), "reject_reasons": reasons})  # fmt: skip
    if not sessions:
        raise DatasetError(
            f"{path}: no valid schema-v{SCHEMA_VERSION} frames in {len(files)} file(s)"
        )
    return sessions, report


def generate(
    folder: Path, seed: int, sessions: int = DEMO_SESSIONS, frames: int = DEMO_FRAMES
) -> None:
    """Write a synthetic capture: each session is a slow walk of a hidden state that both the
    128-d input and every target are fixed functions of, so the heads can be learned."""
    rng = np.random.default_rng(seed)
    to_input = rng.standard_normal((DIMS, DEMO_LATENT)) / math.sqrt(DEMO_LATENT)
    to_targets = {
        key: rng.standard_normal((width, DEMO_LATENT))
        for key, (width, _) in HEADS.items()
    }
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(sessions):
        z = rng.standard_normal(DEMO_LATENT)
        lines = []
        for t in range(frames):
            z = 0.97 * z + 0.25 * rng.standard_normal(DEMO_LATENT)
            x = np.tanh(to_input @ z + 0.05 * rng.standard_normal(DIMS))
            logits = {key: m @ z for key, m in to_targets.items()}
            gesture = np.exp(logits["gesture_probs"] - logits["gesture_probs"].max())
            gesture /= gesture.sum()
            sigmoid = {key: 1.0 / (1.0 + np.exp(-v)) for key, v in logits.items()}

            def r(values: Any) -> list[float]:
                return [round(float(v), 5) for v in values]

            frame = {
                "schema_version": SCHEMA_VERSION, "dims": DIMS, "ts": round(t / 60.0, 5), "frame": t,
                "bar": t // 120, "track_name": f"demo-{s}", "track_time": round(t / 60.0, 5),
                "input": r(x), "audio_kick": r(x[0:5]), "audio_hihat": r(x[5:10]),
                "audio_bass": r(x[10:15]), "audio_pad": r(x[15:20]),
                "camera_scores": r(sigmoid["camera_scores"]), "cut_timing": r(sigmoid["cut_timing"])[0],
                "pattern_intensity": r(sigmoid["pattern_intensity"])[0],
                "pattern_variation": r(sigmoid["pattern_variation"])[0],
                "phrase": r(sigmoid["phrase"]), "gesture_probs": r(gesture),
                "phase": round((t % 240) / 240.0, 5), "regime": int(gesture.argmax()),
                "calibration_confidence": 1.0, "latency_us": round(float(rng.uniform(200, 900)), 1),
            }  # fmt: skip
            lines.append(json.dumps(frame, separators=(",", ":")))
        atomic_write_bytes(
            folder / f"session-{s:02d}.jsonl", ("\n".join(lines) + "\n").encode()
        )


# ----------------------------------------------------------------------------- model
class SAN(nn.Module):
    """A shared MLP trunk over the 128-d input, one linear head per target field."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(DIMS, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU()
        )
        self.heads = nn.ModuleDict(
            {key: nn.Linear(hidden, width) for key, (width, _) in HEADS.items()}
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.trunk(x)
        return {key: head(h) for key, head in self.heads.items()}


def split_targets(rows: Tensor) -> dict[str, Tensor]:
    targets, start = {}, DIMS
    for key, (width, _) in HEADS.items():
        targets[key] = rows[:, start : start + width]
        start += width
    return targets


def san_loss(out: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """`loss` = the sum of the per-head losses (MSE, or KL for the gesture distribution)."""
    parts = {}
    for key, (_, kind) in HEADS.items():
        if kind == "kl":
            p = targets[key].clamp(min=0)
            p = p / p.sum(1, keepdim=True).clamp(min=1e-8)
            parts[key] = F.kl_div(F.log_softmax(out[key], 1), p, reduction="batchmean")
        else:
            parts[key] = F.mse_loss(out[key], targets[key])
    return {"loss": sum(parts.values()), **parts}  # type: ignore[dict-item]


# ----------------------------------------------------------------------------- task
class SANTask:
    """What the generic loop needs to train SAN (see loop.Task)."""

    model_name = "san"
    primary_metric = "val/loss"
    loop_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 30,
        "batch_size": 64,
        "lr": 1e-3,
        "patience": 8,
    }
    device = "cpu"
    directions: ClassVar[dict[str, str]] = {"train/loss": "min", "val/loss": "min",
                  "val/gesture_acc": "max", "val/camera_acc": "max",
                  **{f"val/{key}": "min" for key in HEADS}, **{f"train/{key}": "min" for key in HEADS}}  # fmt: skip

    def __init__(
        self, path: Path, seed: int, val_fraction: float = VAL_FRACTION
    ) -> None:
        self.data_path = path
        self.seed = seed
        sessions, self.files = read_sessions(path)
        names = sorted(sessions)
        if len(names) >= 2:
            groups = np.concatenate(
                [np.full(len(sessions[n]), i) for i, n in enumerate(names)]
            )
            rows = np.concatenate([sessions[n] for n in names])
            train_idx, val_idx = split_groups(groups, val_fraction, seed)
            self.val_sessions = sorted(names[i] for i in np.unique(groups[val_idx]))
            self.split = f"by session: {len(self.val_sessions)} of {len(names)} sessions held out (seeded)"
        else:
            rows = sessions[names[0]]
            n_val = max(1, round(len(rows) * val_fraction))
            if len(rows) - n_val < 1:
                raise DatasetError(
                    f"{path}: {len(rows)} valid frame(s) are too few to split"
                )
            train_idx, val_idx = (
                np.arange(len(rows) - n_val),
                np.arange(len(rows) - n_val, len(rows)),
            )
            self.val_sessions = []
            self.split = (
                f"by frame: the last {n_val} frames of the only session held out"
            )
        data = torch.from_numpy(rows)
        self.train, self.val = data[train_idx], data[val_idx]

    def config(self) -> dict[str, Any]:
        return {
            "data_path": str(self.data_path),
            "schema_version": SCHEMA_VERSION,
            "input_dims": DIMS,
            "targets": {
                key: {"width": width, "loss": kind}
                for key, (width, kind) in HEADS.items()
            },
            "files": len(self.files),
            "frames_accepted": sum(f["accepted"] for f in self.files),
            "frames_rejected": sum(f["rejected"] for f in self.files),
            "file_report": self.files,
            "split": self.split,
            "val_sessions": self.val_sessions,
            "n_train": int(self.train.shape[0]),
            "n_val": int(self.val.shape[0]),
            "hidden": HIDDEN,
        }

    def build_model(self) -> SAN:
        return SAN()

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> list[Tensor]:
        return shuffled_batches(self.train, batch_size, generator)

    def schedule(self, epoch: float) -> Schedule:
        return Schedule(phase="train")

    def loss(
        self, model: nn.Module, batch: Tensor, schedule: Schedule
    ) -> dict[str, Tensor]:
        return san_loss(model(batch[:, :DIMS]), split_targets(batch))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, schedule: Schedule) -> dict[str, float]:
        val = self.val.to(model_device(model))
        out, targets = model(val[:, :DIMS]), split_targets(val)
        parts = san_loss(out, targets)
        agree = {key: (out[key].argmax(1) == targets[key].argmax(1)).float().mean()
                 for key in ("gesture_probs", "camera_scores")}  # fmt: skip
        return {
            "val/loss": float(parts["loss"]),
            **{f"val/{key}": float(parts[key]) for key in HEADS},
            "val/gesture_acc": float(agree["gesture_probs"]),
            "val/camera_acc": float(agree["camera_scores"]),
        }


# ----------------------------------------------------------------------------- builder
def build(opts: TaskOptions) -> SANTask:
    s = task_settings("san", opts.extra, {"val_fraction": VAL_FRACTION})
    if opts.data is not None:
        path = Path(opts.data)
    else:
        path = datasets_dir(opts.workspace, "san") / f"demo-seed{opts.seed}"
        generate(path, opts.seed)
    task = SANTask(path, opts.seed, float(s["val_fraction"]))
    task.device = opts.device
    return task
