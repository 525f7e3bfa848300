"""Believable schema-v2 frames without a phone: the demo's live stream and the client's tests.

A slow random walk of a small hidden state drives every field, so the 128-d input, the audio
vectors and the targets move together the way a dancer in front of a camera makes them move;
`latency_us` has the long tail a real device shows. numpy only: no torch, as on a device.
`bad_frame` makes the broken lines real senders produce, so a demo shows rejects too.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import numpy as np

from trainledger.engines.capture.schema import DIMS, SCHEMA_VERSION

LATENT = 8
BPM = 120.0
BEATS_PER_BAR = 4
TRACK_SECONDS = 180.0
TRACKS = ("warmup", "four-on-the-floor", "breakdown", "the-drop", "cooldown")
BAD_KINDS = ("nan", "short_input", "missing_field", "truncated")
LATENCY_MEDIAN_US = 400.0
SPIKE_P = 0.004  # one frame in ~250 stalls for 5-20 ms (GC, thermal, a busy radio)

_encoder = msgspec.json.Encoder()


def _r(values: Any) -> list[float]:
    return [round(float(v), 5) for v in np.asarray(values).ravel()]


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.asarray(x)))


class FrameSynth:
    """Frames of one synthetic session; the same seed gives the same frames."""

    def __init__(self, seed: int = 0, session: str = "demo") -> None:
        self.session = session
        self._rng = np.random.default_rng(seed)
        rng = self._rng
        self._z = rng.standard_normal(LATENT)
        scale = 1.0 / math.sqrt(LATENT)
        self._to_input = rng.standard_normal((DIMS, LATENT)) * scale
        self._to_audio = rng.standard_normal((20, LATENT)) * scale
        self._to_camera = rng.standard_normal((7, LATENT))
        self._to_gesture = rng.standard_normal((8, LATENT)) * 1.5
        self._to_scalars = rng.standard_normal((3, LATENT))
        self._to_phrase = rng.standard_normal((4, LATENT))
        self._last: dict[str, Any] | None = None

    def _latency_us(self) -> float:
        rng = self._rng
        if rng.random() < SPIKE_P:
            return round(float(rng.uniform(5_000.0, 20_000.0)), 1)
        return round(float(rng.lognormal(math.log(LATENCY_MEDIAN_US), 0.35)), 1)

    def next_frame(self, t: float, index: int) -> dict[str, Any]:
        """The frame at `t` seconds into the session, number `index`; advances the walk."""
        rng = self._rng
        self._z = 0.985 * self._z + 0.17 * rng.standard_normal(LATENT)
        z = self._z
        beat = t * BPM / 60.0
        phase = beat / BEATS_PER_BAR % 1.0
        pulse = math.exp(-8.0 * (beat % 1.0))  # the kick's envelope on every beat
        offbeat = math.exp(-8.0 * ((beat + 0.5) % 1.0))
        x = np.tanh(self._to_input @ z + 0.05 * rng.standard_normal(DIMS))
        audio = np.tanh(self._to_audio @ z + 0.1 * rng.standard_normal(20))
        audio[0:5] = 0.3 * audio[0:5] + 0.7 * pulse
        audio[5:10] = 0.4 * audio[5:10] + 0.6 * offbeat
        logits = self._to_gesture @ z
        gesture = np.exp(logits - logits.max())
        gesture /= gesture.sum()
        scalars = _sigmoid(self._to_scalars @ z)
        track = int(t // TRACK_SECONDS)
        confidence = min(
            1.0, 0.25 + 0.7 * (1.0 - math.exp(-t / 4.0)) + 0.03 * rng.standard_normal()
        )
        frame = {
            "schema_version": SCHEMA_VERSION,
            "dims": DIMS,
            "ts": round(t, 5),
            "frame": index,
            "bar": int(beat // BEATS_PER_BAR),
            "track_name": TRACKS[track % len(TRACKS)],
            "track_time": round(t - track * TRACK_SECONDS, 5),
            "input": _r(x),
            "audio_kick": _r(audio[0:5]),
            "audio_hihat": _r(audio[5:10]),
            "audio_bass": _r(audio[10:15]),
            "audio_pad": _r(audio[15:20]),
            "camera_scores": _r(_sigmoid(self._to_camera @ z)),
            "cut_timing": round(float(scalars[0]), 5),
            "pattern_intensity": round(float(0.5 * scalars[1] + 0.5 * pulse), 5),
            "pattern_variation": round(float(scalars[2]), 5),
            "phrase": _r(_sigmoid(self._to_phrase @ z)),
            "gesture_probs": _r(gesture),
            "phase": round(phase, 5) % 1.0,
            "regime": int(gesture.argmax()),
            "calibration_confidence": round(max(0.0, confidence), 5),
            "latency_us": self._latency_us(),
        }
        self._last = frame
        return frame

    def frame_line(self, t: float, index: int) -> bytes:
        """next_frame as one compact JSON line, no newline."""
        return encode(self.next_frame(t, index))

    def bad_frame(self, kind: str) -> bytes:
        """A broken line of `kind` (one of BAD_KINDS), made from the newest frame.

        nan: a NaN literal in `input` (what JSONSerialization-free loggers write);
        short_input: 64 numbers in `input`; missing_field: no `latency_us`;
        truncated: the line cut in half, as a killed writer leaves it.
        """
        base = dict(self._last) if self._last is not None else self._peek()
        if kind == "nan":
            base["input"] = list(base["input"])
            base["input"][3] = float("nan")
            return json.dumps(base, separators=(",", ":")).encode()
        if kind == "short_input":
            base["input"] = base["input"][: DIMS // 2]
        elif kind == "missing_field":
            del base["latency_us"]
        elif kind == "truncated":
            line = encode(base)
            return line[: len(line) // 2]
        else:
            raise ValueError(
                f"unknown bad frame kind {kind!r}; known: {', '.join(BAD_KINDS)}"
            )
        return encode(base)

    def _peek(self) -> dict[str, Any]:
        """A frame that leaves the walk where it was (bad_frame before any next_frame)."""
        state = self._rng.bit_generator.state, self._z.copy()
        frame = self.next_frame(0.0, 0)
        self._rng.bit_generator.state, self._z = state
        self._last = None
        return dict(frame)


def encode(frame: dict[str, Any]) -> bytes:
    """One frame as a compact JSON line (no newline)."""
    return _encoder.encode(frame)
