"""`trainledger train` refuses bad arguments, wrong data files and forged checkpoint sidecars
with one line and exit 2, before anything is created (real subprocesses, real tiny runs)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainledger.engines.training.checkpoints import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from trainledger.engines.training.lora import (
    ADAPTERS_SIDECAR,
    load_adapters,
    save_adapters,
)
from trainledger.engines.workspace import Workspace, init_workspace

FAST = ["--batch-size", "2048", "--log-every", "2", "--set", "prior_samples=4096"]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def run_train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "trainledger", "train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root, with a file's bytes (None for a folder)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def refused(out: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainledger train: "), out.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "run " not in out.stdout and "folder " not in out.stdout  # no run was announced


BAD_FLAGS = [
    (["ternary-vae", "--epochs", "-1"], "--epochs -1: expected an integer >= 1"),
    (["ternary-vae", "--epochs", "0"], "--epochs 0: expected an integer >= 1"),
    (["ternary-vae", "--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
    (["ternary-vae", "--lr", "-5"], "--lr -5: expected a finite number > 0"),
    (["ternary-vae", "--lr", "nan"], "--lr nan: expected a finite number > 0"),
    (["ternary-vae", "--lr", "inf"], "--lr inf: expected a finite number > 0"),
    (["ternary-vae", "--patience", "-1"], "--patience -1: expected an integer >= 0"),
    (["ternary-vae", "--seed", "-1"], "--seed -1: expected an integer from 0"),
    (["ternary-vae", "--log-every", "0"], "--log-every 0: expected an integer >= 1"),
    (["ternary-vae", "--pace", "-1"], "--pace -1: expected a finite number >= 0"),
    (["ternary-vae", "--threads", "0"], "--threads 0: expected an integer >= 1"),
    (["ternary-vae", "--nproc", "0"], "--nproc 0: expected an integer >= 1"),
    (["ternary-vae", "--set", "epochs=-1"], "--set epochs=-1: expected an integer >= 1"),
    (["ternary-vae", "--set", "lr=0"], "--set lr=0: expected a finite number > 0"),
    (["ternary-vae", "--set", "balance_every=-1"], "--set balance_every=-1: expected an integer >= 0"),
    (["ternary-vae", "--set", "dominance_factor=0.5"], "--set dominance_factor=0.5: expected a finite number > 1"),
    (["ternary-vae", "--set", "last_every=-1"], "--set last_every=-1: expected a finite number >= 0"),
    (["ternary-vae", "--set", "eval_at_start=3"], "--set eval_at_start=3: expected true or false"),
    (["ternary-vae", "--set", "hidden=0"], "--set hidden=0: expected an integer >= 1"),
    (["ternary-vae", "--set", "hidden=2.5"], "--set hidden=2.5: expected an integer >= 1"),
    (["ternary-vae", "--set", "prior_samples=many"], "--set prior_samples=many: expected an integer >= 1"),
    (["ternary-vae", "--set", "val_fraction=1.5"], "--set val_fraction=1.5: expected a number between 0 and 1"),
    (["ternary-vae", "--set", "free_bits=-1"], "--set free_bits=-1: expected a finite number >= 0"),
    (["san", "--set", "val_fraction=0"], "--set val_fraction=0: expected a number between 0 and 1"),
    (["lvm-gru", "--set", "infonce_weight=-1"], "--set infonce_weight=-1: expected a finite number >= 0"),
    (["lvm-transformer", "--set", "val_fraction=1"], "--set val_fraction=1: expected a number between 0 and 1"),
    (["vocab", "--set", "k=1"], "--set k=1: expected an integer >= 2"),
    (["vocab", "--set", "normalize=maybe"], "--set normalize=maybe: expected true or false"),
    (["lm-base", "--set", "d_model=0"], "--set d_model=0: expected an integer >= 1"),
    (["lm-base", "--set", "vocab=10"], "--set vocab=10: expected an integer >= 257"),
    (["lm-base", "--set", "context=1"], "--set context=1: expected an integer >= 2"),
    (["lora-lm", "--set", "rank=0"], "--set rank=0: expected an integer >= 1"),
    (["lora-lm", "--set", "alpha=-8"], "--set alpha=-8: expected a finite number > 0"),
    (["lora-lm", "--set", "grad_accum=0"], "--set grad_accum=0: expected an integer >= 1"),
    (["lora-lm", "--set", "base_checkpoint=../../x"], "--set base_checkpoint=../../x: expected best or last"),
    (["ternary-vae", "--resume", "../../etc"], "--resume ../../etc: invalid run id"),
    (["ternary-vae", "--run-id", "../escape"], "--run-id ../escape: invalid run id"),
    (["ternary-vae", "--run-id", ".hidden"], "--run-id .hidden: invalid run id"),
    (["lvm-gru", "--data", "/dev/zero"],
     "--data /dev/zero: expected a dataset file or folder; found a character device"),
    (["lvm-gru", "--data", "/no/such/file.npz"], "--data /no/such/file.npz: no such file or folder"),
    (["ternary-vae", "--base", "anything"], "--base anything: ternary-vae takes no base run"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_a_bad_value_is_one_line_exit_2_and_creates_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    # a workspace folder that does not exist yet: a refused command must not even create it
    missing = tmp_path / "not-yet"
    refused(run_train(*args, "--workspace", str(missing)), message)
    assert not missing.exists()


def test_bad_values_in_an_existing_workspace_leave_it_unchanged(ws: Workspace) -> None:
    before = tree(ws.root)
    for args, message in BAD_FLAGS[:3] + BAD_FLAGS[-3:]:
        refused(run_train(*args, "--workspace", str(ws.root)), message)
    assert tree(ws.root) == before


def test_lora_base_must_be_a_run_id_or_a_run_folder(ws: Workspace, tmp_path: Path) -> None:
    before = tree(ws.root)
    refused(run_train("lora-lm", "--base", str(ws.runs_dir), "--workspace", str(ws.root)),
            f"--base {ws.runs_dir}: expected a run id of {ws.root} or a run folder")  # fmt: skip
    refused(run_train("lora-lm", "--base", "no-such-run", "--workspace", str(ws.root)), "--base no-such-run")
    assert tree(ws.root) == before


@pytest.mark.slow
def test_lora_trains_on_a_base_given_as_a_run_folder_path(ws: Workspace, tmp_path: Path) -> None:
    tiny = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "context=32"]
    out = run_train("lm-base", "--epochs", "1", "--batch-size", "32", "--workspace", str(ws.root), "--run-id", "base",
                    *tiny)  # fmt: skip
    assert out.returncode == 0, out.stderr
    elsewhere = tmp_path / "moved-base"
    ws.run_dir("base").rename(elsewhere)  # a run folder outside the workspace, named by path
    out = run_train("lora-lm", "--base", str(elsewhere), "--epochs", "1", "--batch-size", "16", "--set", "max_seq=32",
                    "--workspace", str(ws.root), "--run-id", "lora")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "finished at step" in out.stdout
    info = json.loads((ws.run_dir("lora") / "run.json").read_text())
    assert info["status"] == "finished" and info["task_options"]["base"] == str(elsewhere.resolve())


# ----------------------------------------------------------------------------- --data of the wrong kind
@pytest.mark.parametrize(
    ("model", "content", "found"),
    [
        ("lvm-gru", b'{"context_vectors": [1, 2]}\n{"context_vectors": [3]}\n', "found JSON Lines text"),
        ("lvm-gru", b"not an archive at all\n", "found text"),
        ("lvm-gru", bytes(range(256)) * 8, "found binary data of an unknown kind"),
        ("lvm-gru", b"", "found an empty file"),
        ("lvm-gru", b"\x80\x04\x95" + bytes(20), "found a Python pickle (never loaded)"),
        ("vocab", b'{"features": [1, 2]}\n{"features": [3, 4]}\n', "found JSON Lines text"),
    ],
    ids=["jsonl", "text", "binary", "empty", "pickle", "vocab-jsonl"],
)
def test_data_of_the_wrong_kind_says_what_was_expected_and_found(
    ws: Workspace, tmp_path: Path, model: str, content: bytes, found: str
) -> None:
    data = tmp_path / ("data.npy" if model == "vocab" else "data.npz")  # vocab reads .npy or .npz by suffix
    data.write_bytes(content)
    out = run_train(model, "--data", str(data), "--workspace", str(ws.root), timeout=60)
    expected = "expected a .npz archive of arrays" if model != "vocab" else "expected a .npy array"
    refused(out, str(data), expected, found)
    assert not list(ws.runs_dir.iterdir())


def test_an_npz_with_an_object_array_is_refused_without_unpickling(ws: Workspace, tmp_path: Path) -> None:
    import numpy as np

    data = tmp_path / "objects.npz"
    marker = tmp_path / "unpickled"
    np.savez(data, features=np.array([_Boom(str(marker))], dtype=object))
    out = run_train("vocab", "--data", str(data), "--workspace", str(ws.root), timeout=60)
    refused(out, str(data), "key 'features' is not a plain array")
    assert not marker.exists()


class _Boom:
    """Unpickling it would create a file: proof that nothing was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_a_fifo_as_data_or_inside_a_capture_folder_is_refused_without_blocking(ws: Workspace, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    refused(run_train("lvm-gru", "--data", str(fifo), "--workspace", str(ws.root), timeout=60), "found a FIFO")
    capture = tmp_path / "capture"
    capture.mkdir()
    os.mkfifo(capture / "session-00.jsonl")
    out = run_train("san", "--data", str(capture), "--workspace", str(ws.root), timeout=60)
    refused(out, "session-00.jsonl: expected a JSONL capture session file; found a FIFO")


# ----------------------------------------------------------------------------- forged sidecars
FORGED = ["../../../../../../etc/passwd", "/etc/passwd", "../run.json", ".hidden", "sub/last.safetensors", 7]


def _forge(sidecar: Path, name: object, target: Path | None) -> None:
    side = json.loads(sidecar.read_text())
    side["file"] = name
    if target is not None and target.is_file():  # the forger knows the target's sha256 too
        side["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    sidecar.write_text(json.dumps(side))


@pytest.mark.parametrize("name", FORGED, ids=[str(n) for n in FORGED])
def test_a_forged_checkpoint_sidecar_cannot_point_outside_the_checkpoints_folder(tmp_path: Path, name: object) -> None:
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir, "best", torch.nn.Linear(2, 2), {"epoch": 1, "step": 1})
    folder = run_dir / "checkpoints"
    (run_dir / "run.json").write_text("{}")
    target = (folder / str(name)) if isinstance(name, str) else None
    _forge(folder / "best.json", name, target)
    with pytest.raises(CheckpointError, match="is not a file name|no checkpoint file"):
        load_checkpoint(run_dir, "best")


@pytest.mark.parametrize("name", FORGED, ids=[str(n) for n in FORGED])
def test_a_forged_adapters_sidecar_cannot_point_outside_the_run_folder(tmp_path: Path, name: object) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    save_adapters(run_dir, {"x.lora_A": torch.zeros(2, 2)}, {"rank": 2})
    _forge(run_dir / ADAPTERS_SIDECAR, name, (run_dir / str(name)) if isinstance(name, str) else None)
    with pytest.raises(CheckpointError, match="is not a file name|no checkpoint file"):
        load_adapters(run_dir)


def test_an_honest_sidecar_still_loads_and_a_changed_file_is_caught(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir, "best", torch.nn.Linear(2, 2), {"epoch": 1, "step": 1})
    tensors, sidecar = load_checkpoint(run_dir, "best")
    assert set(tensors) == {"weight", "bias"} and sidecar["file"] == "best.safetensors"
    path = run_dir / "checkpoints" / "best.safetensors"
    path.write_bytes(path.read_bytes()[:-1] + b" ")
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        load_checkpoint(run_dir, "best")


@pytest.mark.slow
@pytest.mark.parametrize("which", ["model", "trainer_state"])
def test_resume_with_a_forged_sidecar_is_refused_and_the_run_is_untouched(ws: Workspace, which: str) -> None:
    out = run_train("ternary-vae", "--epochs", "1", "--workspace", str(ws.root), "--run-id", "r1", *FAST)
    assert out.returncode == 0, out.stderr
    run_dir = ws.run_dir("r1")
    side_path = run_dir / "checkpoints" / "last.json"
    side = json.loads(side_path.read_text())
    passwd = Path("/etc/passwd")
    forged = {"file": "../../../../../../../../etc/passwd", "sha256": hashlib.sha256(passwd.read_bytes()).hexdigest()}
    if which == "model":
        side.update(forged)
    else:
        side["trainer_state"] = forged
    side_path.write_text(json.dumps(side))
    before = tree(run_dir)
    out = run_train("--resume", "r1", "--epochs", "2", "--workspace", str(ws.root))
    refused(out, "last.json: checkpoint file '../../../../../../../../etc/passwd' is not a file name")
    assert tree(run_dir) == before
