"""field_preservation, lvm_dataset and data_pool on files built to pass and to fail (no training).

The subjects are run folders written through MetricsWriter, as any script writes one; the
artifacts are real JSON, JSON Lines and .npz files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from trainledger.engines.checks.data_checks import BadPath, FieldPath, field_counts
from trainledger.engines.checks.runner import run_checks
from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.provenance.subject import resolve
from trainledger.engines.training import datapool
from trainledger.engines.workspace import Workspace


def make_run(ws: Workspace, run_id: str, model: str, data_file: Path | None = None, **extra: object) -> str:
    task_options = {"data": str(data_file) if data_file else None, "seed": 0, "set": {}}
    with MetricsWriter(ws, run_id, model=model, extra={"task_options": task_options, **extra}) as run:
        run.log({"train/loss": 1.0, "lr": 0.001}, step=1, epoch=0.5)
    return run_id


def one(ws: Workspace, subject: str, name: str, **options: object):
    results = run_checks(ws, resolve(ws, subject), only=name, options=options)
    assert [r.name for r in results] == [name]
    return results[0]


def saved_model(path: Path, with_token: bool, n: int = 1500) -> Path:
    """A saved model shaped like seed 001's: 1,500 audio_frames, with or without gesture_token."""
    frames = []
    for i in range(n):
        frame = {"t": i * 0.01, "features": [0.1, 0.2], "consonance": 0.5}
        if with_token:
            frame["gesture_token"] = i % 64
        frames.append(frame)
    path.write_text(json.dumps({"format": "audio-oracle", "audio_frames": frames, "states": [{"id": 0}]}))
    return path


# --------------------------------------------------------------------------- field_preservation
def test_field_preservation_fails_on_0_of_1500(ws: Workspace, tmp_path: Path) -> None:
    run = make_run(ws, "r", "vocab")
    art = saved_model(tmp_path / "model.json", with_token=False)
    fields = "audio_frames[].gesture_token,audio_frames[].features"
    r = one(ws, run, "field_preservation", artifact=str(art), fields=fields)
    assert r.ok is False and r.figure == 0.0
    assert r.reason == "0 of 1,500 audio_frames[] carry gesture_token"
    assert r.details["fields"]["audio_frames[].gesture_token"] == {"count": 0, "total": 1500, "share": 0.0}
    assert r.details["fields"]["audio_frames[].features"]["count"] == 1500
    assert r.evidence == (str(art),)


def test_field_preservation_passes_when_every_frame_has_it(ws: Workspace, tmp_path: Path) -> None:
    run = make_run(ws, "r", "vocab")
    art = saved_model(tmp_path / "model.json", with_token=True)
    r = one(ws, run, "field_preservation", artifact=str(art), fields=["audio_frames[].gesture_token"])
    assert r.ok is True and r.figure == 1.0


def test_field_preservation_jsonl_records_are_lines_and_null_is_missing(ws: Workspace, tmp_path: Path) -> None:
    run = make_run(ws, "r", "san")
    art = tmp_path / "frames.jsonl"
    lines = [{"frame": i, "regime": (None if i % 4 == 0 else 1), "meta": {"take": i}} for i in range(8)]
    art.write_text("".join(json.dumps(x) + "\n" for x in lines) + "\n")  # a blank last line is no record
    r = one(ws, run, "field_preservation", artifact=str(art), fields="regime,meta.take")
    assert r.ok is True and r.figure == 0.75
    assert r.details["fields"]["regime"] == {"count": 6, "total": 8, "share": 0.75}
    assert r.details["fields"]["meta.take"]["count"] == 8
    assert one(ws, run, "field_preservation", artifact=str(art), fields="gesture_token").ok is False


def test_field_preservation_names_the_bad_line(ws: Workspace, tmp_path: Path) -> None:
    run = make_run(ws, "r", "san")
    art = tmp_path / "frames.jsonl"
    art.write_text('{"a": 1}\n{"a": 2}\n{"a": 3,\n{"a": 4}\n')
    r = one(ws, run, "field_preservation", artifact=str(art), fields="a")
    assert r.ok is False and r.reason.startswith("frames.jsonl: line 3: not JSON")
    doc = tmp_path / "model.json"
    doc.write_text('{\n  "audio_frames": [\n    {"t": 0},\n    {"t": 1,}\n  ]\n}\n')
    r = one(ws, run, "field_preservation", artifact=str(doc), fields="audio_frames[].t")
    assert r.ok is False and r.reason.startswith("model.json: line 4: not JSON")


def test_field_preservation_refuses_a_fifo_and_reports_a_missing_file(ws: Workspace, tmp_path: Path) -> None:
    run = make_run(ws, "r", "san")
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    r = one(ws, run, "field_preservation", artifact=str(fifo), fields="a")  # returns: never blocks
    assert r.ok is False and "not a regular file" in r.reason
    r = one(ws, run, "field_preservation", artifact=str(tmp_path / "gone.json"), fields="a")
    assert r.ok is False and "no such file" in r.reason


