"""Export a trained `san` run to the app's weights pair, with the training report seed 000 asks for.

Seed 000's rule is that training claims need files: "weights exist" is all a blob proves.
So beside `san_weights.bin` and `san_manifest.json` this writes `san_report.json`, whose
every field is either a value with the file it comes from, or null with the reason the run
cannot prove it. The checkpoint is read with safetensors' numpy loader after its sha256 is
checked against the sidecar; the checks (load count, non-flat outputs, latency, mixFactor)
run the exported bytes through this package's own numpy loader and inference, as a device
would, with no torch.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as load_safetensors

from trainledger.engines.san.infer import (
    HEADS,
    SANInference,
    baseline_of,
    expected_shapes,
    mix,
)
from trainledger.engines.san.weights import (
    describe,
    export_weights,
    load_tensors,
    load_weights,
)
from trainledger.engines.workspace import (
    atomic_write_bytes,
    atomic_write_json,
    validate_id,
)

BIN_NAME = "san_weights.bin"
MANIFEST_NAME = "san_manifest.json"
REPORT_NAME = "san_report.json"
REPORT_SCHEMA = "san-report/1"
MIX_FACTORS = (0.0, 0.25, 0.5, 0.75, 1.0)
LATENCY_FRAMES = 200  # frames timed one at a time (after a warm-up)
FLAT_STD = 1e-6  # a head whose outputs vary less than this across frames is flat


class ExportError(ValueError):
    """The run cannot be exported (not san, no checkpoint, a checksum that does not match)."""


@dataclass(frozen=True)
class ExportResult:
    bin_path: Path
    manifest_path: Path
    report_path: Path
    parameters: int  # the loader's count on the written bytes
    report: dict[str, Any]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def proven(value: Any, source: Path | str) -> dict[str, Any]:
    return {"value": value, "source": str(source)}


def unproven(reason: str) -> dict[str, Any]:
    return {"value": None, "reason": reason}


def read_checkpoint(
    run_dir: Path, tag: str
) -> tuple[dict[str, np.ndarray], dict[str, Any], Path, str]:
    """(tensors, sidecar, file, sha256) of checkpoints/<tag>, its sha256 verified."""
    validate_id(tag, "checkpoint")
    side_path = run_dir / "checkpoints" / f"{tag}.json"
    try:
        sidecar = json.loads(side_path.read_bytes())
    except FileNotFoundError:
        raise ExportError(f"{side_path}: no such checkpoint sidecar") from None
    except ValueError as exc:
        raise ExportError(f"{side_path}: not JSON ({exc})") from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("file"), str):
        raise ExportError(f"{side_path}: no checkpoint file named")
    path = run_dir / "checkpoints" / validate_id(sidecar["file"], "checkpoint file")
    data = path.read_bytes()
    digest = _sha(data)
    if digest != sidecar.get("sha256"):
        raise ExportError(
            f"{path}: sha256 {digest} does not match its sidecar {sidecar.get('sha256')}"
        )
    return load_safetensors(data), sidecar, path, digest


def validation_frames(
    run_dir: Path, config: dict[str, Any]
) -> tuple[list[dict[str, Any]], str | None]:
    """The run's validation frames as dicts (the same split as training), or ([], why not)."""
    from trainledger.engines.capture.schema import FrameError, decode_frame, to_dict

    data_path = config.get("data_path")
    report = config.get("file_report")
    if not isinstance(data_path, str) or not isinstance(report, list):
        return [], "run.json has no data_path or file_report"
    root = Path(data_path)
    files = {}
    for entry in report:
        if not isinstance(entry, dict):
            return [], "run.json file_report holds an entry that is not an object"
        path = root if root.is_file() else root / str(entry.get("file"))
        try:
            data = path.read_bytes()
        except OSError as exc:
            return [], f"training data unreadable: {exc}"
        if _sha(data) != entry.get("sha256"):
            return (
                [],
                f"{path}: sha256 differs from the run's file_report (data changed since training)",
            )
        frames = []
        for line in data.splitlines():
            if line.strip():
                try:
                    frames.append(to_dict(decode_frame(line)))
                except FrameError:
                    pass  # rejected in training too
        files[Path(str(entry.get("file"))).stem] = frames
    val_sessions = config.get("val_sessions") or []
    if val_sessions:
        return [f for name in sorted(val_sessions) for f in files.get(name, [])], None
    n_val = config.get("n_val")
    if len(files) == 1 and isinstance(n_val, int) and n_val > 0:
        return next(iter(files.values()))[-n_val:], None
    return [], "run.json does not say which frames were held out"


