"""Property tests: the loader answers only a positive count or -1..-4, for any bytes, and the
documented code where a mutation of a valid pair determines it. Derandomized for CI."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainledger.engines.san.weights import export_weights, load_tensors, load_weights

CODES = {-1, -2, -3, -4}
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def ok_or_code(result: int) -> bool:
    return isinstance(result, int) and (result > 0 or result in CODES)


@st.composite
def valid_pairs(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A valid blob and its manifest (as a dict): 1-5 tensors of 0-3 dims of 1-4."""
    n = draw(st.integers(1, 5))
    tensors = {}
    for i in range(n):
        shape = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
        tensors[f"t{i}.weight"] = np.full(shape, float(i) + 0.5, dtype=np.float32)
    blob, manifest = export_weights(tensors)
    return blob, json.loads(manifest)


def enc(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@FUZZ
@given(
    st.one_of(st.none(), st.binary(max_size=256)),
    st.one_of(st.none(), st.binary(max_size=512)),
)
def test_arbitrary_bytes_never_raise(
    blob: bytes | None, manifest: bytes | None
) -> None:
    assert ok_or_code(load_weights(blob, manifest))
    result = load_tensors(blob, manifest)
    assert isinstance(result, dict) or result in CODES


JSON_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(st.text(max_size=300), st.binary(min_size=1, max_size=64))
def test_arbitrary_text_manifests_never_raise(text: str, blob: bytes) -> None:
    manifest = text.encode(
        "utf-8", errors="surrogatepass"
    )  # lone surrogates: invalid UTF-8
    assert ok_or_code(load_weights(blob, manifest))


@FUZZ
@given(valid_pairs(), JSON_JUNK, st.data())
def test_junk_in_any_field_never_raises(
    pair: tuple[bytes, dict[str, Any]], junk: Any, data: st.DataObject
) -> None:
    blob, doc = pair
    where = data.draw(st.sampled_from(["schema", "dtype", "total_params", "entries", "name", "shape", "offset",
                                       "dim", "entry", "top"]))  # fmt: skip
    entry = doc["entries"][0]
    if where == "top":
        doc = junk
    elif where == "entry":
        doc["entries"][0] = junk
    elif where == "dim" and entry["shape"]:
        entry["shape"][0] = junk
    elif where in ("name", "shape", "offset"):
        entry[where] = junk
    elif where != "dim":
        doc[where] = junk
    assert ok_or_code(load_weights(blob, enc(doc)))


REQUIRED_TOP = ["schema", "dtype", "total_params", "entries"]
REQUIRED_ENTRY = ["name", "shape", "offset"]
WRONG_TYPES = st.sampled_from([None, "x", 1.5, True, [], {}, [[1]]])


@FUZZ
@given(valid_pairs(), st.data())
def test_mutations_give_the_documented_code(
    pair: tuple[bytes, dict[str, Any]], data: st.DataObject
) -> None:
    blob, doc = pair
    assert load_weights(blob, enc(doc)) == len(blob) // 4
    entries = doc["entries"]
    i = data.draw(st.integers(0, len(entries) - 1))
    kind = data.draw(st.sampled_from([
        "drop-top", "rename-top", "drop-entry-key", "rename-entry-key", "wrong-type-top", "wrong-type-entry",
        "float-offset", "duplicate-entry", "shift-offset", "change-dim", "huge", "negative", "truncate-text",
        "invalid-utf8", "truncate-blob", "extend-blob",
    ]))  # fmt: skip
    manifest: bytes
    if kind == "drop-top":
        del doc[data.draw(st.sampled_from(REQUIRED_TOP))]
        expected, manifest = -3, enc(doc)
    elif kind == "rename-top":
        key = data.draw(st.sampled_from(REQUIRED_TOP))
        doc[key.upper()] = doc.pop(key)
        expected, manifest = -3, enc(doc)
    elif kind == "drop-entry-key":
        del entries[i][data.draw(st.sampled_from(REQUIRED_ENTRY))]
        expected, manifest = -3, enc(doc)
    elif kind == "rename-entry-key":
        key = data.draw(st.sampled_from(REQUIRED_ENTRY))
        entries[i]["_" + key] = entries[i].pop(key)
        expected, manifest = -3, enc(doc)
    elif kind == "wrong-type-top":
        key = data.draw(st.sampled_from(REQUIRED_TOP))
        value = data.draw(
            WRONG_TYPES.filter(lambda v: not (key == "entries" and v == []))
        )
        doc[key] = value
        expected, manifest = -3, enc(doc)
    elif kind == "wrong-type-entry":
        key = data.draw(st.sampled_from(REQUIRED_ENTRY))
        value = data.draw(
            WRONG_TYPES.filter(lambda v: not (key == "shape" and v == []))
        )
        entries[i][key] = value
        expected, manifest = -3, enc(doc)
    elif kind == "float-offset":
        entries[i]["offset"] = float(entries[i]["offset"])
        expected, manifest = -3, enc(doc)
    elif kind == "duplicate-entry":
        entries.append(dict(entries[i]))
        expected, manifest = -3, enc(doc)
    elif kind == "shift-offset":
        entries[i]["offset"] += data.draw(st.integers(-50, 50).filter(bool))
        expected, manifest = -4, enc(doc)
    elif kind == "change-dim":
        entries[i]["shape"] = entries[i]["shape"] + [
            data.draw(st.integers(2, 9))
        ]  # size x k
        expected, manifest = -4, enc(doc)
    elif kind == "huge":
        value = data.draw(st.integers(10**19, 10**60))
        target = data.draw(st.sampled_from(["total_params", "offset", "dim"]))
        if target == "total_params":
            doc["total_params"] = value
        elif target == "offset":
            entries[i]["offset"] = value
        else:
            entries[i]["shape"] = [value, *entries[i]["shape"]]
        expected, manifest = -4, enc(doc)
    elif kind == "negative":
        value = data.draw(st.integers(-(10**30), -1))
        target = data.draw(st.sampled_from(["total_params", "offset", "dim"]))
        if target == "total_params":
            doc["total_params"] = value
        elif target == "offset":
            entries[i]["offset"] = value
        else:
            entries[i]["shape"] = [value, *entries[i]["shape"]]
        expected, manifest = -4, enc(doc)
    elif kind == "truncate-text":
        text = enc(doc)
        manifest = text[: data.draw(st.integers(1, len(text) - 1))]
        expected = -3
    elif kind == "invalid-utf8":
        text = enc(doc)
        at = data.draw(st.integers(0, len(text)))
        bad = data.draw(
            st.sampled_from([b"\xff", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
        )
        manifest = text[:at] + bad + text[at:]
        expected = -2
    elif kind == "truncate-blob":
        cut = data.draw(st.integers(1, len(blob)))
        blob = blob[:-cut]
        manifest = enc(doc)
        expected = -1 if not blob else -4
    else:  # extend-blob
        blob = blob + data.draw(st.binary(min_size=1, max_size=16))
        manifest = enc(doc)
        expected = -4
    assert load_weights(blob, manifest) == expected, kind
    assert load_tensors(blob, manifest) == expected, kind
