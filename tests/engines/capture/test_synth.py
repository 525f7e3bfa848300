"""FrameSynth: every good frame is a valid schema-v2 frame, bad ones fail for the named field."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from trainledger.engines.capture.schema import check_frame, check_line
from trainledger.engines.capture.synth import BAD_KINDS, FrameSynth, encode


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_good_frames_pass_the_schema_as_objects_and_as_lines(seed: int) -> None:
    synth = FrameSynth(seed=seed)
    for i in range(1500):
        frame = synth.next_frame(i / 30.0, i)
        assert check_frame(frame) is None, (i, check_frame(frame))
        assert check_line(encode(frame)) is None
        assert frame["frame"] == i
        assert 0.0 <= frame["phase"] < 1.0
        assert all(0.0 <= v <= 1.0 for v in frame["camera_scores"])
        assert abs(sum(frame["gesture_probs"]) - 1.0) < 1e-4
        assert frame["regime"] == int(np.argmax(frame["gesture_probs"]))
        assert 0.0 <= frame["calibration_confidence"] <= 1.0
        assert all(round(v, 5) == v for v in frame["input"] + frame["gesture_probs"])


def test_same_seed_same_frames_and_different_seeds_differ() -> None:
    a, b, c = FrameSynth(3), FrameSynth(3), FrameSynth(4)
    fa = [a.next_frame(i / 30, i) for i in range(50)]
    assert fa == [b.next_frame(i / 30, i) for i in range(50)]
    assert fa != [c.next_frame(i / 30, i) for i in range(50)]


def test_the_input_walks_slowly() -> None:
    synth = FrameSynth(0)
    xs = np.array([synth.next_frame(i / 30, i)["input"] for i in range(600)])
    step = np.abs(np.diff(xs, axis=0)).mean()
    spread = np.abs(xs - xs.mean(axis=0)).mean()
    assert step < 0.5 * spread  # neighbours are close, the session as a whole moves


def test_latency_has_a_lognormal_body_and_a_rare_long_tail() -> None:
    synth = FrameSynth(0)
    lat = np.array([synth.next_frame(i / 30, i)["latency_us"] for i in range(5000)])
    assert 300 < np.median(lat) < 500
    spikes = (lat >= 5000).mean()
    assert 0.0005 < spikes < 0.02 and lat.max() <= 20000
    assert np.percentile(lat, 99.9) > 4 * np.median(lat)


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("nan", "json"),
        ("short_input", "input"),
        ("missing_field", "latency_us"),
        ("truncated", "json"),
    ],
)
def test_bad_frames_are_rejected_for_the_right_field(kind: str, field: str) -> None:
    synth = FrameSynth(0)
    synth.next_frame(0.0, 0)
    reason = check_line(synth.bad_frame(kind))
    assert reason is not None and reason.startswith(field + ":"), reason


def test_nan_frame_carries_a_nan_literal_and_bad_frame_before_any_frame_works() -> None:
    synth = FrameSynth(5)
    line = synth.bad_frame("nan")
    assert b"NaN" in line and check_line(line) is not None
    assert synth.next_frame(0.0, 0) == FrameSynth(5).next_frame(
        0.0, 0
    )  # the walk did not move
    assert set(BAD_KINDS) == {"nan", "short_input", "missing_field", "truncated"}
    with pytest.raises(ValueError, match="unknown bad frame kind"):
        synth.bad_frame("cosmic-ray")
    assert json.loads(synth.bad_frame("missing_field")).get("latency_us") is None


def test_synth_does_not_import_torch() -> None:
    code = "import sys, trainledger.engines.capture.synth; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