def test_field_paths() -> None:
    doc = {"a": [{"b": [{"c": 1}, {"c": None}, {}]}, {"b": [{"c": 2}]}], "top": 1}
    assert FieldPath.parse("a[].b[].c").count(doc) == (2, 4)
    assert FieldPath.parse("top").count(doc) == (1, 1)
    assert FieldPath.parse("[].x").count([{"x": 1}, {"y": 2}]) == (1, 2)
    assert FieldPath.parse("nothing[].x").count(doc) == (0, 0)
    for bad in ("", "a[]", "a..b", "a[0].b", "a[].b[]"):
        with pytest.raises(BadPath):
            FieldPath.parse(bad)


def test_field_preservation_no_records_at_the_path_fails(ws: Workspace, tmp_path: Path) -> None:
    run = make_run(ws, "r", "vocab")
    art = saved_model(tmp_path / "model.json", with_token=True)
    r = one(ws, run, "field_preservation", artifact=str(art), fields="frames[].gesture_token")
    assert r.ok is False and "no records at that path" in r.reason
    assert field_counts(art, ["states[].id"]) == {"states[].id": (1, 1)}


# --------------------------------------------------------------------------- lvm_dataset
def lvm_arrays(n_docs: int = 4, doc_len: int = 12, dim: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = n_docs * (doc_len - 5)
    return {
        "context_vectors": rng.standard_normal((n, 5, dim)).astype(np.float32),
        "target_vectors": rng.standard_normal((n, dim)).astype(np.float32),
        "doc_ids": np.repeat(np.arange(n_docs, dtype=np.int32), doc_len - 5),
        "positions": np.tile(np.arange(5, doc_len, dtype=np.int32), n_docs),
    }


def lvm_run(ws: Workspace, tmp_path: Path, arrays: dict[str, np.ndarray], name: str = "data.npz", **extra) -> str:
    path = tmp_path / name
    np.savez(path, **arrays)
    return make_run(ws, f"lvm-{name.replace('.', '-')}", "lvm-gru", data_file=path, **extra)


def test_lvm_dataset_passes_a_coherent_npz(ws: Workspace, tmp_path: Path) -> None:
    run = lvm_run(ws, tmp_path, {**lvm_arrays(), "dataset_source": np.array("wikipedia")})
    r = one(ws, run, "lvm_dataset")
    assert r.ok is True, r.reason
    assert r.figure == {"examples": 28, "incoherent_rows": 0}
    assert r.details["sources"] == ["wikipedia"]


def test_lvm_dataset_reports_the_first_non_consecutive_position(ws: Workspace, tmp_path: Path) -> None:
    arrays = lvm_arrays()
    arrays["positions"] = arrays["positions"].copy()
    arrays["positions"][10] += 3  # doc 1 (rows 7-13, positions 5-11), its 4th row: 8 + 3
    r = one(ws, lvm_run(ws, tmp_path, arrays), "lvm_dataset")
    assert r.ok is False
    assert r.details["first_incoherent"] == {"row": 10, "doc_id": 1, "position": 11, "expected": 8}
    assert r.figure["incoherent_rows"] == 2  # row 10 jumps ahead, row 11 then steps back
    assert "doc 1 at row 10 has position 11, expected 8" in r.reason


def test_lvm_dataset_interleaved_docs_are_coherent(ws: Workspace, tmp_path: Path) -> None:
    arrays = lvm_arrays()
    order = np.argsort(arrays["positions"], kind="stable")  # rows of every doc interleaved
    arrays = {k: v[order] for k, v in arrays.items()}
    assert one(ws, lvm_run(ws, tmp_path, arrays), "lvm_dataset").ok is True


def test_lvm_dataset_refuses_a_pickled_object_array(ws: Workspace, tmp_path: Path) -> None:
    arrays = lvm_arrays()
    arrays["doc_ids"] = np.array([f"doc{d}" for d in arrays["doc_ids"]], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)  # numpy pickles the object array into the archive
    r = one(ws, make_run(ws, "pickled", "lvm-amn", data_file=path), "lvm_dataset")
    assert r.ok is False and r.reason.startswith("refused: pickled object array 'doc_ids'")


def test_lvm_dataset_keys_and_shapes(ws: Workspace, tmp_path: Path) -> None:
    arrays = lvm_arrays()
    missing = {k: v for k, v in arrays.items() if k != "positions"}
    r = one(ws, lvm_run(ws, tmp_path, missing, "missing.npz"), "lvm_dataset")
    assert r.ok is False and "missing key 'positions'" in r.reason
    wrong = {**arrays, "context_vectors": arrays["context_vectors"][:, :4]}
    r = one(ws, lvm_run(ws, tmp_path, wrong, "ctx4.npz"), "lvm_dataset")
    assert r.ok is False and "must be [N,5,D], got [28, 4, 8]" in r.reason
    floats = {**arrays, "positions": arrays["positions"].astype(np.float32)}
    r = one(ws, lvm_run(ws, tmp_path, floats, "floatpos.npz"), "lvm_dataset")
    assert r.ok is False and "must hold integers" in r.reason
    (tmp_path / "text.npz").write_text("not a zip")
    r = one(ws, make_run(ws, "notzip", "lvm-gru", data_file=tmp_path / "text.npz"), "lvm_dataset")
    assert r.ok is False and "not a .npz archive" in r.reason


def test_lvm_dataset_fails_a_taxonomic_source(ws: Workspace, tmp_path: Path) -> None:
    run = lvm_run(ws, tmp_path, {**lvm_arrays(), "dataset_source": np.array("WordNet noun hierarchy")})
    r = one(ws, run, "lvm_dataset")
    assert r.ok is False and "taxonomic data source 'WordNet noun hierarchy'" in r.reason
    # declared in run.json instead of the file
    path = tmp_path / "plain.npz"
    np.savez(path, **lvm_arrays())
    declared = {"path": str(path), "source": "DBpedia ontology chains"}
    run = make_run(ws, "onto", "lvm-lstm", data_file=path, data=declared)
    r = one(ws, run, "lvm_dataset")
    assert r.ok is False and "'DBpedia ontology chains'" in r.reason


# --------------------------------------------------------------------------- data_pool
def write_pool(path: Path, n: int, bad: dict[int, str] | None = None) -> Path:
    """`n` valid lines (1 in 5 chat), with the given 1-based line numbers replaced by raw text."""
    lines = [json.dumps(s) for s in datapool.demo_samples(n)]
    for lineno, text in sorted((bad or {}).items()):
        lines.insert(lineno - 1, text)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_data_pool_names_a_bad_instruction_line(ws: Workspace, tmp_path: Path) -> None:
    pool = write_pool(tmp_path / "pool.jsonl", 150, {7: json.dumps({"instruction": "Say hi.", "input": ""}),
                                                     40: '{"instruction": "x", "output": '})  # fmt: skip
    run = make_run(ws, "r", "lm-base")
    r = one(ws, run, "data_pool", data=str(pool))
    assert r.ok is False
    assert r.details["problems"] == [{"file": str(pool), "line": 7, "reason": "missing output"},
                                     {"file": str(pool), "line": 40, "reason": "not JSON"}]  # fmt: skip
    assert r.reason.startswith(f"2 bad lines; first {pool}:7: missing output")
    # the same counts as the trainer's own reader
    trainer = datapool.read_pool(pool)
    assert r.figure == len(trainer.samples) == 150
    assert r.details["rejects"] == dict(trainer.rejects)


def test_data_pool_split_and_threshold(ws: Workspace, tmp_path: Path) -> None:
    run = make_run(ws, "r", "lm-base")
    pool = write_pool(tmp_path / "pool.jsonl", 120)
    r = one(ws, run, "data_pool", data=str(pool))
    assert r.ok is True, r.reason
    train, val = datapool.read_pool(pool).split()
    assert (r.details["train"], r.details["val"]) == (len(train), len(val)) and len(train) + len(val) == 120
    small = write_pool(tmp_path / "small.jsonl", 99)
    r = one(ws, run, "data_pool", data=str(small))
    assert r.ok is False and "below the ready-to-train threshold of 100" in r.reason
    assert one(ws, run, "data_pool", data=str(small), threshold=50).ok is True


def test_data_pool_duplicates_are_counted_not_failed(ws: Workspace, tmp_path: Path) -> None:
    first = json.dumps(datapool.demo_samples(1)[0])
    pool = write_pool(tmp_path / "pool.jsonl", 100, {101: first})
    r = one(ws, make_run(ws, "r", "lm-base"), "data_pool", data=str(pool))
    assert r.ok is True and r.details["rejects"] == {"duplicate": 1}


def test_data_pool_applies_only_where_there_is_a_pool(ws: Workspace, tmp_path: Path) -> None:
    npz = tmp_path / "d.npz"
    np.savez(npz, **lvm_arrays())
    run = make_run(ws, "lvm", "lvm-gru", data_file=npz)
    assert all(r.name != "data_pool" for r in run_checks(ws, resolve(ws, run)))
    folder = tmp_path / "pool"
    folder.mkdir()
    write_pool(folder / "a.jsonl", 60)
    (folder / "sub").mkdir()
    write_pool(folder / "sub" / "b.jsonl", 60)  # the same 60 samples again: duplicates
    r = one(ws, run, "data_pool", data=str(folder))
    assert r.details["n_files"] == 2 and r.figure == 60 and r.ok is False
