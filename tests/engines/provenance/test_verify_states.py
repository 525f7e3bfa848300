"""Verdicts without a trained run: evidence re-hashed (stale, file gone), comparison with tolerance,
unverified claims, the tally, and the CLI's usage errors. Hand-built reports on real files."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from trainledger.engines.provenance import verify_cli
from trainledger.engines.provenance.model import (
    CONTRADICTED,
    REL_TOL,
    STALE,
    UNVERIFIED,
    VERIFIED,
    Claim,
    Evidence,
    Report,
)
from trainledger.engines.provenance.verify import (
    compare,
    counts,
    evidence_change,
    failing,
    sha256_now,
    verify_claims,
    verify_report,
)
from trainledger.engines.training.provenance import sha256_tree
from trainledger.engines.workspace import Workspace


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def run(ws: Workspace) -> str:
    """A run folder with a run.json and a checkpoint file: enough to be a subject."""
    run_dir = ws.run_dir("r1")
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"id": "r1", "model": "lvm-gru"}))
    (run_dir / "checkpoints" / "best.safetensors").write_bytes(b"weights-v1")
    return "r1"


def ev(ws: Workspace, rel: str, how: str = "") -> Evidence:
    path = ws.root / rel
    return Evidence(rel, sha256_now(path), how)


def test_sha256_now_is_the_file_hash_or_the_tree_hash(ws: Workspace, run: str) -> None:
    ckpt = ws.run_dir(run) / "checkpoints" / "best.safetensors"
    assert sha256_now(ckpt) == sha(b"weights-v1")
    assert sha256_now(ckpt.parent) == sha256_tree(ckpt.parent)


def test_evidence_change_sees_a_byte_a_missing_file_a_new_file_in_a_folder(ws: Workspace, run: str) -> None:
    rel = f"runs/{run}/checkpoints/best.safetensors"
    file_ev = ev(ws, rel)
    dir_ev = ev(ws, f"runs/{run}/checkpoints")
    assert evidence_change(ws, file_ev) is None and evidence_change(ws, dir_ev) is None
    (ws.root / rel).write_bytes(b"weights-v2")  # same size, one byte differs
    assert evidence_change(ws, file_ev).startswith(f"changed: {rel} (sha256 {file_ev.sha256[:12]}")
    assert evidence_change(ws, dir_ev).startswith(f"changed: runs/{run}/checkpoints")
    (ws.root / rel).write_bytes(b"weights-v1")
    assert evidence_change(ws, file_ev) is None and evidence_change(ws, dir_ev) is None
    (ws.root / f"runs/{run}/checkpoints/last.safetensors").write_bytes(b"x")
    assert evidence_change(ws, dir_ev) is not None and evidence_change(ws, file_ev) is None
    (ws.root / rel).unlink()
    assert evidence_change(ws, file_ev) == f"file gone: {rel}"


def test_evidence_that_became_a_fifo_is_changed_not_waited_on(ws: Workspace, run: str) -> None:
    rel = f"runs/{run}/checkpoints/best.safetensors"
    file_ev = ev(ws, rel)
    (ws.root / rel).unlink()
    os.mkfifo(ws.root / rel)
    assert "FIFO" in evidence_change(ws, file_ev)


def test_an_absolute_evidence_path_outside_the_workspace(ws: Workspace, run: str, tmp_path: Path) -> None:
    outside = tmp_path / "data.jsonl"
    outside.write_text('{"a": 1}\n')
    e = Evidence(str(outside), sha(outside.read_bytes()))
    assert evidence_change(ws, e) is None
    outside.write_text('{"a": 2}\n')
    assert evidence_change(ws, e).startswith(f"changed: {outside}")


def test_a_stored_report_stale_gone_and_unverified_without_recomputing(ws: Workspace, run: str) -> None:
    rel = f"runs/{run}/checkpoints/best.safetensors"
    (ws.run_dir(run) / "metrics.jsonl").write_text('{"step": 1}\n')
    report = Report(run, "lvm-gru", 1.0, claims=(
        Claim("parameters", 1234, (ev(ws, f"runs/{run}/run.json"), ev(ws, rel, "tensor sizes summed"))),
        Claim("best.val/loss", 0.5, (ev(ws, f"runs/{run}/metrics.jsonl"),)),
        Claim("tokens.active", None, reason="no vocabulary in this kind"),
        Claim("lr", 0.001, (), reason="run.json has no config"),
    ))  # fmt: skip
    (ws.root / rel).write_bytes(b"weights-v2")
    (ws.run_dir(run) / "metrics.jsonl").unlink()
    verdicts = verify_report(ws, run, report)
    assert [v.state for v in verdicts] == [STALE, STALE, UNVERIFIED, UNVERIFIED]
    assert verdicts[0].detail.startswith(f"changed: {rel}")  # the second of its two files: named
    assert verdicts[1].detail == f"file gone: runs/{run}/metrics.jsonl"
    assert verdicts[2].detail == "no vocabulary in this kind"
    assert verdicts[3].detail == "run.json has no config"
    assert failing(verdicts)
    assert counts(verdicts) == {VERIFIED: 0, UNVERIFIED: 2, STALE: 2, CONTRADICTED: 0}
    assert not failing(verdicts[2:]) and counts([]) == {VERIFIED: 0, UNVERIFIED: 0, STALE: 0, CONTRADICTED: 0}


def proven(key: str, value: object) -> Claim:
    return Claim(key, value, (Evidence("runs/r1/run.json", "0" * 64, "read"),))


@pytest.mark.parametrize(
    ("claimed", "tol", "actual", "state"),
    [
        (164248, None, 164248, VERIFIED),
        (135000, None, 164248, CONTRADICTED),
        (0.028, None, 0.028 * (1 + REL_TOL / 10), VERIFIED),
        (0.028, None, 0.028 * (1 + REL_TOL * 10), CONTRADICTED),
        (0.028, 0.001, 0.0285, VERIFIED),
        (0.028, 0.001, 0.0295, CONTRADICTED),
        (6, None, 6.0, VERIFIED),
        ("adam", None, "adam", VERIFIED),
        ("adam", None, "sgd", CONTRADICTED),
        ("1", None, 1, CONTRADICTED),
        (0.0, None, 0.0, VERIFIED),
    ],
)
def test_compare_with_the_default_and_a_given_tolerance(claimed, tol, actual, state) -> None:  # noqa: ANN001
    verdict = compare(Claim("k", claimed, tol=tol), proven("k", actual))
    assert verdict.state == state
    assert verdict.recomputed == actual  # beside the claimed value, either way
    if state == CONTRADICTED and not isinstance(claimed, str) and not isinstance(actual, str):
        assert verdict.detail.startswith("differs by ")


def test_compare_with_nothing_recomputed_is_unverified() -> None:
    verdict = compare(Claim("lr", 0.1), Claim("lr", None, reason="run.json has no lr"))
    assert verdict.state == UNVERIFIED and verdict.recomputed is None
    assert verdict.detail == "cannot recompute: run.json has no lr"


def test_unknown_hand_written_keys_are_unverified_never_dropped(ws: Workspace, run: str) -> None:
    verdicts = verify_claims(ws, run, [Claim("favourite_colour", "blue"), Claim("best.", 1)])
    assert [(v.claim.key, v.state, v.detail) for v in verdicts] == [
        ("favourite_colour", UNVERIFIED, "unknown claim key"), ("best.", UNVERIFIED, "unknown claim key"),
    ]  # fmt: skip
    assert not failing(verdicts)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = verify_cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_unknown_keys_only_exit_0_with_json(ws: Workspace, run: str, tmp_path: Path) -> None:
    claims = tmp_path / "c.toml"
    claims.write_text(f'subject = "{run}"\n[claims]\nfavourite_colour = "blue"\n')
    code, out, err = cli("--claims", str(claims), "--json", "--workspace", str(ws.root))
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["ok"] is True
    [subj] = doc["subjects"]
    assert subj["subject"] == run and subj["counts"][UNVERIFIED] == 1
    assert subj["verdicts"][0] == {"key": "favourite_colour", "state": UNVERIFIED, "claimed": "blue",
                                   "recomputed": None, "detail": "unknown claim key", "evidence": []}  # fmt: skip
    code, out, _ = cli(run, "--claims", str(claims), "--workspace", str(ws.root))
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == [UNVERIFIED, "favourite_colour", "blue"]
    assert lines[-1].startswith(f"{run}: 0 verified, 1 unverified, 0 stale, 0 contradicted — ok")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "name a run or MODEL@VERSION"),
        (("nope",), "no run 'nope'"),
        (("../x",), "trainledger verify: "),
        (("m@",), "trainledger verify: "),
        (("--claims", "{missing}"), "no such file"),
        (("other", "--claims", "{claims}"), "the claims file is about 'r1' but 'other' was given"),
        (("r1", "--bogus"), "unrecognized arguments"),
    ],
)
def test_cli_bad_usage_is_one_line_exit_2(ws: Workspace, run: str, tmp_path: Path, args, says) -> None:  # noqa: ANN001
    claims = tmp_path / "c.toml"
    claims.write_text('subject = "r1"\n[claims]\nepochs = 2\n')
    argv = [a.format(missing=tmp_path / "missing.toml", claims=claims) for a in args]
    code, out, err = cli(*argv, "--workspace", str(ws.root))
    assert code == 2 and out == ""
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_a_folder_that_is_no_workspace_is_exit_2(tmp_path: Path) -> None:
    code, _, err = cli("r1", "--workspace", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err and not (tmp_path / "nowhere").exists()


def test_cli_a_stored_report_that_cannot_be_read_is_exit_2(ws: Workspace, run: str) -> None:
    stored = ws.run_dir(run) / "report.json"
    stored.write_text("{not json")
    code, out, err = cli(run, "--workspace", str(ws.root))
    assert code == 2 and out == "" and err.startswith("trainledger verify: r1: the stored report cannot be read")
    stored.write_text(json.dumps({"schema": "something-else/9"}))
    assert cli(run, "--workspace", str(ws.root))[0] == 2
    stored.unlink()
    os.mkfifo(stored)  # refused at once, never waited on
    code, _, err = cli(run, "--workspace", str(ws.root))
    assert code == 2 and "FIFO" in err and err.count("\n") == 1
