"""The weights pair: export, round trip, and every loader code on hand-made malformed inputs."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import numpy as np
import pytest

from tests.engines.san.conftest import Pair, small_tensors
from trainledger.engines.san.weights import export_weights, load_tensors, load_weights


def enc(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def with_top(pair: Pair, **changes: Any) -> bytes:
    doc = pair.doc()
    for key, value in changes.items():
        if value is DROP:
            del doc[key]
        else:
            doc[key] = value
    return enc(doc)


def with_entry(pair: Pair, index: int, **changes: Any) -> bytes:
    doc = pair.doc()
    for key, value in changes.items():
        if value is DROP:
            del doc["entries"][index][key]
        else:
            doc["entries"][index][key] = value
    return enc(doc)


DROP = object()


def test_round_trip_equal_tensors_in_order(pair: Pair) -> None:
    assert load_weights(pair.blob, pair.manifest) == 11
    loaded = load_tensors(pair.blob, pair.manifest)
    assert isinstance(loaded, dict) and list(loaded) == ["a", "b", "s"]
    for name, value in pair.tensors.items():
        assert loaded[name].dtype == np.float32 and loaded[name].shape == value.shape
        np.testing.assert_array_equal(loaded[name], value)


def test_blob_is_little_endian_float32_back_to_back() -> None:
    blob, manifest = export_weights(
        {"x": np.array([1.0, -2.0]), "y": np.array([[0.5]])}
    )
    assert blob == b"\x00\x00\x80\x3f" + b"\x00\x00\x00\xc0" + b"\x00\x00\x00\x3f"
    doc = json.loads(manifest)
    assert doc == {"schema": "san-manifest/1", "dtype": "float32", "total_params": 3,
                   "entries": [{"name": "x", "shape": [2], "offset": 0},
                               {"name": "y", "shape": [1, 1], "offset": 2}]}  # fmt: skip


def test_manifest_bytes_are_deterministic() -> None:
    a = export_weights(small_tensors())
    b = export_weights(small_tensors())
    assert a == b
    reordered = dict(reversed(list(small_tensors().items())))
    assert (
        export_weights(reordered)[1] != a[1]
    )  # the mapping's order is the blob's order


def test_entries_in_any_order_still_load(pair: Pair) -> None:
    doc = pair.doc()
    doc["entries"].reverse()
    tensors = load_tensors(pair.blob, enc(doc))
    assert isinstance(tensors, dict) and list(tensors) == ["s", "b", "a"]
    np.testing.assert_array_equal(tensors["a"], pair.tensors["a"])


def test_bytearray_and_memoryview_inputs(pair: Pair) -> None:
    assert load_weights(bytearray(pair.blob), memoryview(pair.manifest)) == 11


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"x": np.zeros((0, 3))},
        {"x": np.array([np.nan])},
        {"x": np.array([np.inf])},
        {"": np.ones(1)},
    ],
    ids=["empty-mapping", "empty-tensor", "nan", "inf", "empty-name"],
)
def test_export_refuses(bad: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError):
        export_weights(bad)


# ------------------------------------------------------------------ -1
def test_missing_or_empty_input_is_minus_1(pair: Pair) -> None:
    cases = [(None, pair.manifest), (pair.blob, None), (None, None), (b"", pair.manifest), (pair.blob, b""),
             (b"", b""), (pair.blob, pair.manifest.decode()), ("x", pair.manifest), (pair.blob, 42)]  # fmt: skip
    for blob, manifest in cases:
        assert load_weights(blob, manifest) == -1, (blob, manifest)
        assert load_tensors(blob, manifest) == -1


# ------------------------------------------------------------------ -2
@pytest.mark.parametrize(
    "manifest",
    [b"\xff", b'{"schema": "san-manifest/1\xc3"}', b"\xed\xa0\x80", b"\xc0\xaf", b'{"name": "caf\xe9"}',
     b"\xf8\x88\x80\x80\x80", b'{"a": 1}\x80'],
    ids=["ff", "truncated-sequence", "encoded-surrogate", "overlong", "latin1", "five-byte", "trailing-continuation"],
)  # fmt: skip
def test_invalid_utf8_is_minus_2(pair: Pair, manifest: bytes) -> None:
    assert load_weights(pair.blob, manifest) == -2


def test_utf8_check_comes_before_json(pair: Pair) -> None:
    assert (
        load_weights(pair.blob, pair.manifest[:20] + b"\xff" + pair.manifest[20:]) == -2
    )


# ------------------------------------------------------------------ -3
def minus_3_cases(pair: Pair) -> dict[str, bytes]:
    text = pair.manifest.decode()
    return {
        "not-json": b"not json",
        "truncated": pair.manifest[: len(pair.manifest) // 2],
        "trailing-garbage": pair.manifest + b"x",
        "bom": b"\xef\xbb\xbf" + pair.manifest,
        "array-top": b"[]",
        "null-top": b"null",
        "string-top": b'"san-manifest/1"',
        "nan": text.replace('"total_params": 11', '"total_params": NaN').encode(),
        "infinity": text.replace('"offset": 0', '"offset": Infinity').encode(),
        "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
        "deep-nesting-object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "duplicate-key": pair.manifest.replace(
            b'"dtype"', b'"dtype": "float32", "dtype"', 1
        ),
        "schema-wrong": with_top(pair, schema="san-manifest/2"),
        "schema-missing": with_top(pair, schema=DROP),
        "dtype-float16": with_top(pair, dtype="float16"),
        "dtype-missing": with_top(pair, dtype=DROP),
        "total-string": with_top(pair, total_params="11"),
        "total-bool": with_top(pair, total_params=True),
        "total-null": with_top(pair, total_params=None),
        "total-missing": with_top(pair, total_params=DROP),
        "entries-object": with_top(pair, entries={"a": 1}),
        "entries-missing": with_top(pair, entries=DROP),
        "entry-list": with_top(pair, entries=[["a", [2, 3], 0]]),
        "name-missing": with_entry(pair, 0, name=DROP),
        "name-number": with_entry(pair, 0, name=5),
        "name-empty": with_entry(pair, 0, name=""),
        "shape-string": with_entry(pair, 0, shape="2x3"),
        "shape-missing": with_entry(pair, 1, shape=DROP),
        "shape-null-dim": with_entry(pair, 0, shape=[2, None]),
        "shape-nested": with_entry(pair, 0, shape=[[2, 3]]),
        "offset-null": with_entry(pair, 1, offset=None),
        "offset-missing": with_entry(pair, 1, offset=DROP),
        "offset-string": with_entry(pair, 1, offset="6"),
        "duplicate-name": with_entry(pair, 1, name="a"),
    }


def test_not_json_or_not_the_schema_is_minus_3(pair: Pair) -> None:
    cases = minus_3_cases(pair)
    assert len(cases) >= 30
    for name, manifest in cases.items():
        assert load_weights(pair.blob, manifest) == -3, name


@pytest.mark.parametrize("field", ["total_params", "offset", "dim"])
@pytest.mark.parametrize("value", ["11.0", "6.0", "1e1", "true", "false"])
def test_floats_and_bools_where_ints_belong_are_minus_3(
    pair: Pair, field: str, value: str
) -> None:
    doc = pair.doc()
    marker = "__X__"
    if field == "total_params":
        doc["total_params"] = marker
    elif field == "offset":
        doc["entries"][1]["offset"] = marker
    else:
        doc["entries"][0]["shape"][0] = marker
    manifest = json.dumps(doc).replace(f'"{marker}"', value).encode()
    assert load_weights(pair.blob, manifest) == -3


def test_lone_surrogate_name_is_minus_3(pair: Pair) -> None:
    manifest = pair.manifest.replace(b'"name": "a"', b'"name": "\\ud800"')
    assert load_weights(pair.blob, manifest) == -3


def test_unknown_keys_are_ignored(pair: Pair) -> None:
    doc = pair.doc()
    doc["producer"] = {"anything": [1, 2]}
    doc["entries"][0]["note"] = "fine"
    assert load_weights(pair.blob, enc(doc)) == 11


# ------------------------------------------------------------------ -4
def minus_4_cases(pair: Pair) -> dict[str, tuple[bytes, bytes]]:
    m, b = pair.manifest, pair.blob
    return {
        "blob-not-multiple-of-4": (b[:-1], m),
        "blob-one-float-short": (b[:-4], m),
        "blob-one-float-long": (b + b"\x00" * 4, m),
        "blob-much-longer": (b * 3, m),
        "total-too-big": (b, with_top(pair, total_params=12)),
        "total-too-small": (b, with_top(pair, total_params=10)),
        "total-negative": (b, with_top(pair, total_params=-11)),
        "total-huge": (b, with_top(pair, total_params=10**40)),
        "dim-negative": (b, with_entry(pair, 0, shape=[-2, -3])),
        "dim-zero": (b, with_entry(pair, 2, shape=[0])),
        "dim-huge": (b, with_entry(pair, 0, shape=[10**40])),
        "dims-overflow-product": (b, with_entry(pair, 0, shape=[10**9, 10**9, 10**9])),
        "dim-thousands-of-digits": (
            b,
            with_entry(pair, 0, shape=[77]).replace(b"77", b"9" * 5000),
        ),
        "shape-grows": (b, with_entry(pair, 1, shape=[5])),
        "shape-shrinks": (b, with_entry(pair, 1, shape=[3])),
        "offset-negative": (b, with_entry(pair, 0, offset=-1)),
        "offset-overlap": (b, with_entry(pair, 1, offset=5)),
        "offset-gap": (b, with_entry(pair, 1, offset=7)),
        "offset-past-end": (b, with_entry(pair, 2, offset=11)),
        "offset-huge": (b, with_entry(pair, 2, offset=10**30)),
        "same-offset-twice": (b, with_entry(pair, 2, offset=6)),
        "entries-empty": (b, with_top(pair, entries=[], total_params=0)),
        "nan-in-blob": (np.array([np.nan] + [0] * 10, "<f4").tobytes(), m),
        "inf-in-blob": (np.array([0] * 10 + [-np.inf], "<f4").tobytes(), m),
    }


def test_size_shape_offset_bounds_mismatch_is_minus_4(pair: Pair) -> None:
    cases = minus_4_cases(pair)
    for name, (blob, manifest) in cases.items():
        assert load_weights(blob, manifest) == -4, name
        assert load_tensors(blob, manifest) == -4, name


def test_schema_errors_win_over_bounds_errors(pair: Pair) -> None:
    doc = pair.doc()
    doc["total_params"] = 999  # -4 on its own
    doc["dtype"] = "float64"  # -3
    assert load_weights(pair.blob, enc(doc)) == -3


def test_at_least_25_distinct_malformed_inputs(pair: Pair) -> None:
    inputs = {(b, m) for b, m in minus_4_cases(pair).values()}
    inputs |= {(pair.blob, m) for m in minus_3_cases(pair).values()}
    assert len(inputs) >= 50


def test_claimed_sizes_allocate_nothing(pair: Pair) -> None:
    """A manifest that claims a billion floats over a 44-byte blob costs kilobytes, not gigabytes."""
    claims = [
        with_top(
            pair,
            total_params=10**9,
            entries=[{"name": "x", "shape": [10**9], "offset": 0}],
        ),
        with_top(
            pair,
            total_params=11,
            entries=[{"name": "x", "shape": [10**6, 10**6, 10**6], "offset": 0}],
        ),
        with_entry(pair, 0, offset=10**18 - 1),
    ]
    tracemalloc.start()
    try:
        for manifest in claims:
            assert load_weights(pair.blob, manifest) == -4
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
