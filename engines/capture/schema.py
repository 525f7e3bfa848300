"""Capture schema v2 (seed 000's SANTrajectoryLogger): decode one JSONL line into a checked frame.

One msgspec decoder both parses and validates: exact field set, vector lengths, types, and
finite floats (msgspec refuses NaN/Infinity literals and numbers out of float range). A line
that fails gets a reason that starts with the field it is about, e.g. ``input: expected 128
numbers`` or ``latency_us: missing``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

import msgspec

SCHEMA_VERSION = 2
DIMS = 128
VECTORS = {"input": DIMS, "audio_kick": 5, "audio_hihat": 5, "audio_bass": 5, "audio_pad": 5,
           "camera_scores": 7, "phrase": 4, "gesture_probs": 8}  # fmt: skip
FIELDS = ("schema_version", "dims", "ts", "frame", "bar", "track_name", "track_time", "input",
          "audio_kick", "audio_hihat", "audio_bass", "audio_pad", "camera_scores", "cut_timing",
          "pattern_intensity", "pattern_variation", "phrase", "gesture_probs", "phase", "regime",
          "calibration_confidence", "latency_us")  # fmt: skip


def _vec(n: int) -> Any:
    return Annotated[list[float], msgspec.Meta(min_length=n, max_length=n)]


class Frame(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """One schema-v2 frame. Field order is the seed's."""

    schema_version: Literal[2]
    dims: Literal[128]
    ts: float
    frame: int
    bar: int | None
    track_name: str | None
    track_time: float | None
    input: _vec(DIMS)  # type: ignore[valid-type]
    audio_kick: _vec(5)  # type: ignore[valid-type]
    audio_hihat: _vec(5)  # type: ignore[valid-type]
    audio_bass: _vec(5)  # type: ignore[valid-type]
    audio_pad: _vec(5)  # type: ignore[valid-type]
    camera_scores: _vec(7)  # type: ignore[valid-type]
    cut_timing: float
    pattern_intensity: float
    pattern_variation: float
    phrase: _vec(4)  # type: ignore[valid-type]
    gesture_probs: _vec(8)  # type: ignore[valid-type]
    phase: float
    regime: int
    calibration_confidence: float
    latency_us: float


_decoder = msgspec.json.Decoder(Frame)
# Every line of an NDJSON body at once (the server's fast path); raises on the first bad one.
decode_lines = _decoder.decode_lines
_encoder = msgspec.json.Encoder()
_AT = re.compile(r"^(?P<msg>.*?) - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<f>[^`]+)`")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<f>[^`]+)`")


class FrameError(ValueError):
    """A line that is not a schema-v2 frame; ``reason`` starts with the field it is about."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: msgspec.MsgspecError) -> str:
    text = str(exc)
    if not isinstance(
        exc, msgspec.ValidationError
    ):  # ValidationError subclasses DecodeError
        return "json: " + text.replace("JSON is malformed: ", "malformed, ").replace(
            "Input data was truncated", "truncated"
        )
    if m := _MISSING.match(text):
        return f"{m['f']}: missing"
    if m := _UNKNOWN.match(text):
        return f"{m['f']}: unknown field"
    if m := _AT.match(text):
        msg = m["msg"]
        path = m["path"] or "frame"
        field = path.split("[", 1)[0]
        if field in VECTORS and msg.startswith("Expected `array` of length"):
            msg = f"expected {VECTORS[field]} numbers"
        elif msg == "Number out of range":
            msg = "not a finite number"
        elif msg.startswith("Invalid enum value"):
            msg = msg.replace("Invalid enum value", "unsupported value")
        return f"{path}: {msg[0].lower()}{msg[1:]}"
    if text.startswith("Expected `object`"):
        return "line: not a JSON object"
    return "line: " + text


def decode_frame(line: bytes | str) -> Frame:
    """The frame on one line; raises FrameError with a field-naming reason."""
    try:
        return _decoder.decode(line)
    except msgspec.MsgspecError as exc:
        raise FrameError(_reason(exc)) from None
    except UnicodeDecodeError as exc:  # invalid UTF-8 inside a JSON string
        raise FrameError(f"json: invalid UTF-8 at byte {exc.start}") from None


def check_line(line: bytes | str) -> str | None:
    """Why `line` is not a schema-v2 frame, or None if it is."""
    try:
        decode_frame(line)
    except FrameError as exc:
        return exc.reason
    return None


def check_frame(obj: Any) -> str | None:
    """Why an already-parsed object is not a schema-v2 frame, or None if it is."""
    try:
        msgspec.convert(obj, Frame, strict=False) if not isinstance(
            obj, Frame
        ) else None
    except msgspec.MsgspecError as exc:
        return _reason(exc)
    if isinstance(
        obj, dict
    ):  # convert() lets NaN/inf floats through; JSON text never has them
        for key in VECTORS:
            if not all(math.isfinite(v) for v in obj[key]):
                return f"{key}: not a finite number"
        for key in ("ts", "track_time", "cut_timing", "pattern_intensity", "pattern_variation",
                    "phase", "calibration_confidence", "latency_us"):  # fmt: skip
            v = obj[key]
            if isinstance(v, float) and not math.isfinite(v):
                return f"{key}: not a finite number"
    return None


def encode_frame(frame: Frame) -> bytes:
    """The frame as one compact JSON line (no newline)."""
    return _encoder.encode(frame)


def to_dict(frame: Frame) -> dict[str, Any]:
    return msgspec.structs.asdict(frame)
