"""verify end to end on a real tiny run (lvm-gru, 2 epochs) and a registered version of it:
a stored report verifies (exit 0); one byte of the best checkpoint changed makes it stale (exit 1);
hand-written claims: a false parameter count contradicted with the true one beside it, an
unknown key unverified, a metric within its tolerance verified."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from trainledger.engines.provenance import verify_cli
from trainledger.engines.provenance.derive import derive_claims, derive_key
from trainledger.engines.provenance.model import CONTRADICTED, STALE, UNVERIFIED, VERIFIED, Report
from trainledger.engines.provenance.store import load_report, save_report
from trainledger.engines.provenance.subject import resolve
from trainledger.engines.provenance.verify import counts, failing, verify_subject
from trainledger.engines.registry.cli import main as registry_main
from trainledger.engines.training.cli import main as train_main
from trainledger.engines.workspace import Workspace, init_workspace

RUN = "r1"
VERSION = "lvm@v1"


def store(ws: Workspace, label: str) -> Report:
    subj = resolve(ws, label)
    report = Report(subj.label, subj.kind, time.time(), tuple(derive_claims(ws, subj)))
    save_report(ws, subj, report)
    return report


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("verify") / "ws")
    assert train_main(["lvm-gru", "--epochs", "2", "--seed", "1", "--run-id", RUN, "--workspace", str(ws.root)]) == 0
    assert registry_main(["deploy", "lvm", "--run", RUN, "--version", "v1", "--no-probe", "--reason", "test",
                          "--workspace", str(ws.root)]) == 0  # fmt: skip
    store(ws, RUN)
    store(ws, VERSION)
    return ws


def cli(ws: Workspace, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = verify_cli.main([*argv, "--workspace", str(ws.root)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def claims_file(tmp_path: Path, body: str, subject: str = RUN) -> Path:
    path = tmp_path / "claims.toml"
    path.write_text(f'subject = "{subject}"\n[claims]\n{body}')
    return path


def true_parameters(ws: Workspace) -> int:
    tensors = load_file(str(ws.run_dir(RUN) / "checkpoints" / "best.safetensors"))
    return int(sum(np.asarray(t).size for t in tensors.values()))


def test_a_stored_report_verifies_with_exit_0(ws: Workspace) -> None:
    for label in (RUN, VERSION):
        assert load_report(ws, resolve(ws, label)) is not None
        verdicts, note = verify_subject(ws, label)
        assert note.startswith("stored report made ")
        tally = counts(verdicts)
        assert tally[STALE] == tally[CONTRADICTED] == 0 and not failing(verdicts)
        by = {v.claim.key: v for v in verdicts}
        for key in ("parameters", "best.val/loss", "epochs", "lr", "optimizer"):
            assert by[key].state == VERIFIED, (label, key, by[key])
        # every claim with evidence is verified: nothing provable is left unverified
        assert all(v.state == VERIFIED for v in verdicts if v.claim.proven), [v for v in verdicts if v.claim.proven]
    code, out, err = cli(ws, RUN, VERSION, "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["ok"] is True and [s["subject"] for s in doc["subjects"]] == [RUN, VERSION]
    code, out, _ = cli(ws, RUN)
    assert code == 0 and out.splitlines()[-1].startswith(f"{RUN}: ") and out.splitlines()[-1].count(" — ok")


def test_false_parameters_contradicted_with_the_true_count_beside(ws: Workspace, tmp_path: Path) -> None:
    true = derive_key(ws, resolve(ws, RUN), "parameters").value
    assert true == true_parameters(ws)
    code, out, err = cli(ws, "--claims", str(claims_file(tmp_path, "parameters = 135000\n")), "--json")
    assert code == 1 and err == ""
    [v] = json.loads(out)["subjects"][0]["verdicts"]
    assert (v["state"], v["claimed"], v["recomputed"]) == (CONTRADICTED, 135000, true)
    assert v["evidence"], "the verdict names the file the true count came from"
    code, out, _ = cli(ws, "--claims", str(claims_file(tmp_path, "parameters = 135000\n")))
    line = out.splitlines()[0].split()
    assert code == 1 and line[:4] == [CONTRADICTED, "parameters", "135000", f"[{true}]"]
    code, _, _ = cli(ws, "--claims", str(claims_file(tmp_path, f"parameters = {true}\n")))
    assert code == 0


def test_unknown_key_unverified_exit_0(ws: Workspace, tmp_path: Path) -> None:
    code, out, _ = cli(ws, "--claims", str(claims_file(tmp_path, 'favourite_colour = "blue"\nepochs = 2\n')), "--json")
    assert code == 0
    verdicts = {v["key"]: v for v in json.loads(out)["subjects"][0]["verdicts"]}
    assert verdicts["favourite_colour"]["state"] == UNVERIFIED
    assert verdicts["favourite_colour"]["detail"] == "unknown claim key"
    assert verdicts["epochs"]["state"] == VERIFIED


def test_a_metric_within_its_tolerance(ws: Workspace, tmp_path: Path) -> None:
    best = derive_key(ws, resolve(ws, RUN), "best.val/loss").value
    assert isinstance(best, float)
    within = claims_file(tmp_path, f'"best.val/loss" = {{ value = {best + 0.0004!r}, tol = 0.001 }}\n')
    code, out, _ = cli(ws, "--claims", str(within), "--json")
    [v] = json.loads(out)["subjects"][0]["verdicts"]
    assert code == 0 and v["state"] == VERIFIED and v["recomputed"] == best
    outside = claims_file(tmp_path, f'"best.val/loss" = {{ value = {best + 0.002!r}, tol = 0.001 }}\n')
    code, out, _ = cli(ws, "--claims", str(outside), "--json")
    assert code == 1 and json.loads(out)["subjects"][0]["verdicts"][0]["state"] == CONTRADICTED
    rounded = claims_file(tmp_path, f'"best.val/loss" = {best + 0.0004!r}\n')  # the default: relative 1e-6
    assert cli(ws, "--claims", str(rounded))[0] == 1


def test_the_claims_file_subject_and_the_command_line(ws: Workspace, tmp_path: Path) -> None:
    path = claims_file(tmp_path, "epochs = 2\n")
    assert cli(ws, RUN, "--claims", str(path))[0] == 0
    code, _, err = cli(ws, VERSION, "--claims", str(path))
    assert code == 2 and "the claims file is about" in err
    bare = tmp_path / "bare.toml"
    bare.write_text("[claims]\nepochs = 2\n")
    code, out, _ = cli(ws, RUN, VERSION, "--claims", str(bare), "--json")
    assert code == 0 and [s["counts"][VERIFIED] for s in json.loads(out)["subjects"]] == [1, 1]


def test_one_byte_of_the_checkpoint_changed_is_stale_exit_1(ws: Workspace) -> None:
    ckpt = ws.run_dir(RUN) / "checkpoints" / "best.safetensors"
    original = ckpt.read_bytes()
    changed = bytearray(original)
    changed[-1] ^= 0x01  # the last byte: inside a tensor's data, the file still loads
    ckpt.write_bytes(bytes(changed))
    try:
        code, out, err = cli(ws, RUN, "--json")
        assert code == 1 and err == ""
        doc = json.loads(out)
        assert doc["ok"] is False
        stale = [v for v in doc["subjects"][0]["verdicts"] if v["state"] == STALE]
        assert stale and all("best.safetensors" in v["detail"] for v in stale)
        assert any(v["key"] == "parameters" for v in stale)
        code, out, _ = cli(ws, RUN)
        assert code == 1 and "FAILED" in out.splitlines()[-1]
        assert any(line.startswith(STALE) and "changed: runs/r1/checkpoints/best.safetensors" in line
                   for line in out.splitlines())  # fmt: skip
    finally:
        ckpt.write_bytes(original)
    assert cli(ws, RUN)[0] == 0


def test_with_no_stored_report_the_claims_are_derived_now(ws: Workspace) -> None:
    stored = ws.run_dir(RUN) / "report.json"
    aside = stored.with_name("report.json.aside")
    stored.rename(aside)
    try:
        assert load_report(ws, resolve(ws, RUN)) is None
        verdicts, note = verify_subject(ws, RUN)
        assert note.startswith("no stored report: claims derived from the files now")
        assert not failing(verdicts) and counts(verdicts)[VERIFIED] > 5
        code, out, _ = cli(ws, RUN)
        assert code == 0 and "no stored report" in out.splitlines()[-1]
    finally:
        aside.rename(stored)


def test_field_share_in_the_named_artifact(ws: Workspace, tmp_path: Path) -> None:
    """Seed 001: 1,500 saved frames, none with gesture_token; the claims file names the artifact
    relative to its own folder."""
    (tmp_path / "model").mkdir()
    frames = [{"t": i / 10, "features": [0.0]} for i in range(1500)]
    (tmp_path / "model" / "oracle.json").write_text(json.dumps({"audio_frames": frames}))
    path = tmp_path / "claims.toml"
    path.write_text(
        f'subject = "{RUN}"\nartifact = "model/oracle.json"\n[claims]\n'
        '"field_share.audio_frames[].gesture_token" = 1.0\n'
        '"field_share.audio_frames[].features" = 1.0\n'
    )
    code, out, _ = cli(ws, "--claims", str(path), "--json")
    verdicts = {v["key"]: v for v in json.loads(out)["subjects"][0]["verdicts"]}
    assert code == 1
    token = verdicts["field_share.audio_frames[].gesture_token"]
    assert (token["state"], token["recomputed"]) == (CONTRADICTED, 0.0)
    assert token["evidence"][0]["path"] == str(tmp_path / "model" / "oracle.json")
    assert verdicts["field_share.audio_frames[].features"]["state"] == VERIFIED
