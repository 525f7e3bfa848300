"""One notion of a malformed metrics line: the chart, `trainledger runs` and malformed_lines agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainledger.console.summary import run_rows
from trainledger.engines.metrics import columns
from trainledger.engines.metrics.brief import read_brief
from trainledger.engines.metrics.malformed import malformed_lines
from trainledger.engines.metrics.series import RunSeries
from trainledger.engines.workspace import METRICS_FILE, Workspace

DEEP = '{"a":' * 5000 + "1" + "}" * 5000  # valid JSON, nested past any parser's patience


def _run(ws: Workspace, lines: list[str], run_id: str = "r1") -> Path:
    d = ws.runs_dir / run_id
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"id": run_id, "status": "finished", "model": "m"}))
    (d / METRICS_FILE).write_text("".join(line + "\n" for line in lines))
    return d


def _mixed() -> tuple[list[str], list[int]]:
    """Good rows plus a string step, a non-JSON line, a deeply nested row: (lines, bad numbers)."""
    lines = [json.dumps({"step": i, "loss": 1 / (i + 1)}) for i in range(6)]
    lines.insert(2, '{"step": "abc", "loss": 0.3}')  # line 3
    lines.insert(4, "not json")  # line 5
    lines.insert(6, DEEP)  # line 7
    return lines, [3, 5, 7]


def test_chart_runs_and_malformed_lines_agree(ws: Workspace) -> None:
    lines, bad = _mixed()
    d = _run(ws, lines)
    series = RunSeries(d, cache_dir=ws.cache_dir, run_id="r1")
    series.refresh()
    snap = series.snapshot()  # what the chart draws
    x, y = snap.xy("loss")
    assert snap.n == 6 and list(x) == [0, 1, 2, 3, 4, 5]  # the "abc" row is not drawn anywhere
    assert 0.3 not in list(y)
    row = run_rows(ws)[0]  # what `trainledger runs` prints
    assert row["rows"] == snap.n == 6
    assert row["malformed"] == snap.malformed == 3
    assert malformed_lines(d / METRICS_FILE) == (3, bad)
    assert read_brief(d).rows == 6  # the run list's brief counts the same rows


def test_non_numeric_steps_are_malformed_on_the_fast_path_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(columns, "CHUNK_LINES", 100)  # several chunks through the Struct decoder
    monkeypatch.setattr(columns, "MIN_CHUNK_BYTES", 1)
    rows = [{"step": i, "loss": 1.0} for i in range(3000)]
    bad_steps = {0: "abc", 1500: True, 2999: {"x": 1}}  # first and last lines are sampled
    for i, v in bad_steps.items():
        rows[i]["step"] = v
    buf = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    b = columns.parse_lines(buf)
    assert b.n == 3000 - len(bad_steps) and b.malformed == len(bad_steps)
    assert "step" not in b.metrics and not any(v != v for v in b.step)  # every kept step is real
    path = tmp_path / METRICS_FILE
    path.write_bytes(buf)
    assert malformed_lines(path) == (3, [1, 1501, 3000])


def test_null_or_missing_step_is_still_a_row(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    path.write_text('{"loss": 1}\n{"step": null, "loss": 2}\n{"step": 5, "loss": 3}\n')
    assert malformed_lines(path) == (0, [])
    b = columns.parse_lines(path.read_bytes())
    assert b.n == 3 and b.malformed == 0


def test_limit_missing_file_and_partial_last_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainledger.engines.metrics import malformed

    assert malformed_lines(tmp_path / "nope.jsonl") == (0, [])
    path = tmp_path / METRICS_FILE
    body = "".join("junk\n" if i % 3 == 0 else json.dumps({"step": i}) + "\n" for i in range(300))
    path.write_text(body + '{"step": 300')  # a line still being written is not judged yet
    monkeypatch.setattr(malformed, "READ_BYTES", 1000)  # many reads: numbering carries over
    count, first = malformed_lines(path, limit=7)
    assert count == 100 and first == [1, 4, 7, 10, 13, 16, 19]
    assert malformed_lines(path, limit=200)[1] == list(range(1, 301, 3))
