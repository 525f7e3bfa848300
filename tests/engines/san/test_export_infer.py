"""A real trained san run exported to the weights pair: the loader's count, numpy inference
against the torch model, the mixFactor blend, and the report's claims pointing at files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.engines.san.conftest import TrainedRun
from trainledger.engines.san.export import (
    MIX_FACTORS,
    ExportError,
    export_run,
    validation_frames,
)
from trainledger.engines.san.infer import (
    HEADS,
    SANInference,
    erf,
    expected_shapes,
    gelu,
    mix,
)
from trainledger.engines.san.weights import load_tensors, load_weights
from trainledger.engines.training import san as torch_san

pytestmark = pytest.mark.slow

REPORT_FIELDS = ["training_data_path", "training_data_sha256", "jsonl_files", "accepted_frames", "schema_version",
                 "input_dims", "target_fields", "split_method", "optimizer", "learning_rate", "checkpoint",
                 "manifest", "binary", "parameter_count", "validation_metrics", "load_count", "non_flat_output",
                 "latency_us", "mix_factor_test"]  # fmt: skip


@pytest.fixture(scope="module")
def exported(san_run: TrainedRun, tmp_path_factory: pytest.TempPathFactory):
    return export_run(san_run.run_dir, tmp_path_factory.mktemp("export"))


def torch_model(run_dir: Path, tag: str = "best") -> torch_san.SAN:
    model = torch_san.SAN()
    model.load_state_dict(
        load_file(str(run_dir / "checkpoints" / f"{tag}.safetensors"))
    )
    return model.eval()


def val_frames(run_dir: Path) -> list[dict]:
    config = json.loads((run_dir / "run.json").read_bytes())["config"]
    frames, why = validation_frames(run_dir, config)
    assert why is None and len(frames) == config["n_val"] == 60
    return frames


def test_head_table_matches_the_training_module() -> None:
    assert HEADS == {key: width for key, (width, _) in torch_san.HEADS.items()}
    assert list(HEADS) == list(torch_san.HEADS)
    state = torch_san.SAN().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected_shapes()
    assert list(state) == list(expected_shapes())


def test_erf_and_gelu_match_the_exact_forms() -> None:
    x = np.linspace(-9, 9, 40001)
    assert np.abs(erf(x) - np.array([math.erf(v) for v in x])).max() < 1e-7
    x32 = x.astype(np.float32)
    ref = torch.nn.GELU()(torch.from_numpy(x32)).numpy()
    assert np.abs(gelu(x32) - ref).max() < 1e-5


def test_export_loads_with_the_real_parameter_count(
    exported, san_run: TrainedRun
) -> None:
    n = sum(p.numel() for p in torch_san.SAN().parameters())
    assert exported.parameters == n == 104_470
    blob, manifest = exported.bin_path.read_bytes(), exported.manifest_path.read_bytes()
    assert load_weights(blob, manifest) == n and len(blob) == 4 * n
    names = [e["name"] for e in json.loads(manifest)["entries"]]
    assert names == list(expected_shapes())
    checkpoint = load_file(str(san_run.run_dir / "checkpoints" / "best.safetensors"))
    tensors = load_tensors(blob, manifest)
    assert isinstance(tensors, dict)
    for name, value in checkpoint.items():
        np.testing.assert_array_equal(tensors[name], value.numpy())


def test_numpy_inference_matches_torch_on_validation_frames(
    exported, san_run: TrainedRun
) -> None:
    tensors = load_tensors(
        exported.bin_path.read_bytes(), exported.manifest_path.read_bytes()
    )
    model = SANInference(tensors)
    inputs = np.asarray(
        [f["input"] for f in val_frames(san_run.run_dir)], dtype=np.float32
    )
    ours = model.predict(inputs)
    with torch.no_grad():
        ref = torch_model(san_run.run_dir)(torch.from_numpy(inputs))
    for key in HEADS:
        expected = ref[key].softmax(1) if key == "gesture_probs" else ref[key]
        assert ours[key].shape == (60, HEADS[key])
        np.testing.assert_allclose(ours[key], expected.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours["gesture_probs"].sum(1), 1.0, atol=1e-6)
    one = model.predict(inputs[3])
    assert one["camera_scores"].shape == (7,) and np.allclose(
        one["camera_scores"], ours["camera_scores"][3], atol=1e-6
    )


def test_mix_factor_ends_and_middle(exported, san_run: TrainedRun) -> None:
    model = SANInference(
        load_tensors(
            exported.bin_path.read_bytes(), exported.manifest_path.read_bytes()
        )
    )
    frame = val_frames(san_run.run_dir)[5]
    pred = {
        k: np.atleast_1d(v)
        for k, v in model.predict(np.asarray(frame["input"])).items()
    }
    at0, at1, half = (model.predict_frame(frame, m) for m in (0.0, 1.0, 0.5))
    for key in HEADS:
        base = np.atleast_1d(np.float32(frame[key]))
        np.testing.assert_array_equal(np.atleast_1d(at0[key]), base)
        np.testing.assert_array_equal(np.atleast_1d(at1[key]), pred[key])
        np.testing.assert_allclose(
            np.atleast_1d(half[key]), (base + pred[key]) / 2, atol=1e-6
        )
    assert isinstance(at0["cut_timing"], float) and len(at0["gesture_probs"]) == 8
    assert not np.allclose(at0["camera_scores"], at1["camera_scores"])
    for bad in (-0.01, 1.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="mix_factor"):
            mix(pred, pred, bad)
    with pytest.raises(ValueError, match="input"):
        model.predict_frame({**frame, "input": frame["input"][:10]}, 0.5)


def test_report_fields_point_at_files(exported, san_run: TrainedRun) -> None:
    report = json.loads(exported.report_path.read_bytes())
    assert report == json.loads(json.dumps(exported.report))
    for field in REPORT_FIELDS:
        claim = report[field]
        if claim["value"] is None:
            assert claim["reason"], field
        else:
            assert Path(claim["source"]).exists(), field
    assert report["optimizer"]["value"] == "adam"  # recorded by the trainer in run.json
    assert (
        report["jsonl_files"]["value"] == 3
        and report["accepted_frames"]["value"] == 180
    )
    assert (
        report["schema_version"]["value"] == 2 and report["input_dims"]["value"] == 128
    )
    assert report["learning_rate"]["value"] == 3e-3
    assert set(report["target_fields"]["value"]) == set(HEADS)
    assert Path(report["checkpoint"]["value"]["path"]).is_file()
    assert Path(report["manifest"]["value"]["path"]) == exported.manifest_path
    assert Path(report["binary"]["value"]["path"]) == exported.bin_path
    assert (
        report["load_count"]["value"]["code"]
        == report["parameter_count"]["value"]
        == 104_470
    )
    assert "val/loss" in report["validation_metrics"]["value"]
    non_flat = report["non_flat_output"]["value"]
    assert non_flat["non_flat"] and set(non_flat["per_head_std"]) == set(HEADS)
    latency = report["latency_us"]["value"]
    assert (
        0 < latency["p50_us"] <= latency["p95_us"] <= latency["p99_us"]
        and latency["frames"] == 60
    )
    sweep = report["mix_factor_test"]["value"]["sweep"]
    gap = report["mix_factor_test"]["value"]["model_vs_baseline"]
    assert [s["mix_factor"] for s in sweep] == list(MIX_FACTORS) and gap > 0
    for s in sweep:
        assert s["mean_abs_from_baseline"] == pytest.approx(
            s["mix_factor"] * gap, rel=1e-4, abs=1e-7
        )
        assert s["mean_abs_from_model"] == pytest.approx(
            (1 - s["mix_factor"]) * gap, rel=1e-4, abs=1e-7
        )


def test_last_checkpoint_exports_too(san_run: TrainedRun, tmp_path: Path) -> None:
    result = export_run(san_run.run_dir, tmp_path, checkpoint="last")
    assert result.parameters == 104_470
    assert result.report["checkpoint"]["value"]["tag"] == "last"


def copy_run(san_run: TrainedRun, tmp_path: Path) -> Path:
    return Path(shutil.copytree(san_run.run_dir, tmp_path / "run"))


def test_a_tampered_checkpoint_is_refused(san_run: TrainedRun, tmp_path: Path) -> None:
    run = copy_run(san_run, tmp_path)
    path = run / "checkpoints" / "best.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="sha256"):
        export_run(run, tmp_path / "out")
    assert not (tmp_path / "out" / "san_weights.bin").exists()


def test_only_san_runs_export(san_run: TrainedRun, tmp_path: Path) -> None:
    run = copy_run(san_run, tmp_path)
    info = json.loads((run / "run.json").read_bytes())
    (run / "run.json").write_text(json.dumps({**info, "model": "lvm-gru"}))
    with pytest.raises(ExportError, match="only 'san' runs"):
        export_run(run, tmp_path / "out")
    with pytest.raises(ExportError, match="no run.json"):
        export_run(tmp_path, tmp_path / "out")
    with pytest.raises(ExportError, match="no such checkpoint"):
        export_run(san_run.run_dir, tmp_path / "out", checkpoint="epoch-3")


def test_changed_training_data_leaves_the_checks_null_with_a_reason(
    san_run: TrainedRun, tmp_path: Path
) -> None:
    run = copy_run(san_run, tmp_path)
    data = tmp_path / "data"
    shutil.copytree(san_run.workspace / "san-training", data)
    info = json.loads((run / "run.json").read_bytes())
    info["config"]["data_path"] = str(data)
    (run / "run.json").write_text(json.dumps(info))
    session = data / "session-00.jsonl"
    session.write_bytes(session.read_bytes() + b"\n")
    report = export_run(run, tmp_path / "out").report
    for field in ("non_flat_output", "latency_us", "mix_factor_test"):
        assert (
            report[field]["value"] is None
            and "data changed since training" in report[field]["reason"]
        )
    assert report["load_count"]["value"]["code"] == 104_470


def test_inference_refuses_tensors_that_are_not_san() -> None:
    tensors = {
        name: np.zeros(shape, np.float32) for name, shape in expected_shapes().items()
    }
    SANInference(tensors)
    with pytest.raises(ValueError, match="heads.phrase.bias: missing"):
        SANInference({k: v for k, v in tensors.items() if k != "heads.phrase.bias"})
    with pytest.raises(
        ValueError, match=r"trunk.0.weight: shape \[256, 64\], expected \[256, 128\]"
    ):
        SANInference({**tensors, "trunk.0.weight": np.zeros((256, 64), np.float32)})
    model = SANInference(tensors)
    with pytest.raises(ValueError, match="inputs"):
        model.predict(np.zeros((2, 64)))
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.full(128, np.nan))
