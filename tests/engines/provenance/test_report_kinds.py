"""trainledger report's claims for a real tiny run of every model kind, and for registered versions:
each provable claim has evidence whose sha256 is the file's now, and a value recomputed here
independently from the same files (parameters = the numel summed over the checkpoint's tensors,
best.<metric> = the min/max over metrics.jsonl, samples = the data's rows, ...)."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from trainledger.engines.provenance.derive import derive_claims, derive_key
from trainledger.engines.provenance.model import Claim
from trainledger.engines.provenance.subject import resolve
from trainledger.engines.registry.cli import main as registry_main
from trainledger.engines.registry.repro import reproduction_command
from trainledger.engines.training.cli import main as train_main
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow

RUNS = {  # run id -> train argv
    "gru": ["lvm-gru", "--epochs", "2"],
    "san": ["san", "--epochs", "2"],
    "tvae": ["ternary-vae", "--epochs", "2"],
    "vocab": ["vocab", "--epochs", "2"],
    "base": ["lm-base", "--epochs", "1"],
    "lora": ["lora-lm", "--epochs", "1", "--base", "base"],
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("report") / "ws")
    for run_id, argv in RUNS.items():
        assert train_main([*argv, "--seed", "0", "--run-id", run_id, "--workspace", str(ws.root)]) == 0
    for model, run, extra in (("lvm", "gru", []), ("tv", "tvae", ["--checkpoint", "last"])):
        assert registry_main(["deploy", model, "--run", run, "--version", "v1", *extra, "--no-probe",
                              "--reason", "test", "--workspace", str(ws.root)]) == 0  # fmt: skip
    return ws


def claims(ws: Workspace, label: str) -> dict[str, Claim]:
    out = {c.key: c for c in derive_claims(ws, label)}
    assert len(out) == len(derive_claims(ws, label))  # no key twice
    return out


def run_json(ws: Workspace, run_id: str) -> dict[str, Any]:
    return json.loads((ws.run_dir(run_id) / "run.json").read_text())


def rows(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    lines = (ws.run_dir(run_id) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def numel(path: Path) -> int:
    return int(sum(np.asarray(t).size for t in load_file(str(path)).values()))


def value(c: dict[str, Claim], key: str) -> Any:
    assert c[key].proven, (key, c[key].reason)
    return c[key].value


def check_evidence(ws: Workspace, c: dict[str, Claim]) -> None:
    """Every claim is proven or says why not; each evidence sha256 is the file's (folder's) now."""
    from trainledger.engines.training.provenance import sha256_tree

    for claim in c.values():
        assert claim.proven or (claim.value is None and claim.reason), claim
        for ev in claim.evidence:
            path = Path(ev.path) if Path(ev.path).is_absolute() else ws.root / ev.path
            if ev.sha256 is not None:
                assert ev.sha256 == (sha256_tree(path) if path.is_dir() else sha(path)), (claim.key, ev)
            assert ev.how, (claim.key, ev)


def check_common(ws: Workspace, run_id: str) -> dict[str, Claim]:
    c = claims(ws, run_id)
    check_evidence(ws, c)
    run = run_json(ws, run_id)
    cfg = run["config"]
    run_dir = ws.run_dir(run_id)
    best_ckpt = run_dir / "checkpoints" / "best.safetensors"
    assert value(c, "parameters") == numel(best_ckpt)
    assert c["parameters"].evidence[0].path == f"runs/{run_id}/checkpoints/best.safetensors"
    assert c["parameters"].evidence[0].sha256 == sha(best_ckpt)
    assert value(c, "checkpoint") == f"runs/{run_id}/checkpoints/best.safetensors"
    assert (value(c, "optimizer"), value(c, "lr")) == (cfg["optimizer"], cfg["lr"])
    assert value(c, "lr.final") == cfg["lr"]  # constant learning rate in these tiny runs
    assert (value(c, "train_samples"), value(c, "val_samples")) == (cfg["n_train"], cfg["n_val"])
    assert value(c, "samples") == cfg["n_train"] + cfg["n_val"]
    assert value(c, "data_sha256") == run["data"]["sha256"]
    assert value(c, "epochs") == cfg["epochs"]
    assert value(c, "best_epoch") == run["summary"]["best"]["epoch"]
    assert value(c, "deployed_epoch") == json.loads((run_dir / "checkpoints" / "last.json").read_text())["epoch"]
    assert value(c, "reproduce") == reproduction_command(run)
    primary = run["primary_metric"]
    direction = run["metrics"][primary]["direction"]
    seen = [r[primary] for r in rows(ws, run_id) if isinstance(r.get(primary), (int, float))]
    assert value(c, f"best.{primary}") == (min(seen) if direction == "min" else max(seen))
    assert value(c, f"last.{primary}") == seen[-1]
    assert value(c, f"best.{primary}") == pytest.approx(run["summary"]["best"]["value"])
    assert list(c)[-1] == "reproduce"
    return c


def test_lvm_run(ws: Workspace) -> None:
    c = check_common(ws, "gru")
    data = Path(run_json(ws, "gru")["data"]["path"])
    assert value(c, "data_path") == str(data) and value(c, "data_files") == 1
    assert c["data_sha256"].evidence[0].sha256 == sha(data)
    with np.load(data, allow_pickle=False) as z:
        assert value(c, "samples") == z["doc_ids"].shape[0]
        assert value(c, "input_dims") == z["context_vectors"].shape[-1] == 64
    assert value(c, "target_fields") == ["target_vectors"]
    assert value(c, "split_method").startswith("by doc_ids")
    vals = [r["val/loss"] for r in rows(ws, "gru") if "val/loss" in r]
    assert value(c, "best.val/loss") == min(vals) and value(c, "last.val/loss") == vals[-1]
    assert "min of val/loss over 3 rows" in c["best.val/loss"].evidence[0].how


def test_san_run(ws: Workspace) -> None:
    c = check_common(ws, "san")
    cfg = run_json(ws, "san")["config"]
    folder = Path(cfg["data_path"])
    assert value(c, "data_files") == len(list(folder.glob("*.jsonl"))) == cfg["files"] == 4
    assert value(c, "samples") == cfg["frames_accepted"] == 2400
    assert (value(c, "schema_version"), value(c, "input_dims")) == (2, 128)
    assert value(c, "target_fields") == sorted(cfg["targets"])
    assert value(c, "split_method").startswith("by session")
    for key in ("manifest", "weights"):  # no export written: said, not guessed
        assert not c[key].proven and "san export" in c[key].reason


def test_ternary_vae_run(ws: Workspace) -> None:
    c = check_common(ws, "tvae")
    assert not c["data_path"].proven and "generated" in c["data_path"].reason
    assert value(c, "samples") == 3**9 and value(c, "input_dims") == 9
    last = [r for r in rows(ws, "tvae") if "coverage/hash" in r][-1]
    assert value(c, "coverage.hash") == last["coverage/hash"]
    assert value(c, "coverage.sampling") == last["coverage/sampling"]
    assert value(c, "coverage.sampling") >= value(c, "coverage.hash")  # seed 002: sampling inflates


def test_vocab_run(ws: Workspace) -> None:
    c = check_common(ws, "vocab")
    last = [r for r in rows(ws, "vocab") if "tokens/active" in r][-1]
    assert value(c, "tokens.active") == int(last["tokens/active"]) and isinstance(value(c, "tokens.active"), int)
    assert value(c, "tokens.entropy_bits") == last["tokens/entropy_bits"]
    assert value(c, "tokens.entropy_bits") <= math.log2(run_json(ws, "vocab")["config"]["k"])
    assert value(c, "input_dims") == run_json(ws, "vocab")["config"]["dim"]


def test_lm_base_and_lora_runs(ws: Workspace) -> None:
    base = check_common(ws, "base")
    assert value(base, "data_files") == 1 and "val when the sha256" in value(base, "split_method")
    lora = check_common(ws, "lora")
    base_best = ws.run_dir("base") / "checkpoints" / "best.safetensors"
    assert value(lora, "base_checkpoint") == sha(base_best)
    assert "adapters only" in lora["parameters"].evidence[0].how
    assert value(lora, "parameters") < value(base, "parameters")


def test_a_version_takes_parameters_and_deployed_epoch_from_the_registry(ws: Workspace) -> None:
    for label, run_id, tag in (("lvm@v1", "gru", "best"), ("tv@v1", "tvae", "last")):
        subject = resolve(ws, label)
        assert subject.version is not None
        c = claims(ws, label)
        check_evidence(ws, c)
        blob_sha = subject.version.artifacts[0].sha256
        blob = f"registry/artifacts/{blob_sha[:2]}/{blob_sha}"
        assert c["parameters"].evidence[0].path == blob and value(c, "checkpoint") == blob
        assert value(c, "parameters") == numel(ws.root / blob)
        assert value(c, "deployed_epoch") == subject.version.epoch
        sidecar = json.loads((ws.run_dir(run_id) / "checkpoints" / f"{tag}.json").read_text())
        assert value(c, "deployed_epoch") == sidecar["epoch"]
        assert [e.path for e in c["deployed_epoch"].evidence] == [blob, f"runs/{run_id}/checkpoints/{tag}.json"]
    tv = claims(ws, "tv@v1")
    at = [r for r in rows(ws, "tvae") if "coverage/hash" in r and r["epoch"] == resolve(ws, "tv@v1").version.epoch]
    assert value(tv, "coverage.hash") == at[-1]["coverage/hash"]


def test_derive_key_recomputes_one_key_and_says_why_it_cannot(ws: Workspace) -> None:
    assert derive_key(ws, "gru", "parameters").value == numel(ws.run_dir("gru") / "checkpoints" / "best.safetensors")
    assert derive_key(ws, "gru", "best.val/cosine").value == claims(ws, "gru")["best.val/cosine"].value
    for key, why in (("no_such_key", "unknown claim key"), ("best.val/absent_loss", "no finite val/absent_loss"),
                     ("schema_version", "not applicable"), ("field_share.x", "needs an artifact"),
                     ("best.lr", "no direction")):  # fmt: skip
        got = derive_key(ws, "gru", key)
        assert not got.proven and why in got.reason, (key, got)


def test_derivation_imports_no_torch(ws: Workspace) -> None:
    code = ("import sys\nfrom pathlib import Path\nfrom trainledger.engines.workspace import Workspace\n"
            "from trainledger.engines.provenance.derive import derive_claims\n"
            f"ws = Workspace(Path({str(ws.root)!r}))\n"
            "n = sum(len(derive_claims(ws, r)) for r in ('gru', 'san', 'tvae', 'vocab', 'base', 'lora', 'lvm@v1'))\n"
            "print(n, 'torch' in sys.modules)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 100 and out[1] == "False"
