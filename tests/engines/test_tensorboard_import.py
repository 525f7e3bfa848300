"""TensorBoard import: real event files written by tensorboard's own writer."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

pytest.importorskip("tensorboard")

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from trainledger.engines.interop.tensorboard import (
    TensorBoardImportError,
    import_logdir,
    sanitise_run_name,
)
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.workspace import init_workspace, list_runs, validate_id

T0 = 1_700_000_000.0


def _write(
    logdir: Path,
    points: list[tuple[str, int, float]],
    tensor_tags: tuple[str, ...] = (),
) -> None:
    """Write (tag, step, value) scalars; tags in `tensor_tags` as TF2-style scalar tensors."""
    writer = EventFileWriter(str(logdir))
    for i, (tag, step, value) in enumerate(points):
        if tag in tensor_tags:
            meta = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(
                    plugin_name="scalars"
                )
            )
            val = summary_pb2.Summary.Value(
                tag=tag, metadata=meta, tensor=tensor_util.make_tensor_proto(value)
            )
        else:
            val = summary_pb2.Summary.Value(tag=tag, simple_value=value)
        writer.add_event(
            event_pb2.Event(
                wall_time=T0 + step + i * 1e-3,
                step=step,
                summary=summary_pb2.Summary(value=[val]),
            )
        )
    writer.close()


def _rows(run_dir: Path) -> list[dict]:
    return [
        msgspec.json.decode(line)
        for line in (run_dir / "metrics.jsonl").read_bytes().splitlines()
    ]


@pytest.fixture()
def logdir(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    # run 1: train loss every step, val loss every 2 steps, lr once
    _write(
        root / "exp 1",
        [("train/loss", s, 1.0 / (s + 1)) for s in range(5)]
        + [("val/loss", s, 0.5 + s) for s in (0, 2, 4)]
        + [("lr", 0, 0.1)],
    )
    # run 2, nested, with a TF2 tensor scalar beside a simple_value one
    _write(
        root / "sweep" / "lr=0.01",
        [("acc", s, 0.25 * s) for s in (10, 20)]
        + [("loss", s, 2.0 - s / 10) for s in (10, 15, 20)],
        tensor_tags=("acc",),
    )
    return root


def test_import_writes_run_folders(logdir: Path, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    result = {r.tb_run: r for r in import_logdir(logdir, ws)}
    assert set(result) == {"exp 1", "sweep/lr=0.01"}
    assert result["exp 1"].run_id == "tb-exp_1"
    assert result["sweep/lr=0.01"].run_id == "tb-sweep_lr_0.01"
    assert {r.status for r in result.values()} == {"imported"}
    for r in result.values():
        validate_id(r.run_id)
        assert (ws.runs_dir / r.run_id / "run.json").is_file()
        assert (ws.runs_dir / r.run_id / "events.jsonl").is_file()
    # no temp folders left behind, and the workspace lists both runs as finished
    assert sorted(p.name for p in ws.runs_dir.iterdir()) == [
        "tb-exp_1",
        "tb-sweep_lr_0.01",
    ]
    infos = {i.id: i for i in list_runs(ws)}
    assert set(infos) == {"tb-exp_1", "tb-sweep_lr_0.01"}
    assert {i.status for i in infos.values()} == {"finished"}

    info = msgspec.json.decode((ws.runs_dir / "tb-exp_1" / "run.json").read_bytes())
    assert info["status"] == "finished"
    assert info["model"] == "tensorboard-import"
    assert info["read_only"] is True
    assert info["source"]["run"] == "exp 1"
    assert info["source"]["logdir"] == str(logdir.resolve())
    assert (
        len(info["source"]["files"]) == 1 and "tfevents" in info["source"]["files"][0]
    )
    assert len(info["source"]["sha256"]) == 64
    assert info["started"] == pytest.approx(T0)
    assert info["ended"] >= T0 + 4


def test_rows_merge_tags_by_step(logdir: Path, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    import_logdir(logdir, ws)
    rows = _rows(ws.runs_dir / "tb-exp_1")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[0]["lr"] == pytest.approx(0.1)
    assert rows[0]["val/loss"] == pytest.approx(0.5)
    assert "val/loss" not in rows[1]
    for r in rows:
        assert r["train/loss"] == pytest.approx(1.0 / (r["step"] + 1))
        assert r["time"] >= T0 + r["step"]
    assert rows[4]["val/loss"] == pytest.approx(4.5)

    nested = _rows(ws.runs_dir / "tb-sweep_lr_0.01")
    assert [r["step"] for r in nested] == [10, 15, 20]
    assert nested[0]["acc"] == pytest.approx(2.5)  # from a tensor summary
    assert "acc" not in nested[1]
    assert nested[2]["acc"] == pytest.approx(5.0)
    assert [r["loss"] for r in nested] == pytest.approx([1.0, 0.5, 0.0])


def test_read_back_by_run_series(logdir: Path, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    import_logdir(logdir, ws)
    series = RunSeries(ws.run_dir("tb-exp_1"))
    series.refresh()
    snap = series.snapshot()
    assert snap.metric_names() == ["lr", "train/loss", "val/loss"]
    x, y = snap.xy("val/loss")
    assert list(x) == [0, 2, 4]
    assert list(y) == pytest.approx([0.5, 2.5, 4.5])
    nested = RunSeries(ws.run_dir("tb-sweep_lr_0.01"))
    nested.refresh()
    assert nested.snapshot().metric_names() == ["acc", "loss"]


def test_reimport_is_idempotent_and_replaces_on_change(
    logdir: Path, tmp_path: Path
) -> None:
    ws = init_workspace(tmp_path / "ws")
    import_logdir(logdir, ws)
    before = (ws.runs_dir / "tb-exp_1" / "run.json").read_bytes()
    again = import_logdir(logdir, ws)
    assert {r.status for r in again} == {"unchanged"}
    assert (ws.runs_dir / "tb-exp_1" / "run.json").read_bytes() == before

    _write(
        logdir / "exp 1", [("train/loss", 5, 0.01)]
    )  # a second event file: training went on
    third = {r.tb_run: r.status for r in import_logdir(logdir, ws)}
    assert third == {"exp 1": "replaced", "sweep/lr=0.01": "unchanged"}
    rows = _rows(ws.runs_dir / "tb-exp_1")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    info = msgspec.json.decode((ws.runs_dir / "tb-exp_1" / "run.json").read_bytes())
    assert len(info["source"]["files"]) == 2
    assert sorted(p.name for p in ws.runs_dir.iterdir()) == [
        "tb-exp_1",
        "tb-sweep_lr_0.01",
    ]


def test_existing_foreign_run_is_left_alone(logdir: Path, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    mine = ws.runs_dir / "tb-exp_1"
    mine.mkdir()
    (mine / "run.json").write_text('{"model": "mlp"}')
    status = {r.tb_run: r.status for r in import_logdir(logdir, ws)}
    assert status["exp 1"] == "conflict"
    assert (mine / "run.json").read_text() == '{"model": "mlp"}'


def test_prefix_and_root_run(tmp_path: Path) -> None:
    root = tmp_path / ".hidden logs"
    _write(root, [("loss", 1, 1.0)])
    ws = init_workspace(tmp_path / "ws")
    (r,) = import_logdir(root, ws, prefix="")
    assert r.tb_run == "." and r.run_id == "hidden_logs"
    assert sanitise_run_name("a/../b", root, "x-") == "x-a_.._b"
    assert sanitise_run_name("é/ü", root, "") == "run"
    assert len(sanitise_run_name("n" * 300, root, "tb-")) == 128
    with pytest.raises(TensorBoardImportError):
        import_logdir(root, ws, prefix="a/b")


def test_no_event_files_is_a_clear_error(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("hi")
    with pytest.raises(TensorBoardImportError, match="no TensorBoard event files"):
        import_logdir(empty, ws)
    with pytest.raises(TensorBoardImportError, match="not a folder"):
        import_logdir(tmp_path / "missing", ws)
    assert list(ws.runs_dir.iterdir()) == []


def test_missing_tensorboard_names_the_extra(
    logdir: Path, tmp_path: Path, monkeypatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing", None)
    ws = init_workspace(tmp_path / "ws")
    with pytest.raises(ImportError, match=r"pip install 'trainledger\[tensorboard\]'"):
        import_logdir(logdir, ws)
    assert list(ws.runs_dir.iterdir()) == []