def _checks(model: SANInference, frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Non-flat outputs, per-frame latency and the mixFactor sweep over the validation frames."""
    inputs = np.asarray([f["input"] for f in frames], dtype=np.float32)
    preds = model.predict(inputs)
    std = {key: float(preds[key].std(axis=0).mean()) for key in HEADS}
    non_flat = {"per_head_std": std, "frames": len(frames), "flat_below": FLAT_STD,
                "non_flat": all(v > FLAT_STD for v in std.values())}  # fmt: skip
    for x in inputs[:10]:  # warm-up
        model.predict(x)
    times = []
    for x in inputs[:LATENCY_FRAMES]:
        t0 = time.perf_counter_ns()
        model.predict(x)
        times.append((time.perf_counter_ns() - t0) / 1000.0)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    latency = {"p50_us": float(p50), "p95_us": float(p95), "p99_us": float(p99), "frames": len(times),
               "how": "SANInference.predict on one 128-d input at a time, numpy, this machine"}  # fmt: skip
    baseline = {key: np.stack([baseline_of(f)[key] for f in frames]) for key in HEADS}

    def mad(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
        return float(
            np.mean(np.concatenate([np.abs(a[k] - b[k]).ravel() for k in HEADS]))
        )

    sweep = []
    for m in MIX_FACTORS:
        mixed = mix(preds, baseline, m)
        sweep.append({"mix_factor": m, "mean_abs_from_baseline": mad(mixed, baseline),
                      "mean_abs_from_model": mad(mixed, preds)})  # fmt: skip
    return {"non_flat": non_flat, "latency": latency,
            "mix": {"model_vs_baseline": mad(preds, baseline), "sweep": sweep}}  # fmt: skip


def export_run(run_dir: Path, out_dir: Path, checkpoint: str = "best") -> ExportResult:
    """Write san_weights.bin, san_manifest.json and san_report.json for `run_dir` into out_dir."""
    run_dir, out_dir = Path(run_dir).resolve(), Path(out_dir).resolve()
    run_file = run_dir / "run.json"
    try:
        info = json.loads(run_file.read_bytes())
    except FileNotFoundError:
        raise ExportError(f"{run_dir}: no run.json (not a run folder)") from None
    except ValueError as exc:
        raise ExportError(f"{run_file}: not JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("model") != "san":
        model = info.get("model") if isinstance(info, dict) else None
        raise ExportError(
            f"{run_dir.name}: model is {model!r}, only 'san' runs export to SAN weights"
        )
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    tensors, sidecar, ckpt_path, ckpt_sha = read_checkpoint(run_dir, checkpoint)
    wanted = expected_shapes()
    extra = sorted(set(tensors) - set(wanted))
    if extra:
        raise ExportError(
            f"{ckpt_path}: tensors a SAN model does not have: {', '.join(extra[:5])}"
        )
    model = SANInference(tensors)  # ValueError names what is missing or misshapen
    blob, manifest = export_weights({name: tensors[name] for name in wanted})
    bin_path, manifest_path, report_path = (
        out_dir / BIN_NAME,
        out_dir / MANIFEST_NAME,
        out_dir / REPORT_NAME,
    )
    atomic_write_bytes(bin_path, blob)
    atomic_write_bytes(manifest_path, manifest)
    blob_back, manifest_back = bin_path.read_bytes(), manifest_path.read_bytes()
    count = load_weights(blob_back, manifest_back)
    loaded = load_tensors(blob_back, manifest_back)
    frames, why = validation_frames(run_dir, config)
    checks = (
        _checks(SANInference(loaded), frames)
        if frames and isinstance(loaded, dict)
        else None
    )
    no_checks = unproven(why or f"the written weights do not load ({describe(count)})")

    def conf(key: str) -> dict[str, Any]:
        return (
            proven(config[key], run_file)
            if key in config
            else unproven(f"run.json config has no {key!r}")
        )

    data = info.get("data") if isinstance(info.get("data"), dict) else {}
    side_file = run_dir / "checkpoints" / f"{checkpoint}.json"
    report = {
        "schema": REPORT_SCHEMA,
        "created": time.time(),
        "run": proven(
            {
                "id": run_dir.name,
                "status": info.get("status"),
                "started": info.get("started"),
                "ended": info.get("ended"),
            },
            run_file,
        ),
        "command": proven(info["argv"], run_file)
        if isinstance(info.get("argv"), list)
        else unproven("run.json does not record the command line"),
        "training_data_path": conf("data_path"),
        "training_data_sha256": proven(
            {
                "tree": data.get("sha256"),
                "files": {
                    f.get("file"): f.get("sha256")
                    for f in config.get("file_report", [])
                },
            },
            run_file,
        )
        if "file_report" in config
        else unproven("run.json config has no file_report"),
        "jsonl_files": conf("files"),
        "accepted_frames": conf("frames_accepted"),
        "rejected_frames": conf("frames_rejected"),
        "schema_version": conf("schema_version"),
        "input_dims": conf("input_dims"),
        "target_fields": conf("targets"),
        "split_method": conf("split"),
        "optimizer": proven(config["optimizer"], run_file)
        if "optimizer" in config
        else unproven("run.json does not record the optimizer"),
        "learning_rate": conf("lr"),
        "checkpoint": proven(
            {
                "tag": checkpoint,
                "path": str(ckpt_path),
                "sha256": ckpt_sha,
                "epoch": sidecar.get("epoch"),
                "step": sidecar.get("step"),
            },
            side_file,
        ),
        "manifest": proven(
            {"path": str(manifest_path), "sha256": _sha(manifest_back)}, manifest_path
        ),
        "binary": proven(
            {"path": str(bin_path), "sha256": _sha(blob_back), "bytes": len(blob_back)},
            bin_path,
        ),
        "parameter_count": proven(model.parameter_count, manifest_path),
        "validation_metrics": proven(sidecar["metrics"], side_file)
        if isinstance(sidecar.get("metrics"), dict)
        else unproven(f"{side_file.name} holds no validation metrics"),
        "load_count": proven(
            {
                "code": count,
                "line": describe(count),
                "loader": "trainledger.engines.san.weights.load_weights",
            },
            bin_path,
        ),
        "validation_frames": proven(
            {"frames": len(frames)}, conf("data_path").get("value") or run_file
        )
        if frames
        else no_checks,
        "non_flat_output": proven(checks["non_flat"], bin_path)
        if checks
        else no_checks,
        "latency_us": proven(checks["latency"], bin_path) if checks else no_checks,
        "mix_factor_test": proven(checks["mix"], bin_path) if checks else no_checks,
    }
    atomic_write_json(report_path, report)
    return ExportResult(bin_path, manifest_path, report_path, count, report)
