"""`trainledger runs` and its subcommands as a user runs them: real processes, real folders,
a real pseudo-terminal for the prompts, a real live trainer that is never deleted."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainledger.engines.metrics.writer import MetricsWriter
from trainledger.engines.runmeta import read_meta, write_meta
from trainledger.engines.trash import list_trash, trash_dir
from trainledger.engines.workspace import Workspace, init_workspace, list_runs


def tl(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "TRAINLEDGER_WORKSPACE"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "trainledger", *args], capture_output=True, text=True,
                          timeout=timeout, env=full, stdin=subprocess.DEVNULL)  # fmt: skip


def on_tty(args: list[str], typed: str | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run `trainledger ARGS` on a pseudo-terminal (stdin, stdout, stderr); type `typed` once it
    asks. Returns (exit status, everything it wrote)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "trainledger", *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "COLUMNS": "250"}, close_fds=True)  # fmt: skip
    os.close(slave)
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            if not chunk and proc.poll() is not None:
                break
            out += chunk
        elif proc.poll() is not None:
            break
        if typed is not None and not sent and b"to confirm:" in out:
            os.write(master, typed.encode() + b"\n")
            sent = True
    os.close(master)
    return proc.wait(timeout=10), out.decode(errors="replace").replace("\r\n", "\n")


def _run(ws: Workspace, run_id: str, *, name: str | None = None, started: float, loss: float = 1.0) -> Path:
    with MetricsWriter(ws, run_id, name=name, model="mlp", primary_metric="val/loss") as w:
        w.log({"val/loss": loss, "train/loss": loss * 2}, step=0, epoch=0)
        w.log({"val/loss": loss / 2, "train/loss": loss}, step=1, epoch=1)
        w.update(started=started)
    return w.dir


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = init_workspace(tmp_path / "ws")
    _run(ws, "old-run", started=1000.0)
    _run(ws, "mid-run", name="a rather long and descriptive run name that must never be cut", started=2000.0)
    _run(ws, "new-run", name="evil\x1b]2;pwned\x07", started=3000.0)  # a name from run.json, controls and all
    return ws


def test_list_is_aligned_newest_first_with_names_and_tags(ws: Workspace) -> None:
    write_meta(ws.run_dir("old-run"), tags=["baseline", "lr-sweep"])
    out = tl("runs", str(ws.root))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["evil␛]2;pwned␇", "a", "old-run"]  # newest first
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert lines[1].startswith("a rather long and descriptive run name that must never be cut  mid-run")
    status_at = {ln.index("finished") for ln in lines}
    assert len(status_at) == 1  # one column for every status
    assert lines[2].rstrip().endswith("baseline,lr-sweep") and "2 rows" in lines[2]
    assert "0.5 at epoch 1" in lines[2]


def test_a_terminal_gets_a_header(ws: Workspace) -> None:
    code, out = on_tty(["runs", str(ws.root)])
    assert code == 0, out
    header, *rows = out.strip().splitlines()
    assert header.split() == ["RUN", "ID", "STATUS", "MODEL", "ROWS", "METRIC", "LAST", "BEST"]
    assert all(row.index("finished") == header.index("STATUS") for row in rows)


def test_json_carries_name_tags_archived_and_note(ws: Workspace) -> None:
    write_meta(ws.run_dir("mid-run"), tags=["keep"], note="the good one")
    out = tl("runs", "--json", str(ws.root))  # options before the folder, as before
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == ["new-run", "mid-run", "old-run"]
    mid = rows[1]
    assert mid["name"].startswith("a rather long") and mid["tags"] == ["keep"] and mid["note"] == "the good one"
    assert mid["archived"] is False and mid["metric"] == "val/loss" and mid["best"] == 0.5
    assert rows[0]["name"] == "evil\x1b]2;pwned\x07"  # exact in JSON, escaped on the wire
    assert "\x1b" not in out.stdout
    env = tl("runs", "--json", env={"TRAINLEDGER_WORKSPACE": str(ws.root)})
    assert env.returncode == 0 and len(json.loads(env.stdout)) == 3
    opt = tl("runs", "--workspace", str(ws.root), "--json")  # as the subcommands take it
    assert opt.returncode == 0 and json.loads(opt.stdout) == rows


def test_archive_hides_until_all_or_undo(ws: Workspace) -> None:
    out = tl("runs", "archive", "old-run", "--workspace", str(ws.root))
    assert out.returncode == 0 and "old-run: archived" in out.stdout
    assert [ln.split()[0] for ln in tl("runs", str(ws.root)).stdout.splitlines()] == ["evil␛]2;pwned␇", "a"]
    every = json.loads(tl("runs", str(ws.root), "--json", "--all").stdout)
    assert {r["id"]: r["archived"] for r in every} == {"new-run": False, "mid-run": False, "old-run": True}
    assert "old-run" in tl("runs", str(ws.root), "--all").stdout
    assert tl("runs", "archive", "old-run", "--undo", "--workspace", str(ws.root)).returncode == 0
    assert len(json.loads(tl("runs", str(ws.root), "--json").stdout)) == 3


def test_tag_and_rename_by_id_or_name(ws: Workspace) -> None:
    w = ["--workspace", str(ws.root)]
    out = tl("runs", "tag", "old-run", "new-run", "--add", "a", "--add", "b", "--note", "two tags", *w)
    assert out.returncode == 0, out.stderr
    assert read_meta(ws.run_dir("old-run")).tags == ("a", "b") and read_meta(ws.run_dir("new-run")).note == "two tags"
    assert tl("runs", "tag", "old-run", "--remove", "a", "--add", "c", *w).returncode == 0
    assert read_meta(ws.run_dir("old-run")).tags == ("b", "c")
    shown = tl("runs", "tag", "old-run", *w)  # no option: prints them
    assert shown.stdout.splitlines() == ["old-run: b, c", "  note: two tags"]
    long = "a rather long and descriptive run name that must never be cut"
    out = tl("runs", "rename", long, "short", *w)
    assert out.returncode == 0 and read_meta(ws.run_dir("mid-run")).name == "short"
    assert tl("runs", "tag", "short", "--add", "named", *w).returncode == 0
    assert read_meta(ws.run_dir("mid-run")).tags == ("named",)
    assert {r.id: r.name for r in list_runs(ws)}["mid-run"] == "short"


def test_bad_input_is_exit_2_and_changes_nothing(ws: Workspace) -> None:
    w = ["--workspace", str(ws.root)]
    write_meta(ws.run_dir("old-run"), name="twin")
    write_meta(ws.run_dir("mid-run"), name="twin")
    before = {rid: (ws.run_dir(rid) / "meta.json").read_bytes() for rid in ("old-run", "mid-run")}
    for args, message in [
        (["tag", "old-run", "--add", "has space"], "no spaces, commas"),
        (["tag", "old-run", "--add", "ok", "--add", "a,b"], "no spaces, commas"),
        (["tag", "twin", "--add", "x"], "ambiguous: 2 runs have it (mid-run, old-run)"),
        (["tag", "old-run", "nobody", "--add", "x"], "no run with id or name 'nobody'"),
        (["rename", "old-run", ""], "must not be empty"),
        (["archive", "../ws"], "no run with id or name"),
        (["export", "old-run", "--metrics", "("], "not a regular expression"),
        (["delete", "twin", "--yes"], "ambiguous"),
    ]:
        out = tl("runs", *args, *w)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("trainledger runs: ") and message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert {rid: (ws.run_dir(rid) / "meta.json").read_bytes() for rid in before} == before
    assert len(list_runs(ws)) == 3


def test_reading_and_tidying_never_create_a_workspace(tmp_path: Path) -> None:
    typo = tmp_path / "some" / "typo"
    for args in (["runs", str(typo)], ["runs", "export", "r", "--workspace", str(typo)],
                 ["runs", "tag", "r", "--add", "x", "--workspace", str(typo)], ["runs", "purge", "--yes"]):  # fmt: skip
        out = tl(*args, env={"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)})
        assert out.returncode == 2 and "trainledger init" in out.stderr, (args, out.stderr)
    assert not (tmp_path / "some").exists() and not (tmp_path / "xdg").exists()


def test_delete_needs_yes_without_a_terminal_then_purge(ws: Workspace) -> None:
    w = ["--workspace", str(ws.root)]
    out = tl("runs", "delete", "old-run", *w)
    assert out.returncode == 2 and "pass --yes" in out.stderr
    assert ws.run_dir("old-run").is_dir() and list_trash(ws) == []
    out = tl("runs", "delete", "old-run", "mid-run", "--yes", *w)
    assert out.returncode == 0, out.stderr
    assert "old-run: moved to" in out.stdout and "runs purge" in out.stdout
    assert [r.id for r in list_runs(ws)] == ["new-run"]
    assert sorted(e.run_id for e in list_trash(ws)) == ["mid-run", "old-run"]
    assert tl("runs", "purge", *w).returncode == 2 and len(list_trash(ws)) == 2  # no --yes, no terminal
    out = tl("runs", "purge", "--yes", *w)
    assert out.returncode == 0 and "removed 2 run(s)" in out.stdout and list_trash(ws) == []
    assert "empty" in tl("runs", "purge", "--yes", *w).stdout


def test_delete_on_a_terminal_asks_for_the_id(ws: Workspace) -> None:
    w = ["--workspace", str(ws.root)]
    code, out = on_tty(["runs", "delete", "old-run", *w], typed="old")  # not the whole id
    assert code == 1 and "Type old-run to confirm" in out and "not deleted" in out
    assert ws.run_dir("old-run").is_dir()
    code, out = on_tty(["runs", "delete", "old-run", *w], typed="old-run")
    assert code == 0 and not ws.run_dir("old-run").exists(), out
    code, out = on_tty(["runs", "delete", "mid-run", "new-run", *w], typed="delete 2 runs")
    assert code == 0 and list_runs(ws) == [], out
    code, out = on_tty(["runs", "purge", *w], typed="purge 3 runs")
    assert code == 0 and "removed 3 run(s)" in out and not any(trash_dir(ws).iterdir())


_LIVE = """
import sys, time
from trainledger.engines.metrics.writer import MetricsWriter
w = MetricsWriter(sys.argv[1], "live", model="mlp")
w.log({"loss": 1.0}, step=0)
print("ready", flush=True)
time.sleep(120)
"""


def test_a_running_run_is_never_deleted(ws: Workspace) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _LIVE, str(ws.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        out = tl("runs", "delete", "old-run", "live", "--yes", "--workspace", str(ws.root))
        assert out.returncode == 2 and "run live is running" in out.stderr and "nothing deleted" in out.stderr
        assert ws.run_dir("live").is_dir() and ws.run_dir("old-run").is_dir() and list_trash(ws) == []
        listed = tl("runs", str(ws.root)).stdout
        assert any(ln.startswith("live ") and "running" in ln for ln in listed.splitlines())
    finally:
        proc.kill()
        proc.wait()


def test_export_csv_and_json(ws: Workspace, tmp_path: Path) -> None:
    w = ["--workspace", str(ws.root)]
    out = tl("runs", "export", "old-run", "new-run", "--csv", *w)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == ["run", "step", "epoch", "time", "train/loss", "val/loss"]
    assert [(r["run"], r["step"], r["val/loss"]) for r in rows] == [
        ("old-run", "0", "1.0"), ("old-run", "1", "0.5"), ("new-run", "0", "1.0"), ("new-run", "1", "0.5")]
    target = tmp_path / "out" / "chart.csv"
    out = tl("runs", "export", "old-run", "--layout", "long", "--metrics", "^val/", "-o", str(target), *w)
    assert out.returncode == 0 and out.stdout == "" and str(target) in out.stderr
    long = list(csv.DictReader(target.open()))
    assert [(r["metric"], r["value"]) for r in long] == [("val/loss", "1.0"), ("val/loss", "0.5")]
    out = tl("runs", "export", "old-run", "--json", *w)
    assert [r["val/loss"] for r in json.loads(out.stdout)] == [1.0, 0.5]
    assert tl("runs", "export", "old-run", "--csv", "--json", *w).returncode == 2
