"""Capture schema v2 (seed 000's SANTrajectoryLogger): decode one JSONL line into a checked frame.

One msgspec decoder both parses and validates: exact field set, vector lengths, types, and
finite floats (msgspec refuses NaN/Infinity literals and numbers out of float range). A line
that fails gets a reason that starts with the field it is about, e.g. ``input: expected 128
numbers`` or ``latency_us: missing``. Reasons are part of our API, so they are built here
(`explain` checks the failed line again, field by field), never taken from msgspec's messages.
"""

from __future__ import annotations

import json
import math
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


class FrameError(ValueError):
    """A line that is not a schema-v2 frame.

    ``reason`` starts with the field it is about (``input[3]: expected `float`, got `str```);
    ``kind`` is the same without positions or names a client chose (``input: expected
    `float`, got `str```), so counting rejects by kind stays a small dict.
    """

    def __init__(self, reason: str, kind: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind or reason


def decode_frame(line: bytes | str) -> Frame:
    """The frame on one line; raises FrameError with a field-naming reason."""
    try:
        return _decoder.decode(line)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        raise explain(line) from None


def check_line(line: bytes | str) -> str | None:
    """Why `line` is not a schema-v2 frame, or None if it is."""
    try:
        decode_frame(line)
    except FrameError as exc:
        return exc.reason
    return None


def check_frame(obj: Any) -> str | None:
    """Why an already-parsed object is not a schema-v2 frame, or None if it is."""
    if isinstance(obj, Frame):
        obj = to_dict(obj)
    err = check_object(obj)
    return None if err is None else err.reason


# ---------------------------------------------------------------- reasons, in our own words
# Only a line that failed the decoder comes here. It is parsed again (stdlib json, which keeps
# NaN/Infinity out) and checked field by field, so a reason never depends on msgspec's messages.

_NUM, _INT = "float", "int"
_TYPES: dict[str, tuple[str, bool]] = {  # field -> (type, null allowed); vectors apart
    "schema_version": (_INT, False), "dims": (_INT, False), "ts": (_NUM, False),
    "frame": (_INT, False), "bar": (_INT, True), "track_name": ("str", True),
    "track_time": (_NUM, True), "cut_timing": (_NUM, False), "pattern_intensity": (_NUM, False),
    "pattern_variation": (_NUM, False), "phase": (_NUM, False), "regime": (_INT, False),
    "calibration_confidence": (_NUM, False), "latency_us": (_NUM, False),
}  # fmt: skip
_LITERALS = {"schema_version": SCHEMA_VERSION, "dims": DIMS}
_JSON_WORDS = (  # what the stdlib parser expected -> our wording
    ("Expecting property name", "object keys must be strings"),
    ("Expecting ':'", "expected ':' after an object key"),
    ("Expecting ','", "expected ',' or a closing bracket"),
    ("Expecting value", "expected a value"),
    ("Extra data", "more after the end of the value"),
    ("Invalid control character", "control character inside a string"),
    ("Invalid \\escape", "invalid escape in a string"),
)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "array" if isinstance(v, list) else "object"


def _wrong_type(path: str, kind: str, want: str, v: Any) -> FrameError:
    got = _type_name(v)
    return FrameError(f"{path}: expected `{want}`, got `{got}`", f"{kind}: expected `{want}`, got `{got}`")


def _check_scalar(name: str, v: Any) -> FrameError | None:
    want, nullable = _TYPES[name]
    if v is None and nullable:
        return None
    if want == _INT and type(v) is int:
        if name in _LITERALS and v != _LITERALS[name]:
            return FrameError(f"{name}: unsupported value {v}", f"{name}: unsupported value")
        return None
    if want == _NUM and type(v) in (int, float):
        return None if math.isfinite(v) else FrameError(f"{name}: not a finite number")
    if want == "str" and type(v) is str:
        return None
    return _wrong_type(name, name, f"{want} | null" if nullable else want, v)


def _check_vector(name: str, v: Any) -> FrameError | None:
    if type(v) is not list:
        return _wrong_type(name, name, "array", v)
    if len(v) != VECTORS[name]:
        return FrameError(f"{name}: expected {VECTORS[name]} numbers")
    for i, x in enumerate(v):
        if type(x) not in (int, float):
            return _wrong_type(f"{name}[{i}]", name, "float", x)
        if not math.isfinite(x):
            return FrameError(f"{name}: not a finite number")
    return None


def check_object(obj: Any) -> FrameError | None:
    """The first problem of a parsed object, in document order, then missing fields."""
    if not isinstance(obj, dict):
        return FrameError("line: not a JSON object")
    for key, v in obj.items():
        if key in VECTORS:
            err = _check_vector(key, v)
        elif key in _TYPES:
            err = _check_scalar(key, v)
        else:
            return FrameError(f"{str(key)[:64]}: unknown field", "line: unknown field")
        if err is not None:
            return err
    for key in FIELDS:
        if key not in obj:
            return FrameError(f"{key}: missing")
    return None


def _not_json(text: str) -> None:
    raise ValueError(text)


def explain(line: bytes | str) -> FrameError:
    """Why `line` failed the decoder (it did: this is the slow path)."""
    if isinstance(line, bytes):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return FrameError(f"json: invalid UTF-8 at byte {exc.start}", "json: invalid UTF-8")
    else:
        text = line
    try:
        obj = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            return FrameError("json: truncated")
        words = next((ours for theirs, ours in _JSON_WORDS if exc.msg.startswith(theirs)), "not JSON")
        at = len(text[: exc.pos].encode("utf-8", "surrogatepass"))
        return FrameError(f"json: malformed, {words} (byte {at})", "json: malformed")
    except ValueError as exc:  # NaN, Infinity, -Infinity
        return FrameError(f"json: malformed, {exc} is not JSON", "json: malformed")
    except RecursionError:
        return FrameError("json: nested too deeply", "json: malformed")
    return check_object(obj) or FrameError("line: not a schema-v2 frame")


def encode_frame(frame: Frame) -> bytes:
    """The frame as one compact JSON line (no newline)."""
    return _encoder.encode(frame)


def to_dict(frame: Frame) -> dict[str, Any]:
    return msgspec.structs.asdict(frame)
