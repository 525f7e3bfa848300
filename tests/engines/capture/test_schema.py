"""Schema v2: every field of seed 000 checked, and a reason that names the field."""

from __future__ import annotations

import json

import pytest

from tests.engines.capture.conftest import frame, line
from trainledger.engines.capture.schema import (
    FIELDS,
    FrameError,
    check_frame,
    check_line,
    decode_frame,
    encode_frame,
)


def test_a_good_frame_round_trips() -> None:
    decoded = decode_frame(line(3))
    assert decoded.frame == 3 and len(decoded.input) == 128
    assert json.loads(encode_frame(decoded)) == json.loads(line(3))
    assert list(json.loads(line(0))) == list(FIELDS)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"schema_version": 1}, "schema_version: unsupported value 1"),
        ({"dims": 64}, "dims: unsupported value 64"),
        ({"input": [0.0] * 127}, "input: expected 128 numbers"),
        ({"audio_pad": [0.0] * 6}, "audio_pad: expected 5 numbers"),
        ({"camera_scores": [0.0] * 6}, "camera_scores: expected 7 numbers"),
        ({"phrase": [0.0] * 3}, "phrase: expected 4 numbers"),
        ({"gesture_probs": [0.0] * 9}, "gesture_probs: expected 8 numbers"),
        ({"regime": 1.5}, "regime: expected `int`, got `float`"),
        ({"frame": True}, "frame: expected `int`, got `bool`"),
        ({"track_name": 7}, "track_name: expected `str | null`, got `int`"),
        ({"cut_timing": None}, "cut_timing: expected `float`, got `null`"),
        ({"extra": 1}, "extra: unknown field"),
    ],
)
def test_each_bad_field_is_named(changes: dict, reason: str) -> None:
    assert check_line(json.dumps(frame(0, **changes))) == reason
    assert check_frame(frame(0, **changes)) == reason


def test_missing_and_non_finite_fields_are_named() -> None:
    good = frame(0)
    del good["latency_us"]
    assert check_line(json.dumps(good)) == "latency_us: missing"
    text = line(0).decode().replace('"latency_us":1500.0', '"latency_us":1e999')
    assert "1e999" in text and check_line(text) == "latency_us: not a finite number"
    nan = frame(0)
    nan["input"][5] = float("nan")
    assert check_frame(nan) == "input: not a finite number"
    assert check_line(json.dumps(nan)).startswith("json: malformed")  # NaN is not JSON


@pytest.mark.parametrize(
    ("raw", "start"),
    [(b"[1, 2]", "line: not a JSON object"), (b'{"schema_version": 2', "json: truncated"),
     (b'{"track_name": "\xff\xfe"}', "json: invalid UTF-8 at byte"), (b"\xff", "json: ")],
)  # fmt: skip
def test_lines_that_are_not_objects_never_raise_anything_but_frame_error(raw: bytes, start: str) -> None:
    assert check_line(raw).startswith(start)
    with pytest.raises(FrameError):
        decode_frame(raw)


def test_reasons_are_ours_with_the_byte_offset_and_a_kind_without_positions() -> None:
    cases = {
        b'{"track_name": "\xff\xfe"}': ("json: invalid UTF-8 at byte 16", "json: invalid UTF-8"),
        '{"track_name": "é", x}'.encode(): ("json: malformed, object keys must be strings (byte 21)",
                                              "json: malformed"),
        line(0).replace(b"[0.0,", b'["a",', 1): ("input[0]: expected `float`, got `str`",
                                                 "input: expected `float`, got `str`"),
        json.dumps(frame(0, zzz=1)).encode(): ("zzz: unknown field", "line: unknown field"),
        b'{"schema_version": 2, "dims": 128, "ts": NaN}': ("json: malformed, NaN is not JSON", "json: malformed"),
    }  # fmt: skip
    for raw, (reason, kind) in cases.items():
        with pytest.raises(FrameError) as err:
            decode_frame(raw)
        assert (err.value.reason, err.value.kind) == (reason, kind), raw


@pytest.mark.parametrize("field", FIELDS)
def test_every_line_the_decoder_refuses_gets_a_specific_reason(field: str) -> None:
    good = frame(0)
    for value in (None, True, 1, 1.5, 2**70, "x", [], [1.0] * 128, {}, -0.0):
        bad = {**good, field: value}
        text = json.dumps(bad)
        reason = check_line(text)
        if reason is None:  # the decoder took it; the object check must agree
            assert check_frame(bad) is None, (field, value)
            continue
        assert reason.startswith(f"{field}"), (field, value, reason)
        assert check_frame(bad) == reason
