"""meta.json: tags, note, archived and a rename kept beside run.json, read into RunInfo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.runmeta import META_FILE, META_SCHEMA, InvalidMeta, read_meta, validate_tag, write_meta
from trainledger.engines.workspace import Workspace, classify_change, list_runs, read_run_info, resolve_run


def _run(ws: Workspace, run_id: str, name: str | None = None) -> Path:
    with MetricsWriter(ws, run_id, name=name, model="mlp") as w:
        w.log({"loss": 1.0}, step=0)
    return w.dir


def test_missing_meta_reads_as_defaults(ws: Workspace) -> None:
    d = _run(ws, "r1", name="from-run-json")
    meta = read_meta(d)
    assert (meta.name, meta.tags, meta.note, meta.archived) == (None, (), "", False)
    info = read_run_info(d)
    assert info.name == "from-run-json" and info.tags == () and info.note == "" and not info.archived


def test_write_changes_only_the_given_fields(ws: Workspace) -> None:
    d = _run(ws, "r1", name="old")
    write_meta(d, tags=["baseline", "lr-sweep", "baseline"])
    write_meta(d, note="first try\nwith a second line")
    write_meta(d, name="renamed")
    write_meta(d, archived=True)
    doc = json.loads((d / META_FILE).read_text())
    assert doc["schema"] == META_SCHEMA and isinstance(doc["updated_at"], float)
    assert doc["tags"] == ["baseline", "lr-sweep"] and doc["note"] == "first try\nwith a second line"
    assert doc["name"] == "renamed" and doc["archived"] is True
    info = read_run_info(d)
    assert info.name == "renamed" and info.label == "renamed"  # meta's name overrides run.json's
    assert info.tags == ("baseline", "lr-sweep") and info.archived
    assert json.loads((d / "run.json").read_text())["name"] == "old"  # run.json untouched
    write_meta(d, name=None)
    assert read_run_info(d).name == "old"
    assert [n for n in os.listdir(d) if n.endswith(".tmp")] == []  # atomic: no temp file left


@pytest.mark.parametrize("bad", ["", "a b", "a,b", "tab\there", "esc\x1b[31m", "x" * 41, "nl\n"])
def test_bad_tags_are_refused(bad: str, ws: Workspace) -> None:
    d = _run(ws, "r1")
    with pytest.raises(InvalidMeta):
        validate_tag(bad)
    with pytest.raises(InvalidMeta):
        write_meta(d, tags=[bad])
    assert not (d / META_FILE).exists()


def test_good_tags() -> None:
    for tag in ("a", "x" * 40, "lr=3e-4", "ünïcode", "v1.2"):
        assert validate_tag(tag) == tag


def test_bad_names_are_refused(ws: Workspace) -> None:
    d = _run(ws, "r1")
    for bad in ("", "   ", "a\x1b]2;x\x07", "x" * 201):
        with pytest.raises(InvalidMeta):
            write_meta(d, name=bad)


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'{"tags": "a", "archived": "yes"}',
                                     b'{"tags": ["ok", "bad tag", 3], "name": 7}'])
def test_hand_edited_meta_is_read_leniently(content: bytes, ws: Workspace) -> None:
    d = _run(ws, "r1", name="n")
    (d / META_FILE).write_bytes(content)
    info = read_run_info(d)
    assert info.name == "n" and not info.archived
    assert info.tags in ((), ("ok",))


def test_meta_fifo_is_not_read(ws: Workspace) -> None:
    d = _run(ws, "r1")
    os.mkfifo(d / META_FILE)
    assert read_meta(d).tags == ()  # returns at once instead of blocking on the FIFO


def test_write_meta_never_creates_a_run_folder(ws: Workspace) -> None:
    with pytest.raises(FileNotFoundError):
        write_meta(ws.runs_dir / "nope", tags=["x"])
    assert not (ws.runs_dir / "nope").exists()


def test_a_meta_change_is_a_run_change(ws: Workspace) -> None:
    d = _run(ws, "r1")
    change = classify_change(ws.root, d / META_FILE)
    assert change is not None and change.kind == "run" and change.run_id == "r1"


def test_resolve_run_by_id_then_unique_name(ws: Workspace) -> None:
    _run(ws, "r1", name="alpha")
    _run(ws, "r2", name="twin")
    _run(ws, "r3", name="twin")
    _run(ws, "alpha", name="beta")  # an id wins over another run's name
    assert resolve_run(ws, "r1").id == "r1"
    assert resolve_run(ws, "alpha").id == "alpha"
    assert resolve_run(ws, "beta").id == "alpha"
    with pytest.raises(ValueError, match=r"ambiguous.*r2, r3"):
        resolve_run(ws, "twin")
    with pytest.raises(ValueError, match="no run with id or name"):
        resolve_run(ws, "gamma")
    with pytest.raises(ValueError):
        resolve_run(ws, "../../etc")
    write_meta(ws.run_dir("r3"), name="renamed")  # a rename makes the name unique
    assert resolve_run(ws, "twin").id == "r2" and resolve_run(ws, "renamed").id == "r3"
    assert [r.name for r in list_runs(ws)] == ["beta", "alpha", "twin", "renamed"]
