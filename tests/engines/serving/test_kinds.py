"""kinds.py on real tiny runs: every kind `trainledger train` makes is trained for one epoch by the
trainer, deployed into a real registry, loaded from the registry's blob bytes, and must answer
what its own model computes on the same input; bad requests name their field."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from trainledger.engines.registry.source import candidate_from_run
from trainledger.engines.registry.store import Registry
from trainledger.engines.registry.types import Version
from trainledger.engines.serving.kinds import MAX_BATCH, BadInput, load_predictor, passthrough_predictor
from trainledger.engines.training.checkpoints import load_checkpoint
from trainledger.engines.workspace import Workspace, init_workspace

pytestmark = pytest.mark.slow

LVM_KINDS = ("lvm-amn", "lvm-gru", "lvm-lstm", "lvm-transformer")
# kind -> (run id, loop settings, model settings, base run): the fastest real runs of each
RUNS: dict[str, tuple[str, dict[str, Any], dict[str, Any], str | None]] = {
    **{kind: (kind, {}, {}, None) for kind in LVM_KINDS},
    "san": ("san", {}, {}, None),
    "ternary-vae": ("vae", {"batch_size": 2048}, {"prior_samples": 1024}, None),
    "vocab": ("vocab", {}, {}, None),
    "lm-base": ("base", {}, {}, None),
    "lora-lm": ("lora", {}, {}, "base"),
}


def train(ws: Workspace, kind: str, run_id: str, loop: dict[str, Any], sets: dict[str, Any], base: str | None) -> None:
    """One epoch with the trainer, the task built as `trainledger train` builds it."""
    from trainledger.engines.training.loop import LoopConfig, StopFlag, Trainer
    from trainledger.engines.training.models import TaskOptions, load_builder

    extra = {**sets, "set": sets, "force": False, "base": base, "base_dir": ws.run_dir(base) if base else None}
    task = load_builder(kind)(TaskOptions(ws, extra=extra))
    cfg = LoopConfig(**{**dict(getattr(task, "loop_defaults", {}) or {}), "epochs": 1, **loop})
    options = {"data": None, "seed": 0, "set": sets, "base": base, "force": False}
    result = Trainer(task, cfg, ws, run_id=run_id, stop=StopFlag(), extra_info={"task_options": options},
                     monitor=False).run()  # fmt: skip
    assert result is not None and result.status == "finished"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = init_workspace(tmp_path_factory.mktemp("kinds") / "ws")
    with Registry(ws) as reg:
        for kind, (run_id, loop, sets, base) in RUNS.items():
            train(ws, kind, run_id, loop, sets, base)
            reg.deploy(kind, candidate_from_run(ws, run_id))
    return ws


def deployed(ws: Workspace, kind: str) -> tuple[Version, dict[str, bytes]]:
    """The kind's v1 and its artifacts' bytes, read from the registry's blob store."""
    with Registry(ws) as reg:
        version = reg.version(kind, "v1")
        return version, {a.name: reg.blob_path(a.sha256).read_bytes() for a in version.artifacts}


def load(ws: Workspace, kind: str) -> Any:
    return load_predictor(ws, *deployed(ws, kind))


def own_model(ws: Workspace, kind: str, model: torch.nn.Module) -> torch.nn.Module:
    """`model` with the run's best checkpoint, read from the run folder (not the registry)."""
    tensors, _ = load_checkpoint(ws.run_dir(RUNS[kind][0]), "best")
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def tree(root: Path) -> dict[str, str]:
    """Every path under `root` but the registry's, with its content's sha256 (folders "")."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            for p in root.rglob("*") if p.relative_to(root).parts[0] != "registry"}  # fmt: skip


def refused(predictor: Any, body: Any) -> str:
    with pytest.raises(BadInput) as info:
        predictor.predict(body)
    assert isinstance(info.value, ValueError) and str(info.value)
    return info.value.field


def contexts(n: int, dim: int = 64, seed: int = 0) -> list[list[list[float]]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, dim, generator=g).tolist()


# ----------------------------------------------------------------------------- LVM
@pytest.mark.parametrize("kind", LVM_KINDS)
def test_an_lvm_version_predicts_what_its_own_model_computes_and_writes_nothing(ws: Workspace, kind: str) -> None:
    from trainledger.engines.training.lvm import ARCHITECTURES

    before = tree(ws.root)
    p = load(ws, kind)
    assert (p.kind, p.slow, p.input_shape["context"]) == (kind, False, [5, 64])
    json.dumps(p.input_shape)
    model = own_model(ws, kind, ARCHITECTURES[kind.removeprefix("lvm-")](64))
    assert p.parameters == sum(t.numel() for t in model.state_dict().values()) > 0
    ctx = contexts(3)
    with torch.no_grad():
        expected = model(torch.tensor(ctx))
    one = p.predict({"context": ctx[0], "key": "user-7"})  # the routing key is ignored
    assert list(one) == ["vector"] and len(one["vector"]) == 64
    torch.testing.assert_close(torch.tensor(one["vector"]), expected[0], rtol=1e-5, atol=1e-6)
    many = p.predict({"contexts": ctx})
    assert list(many) == ["vectors"] and len(many["vectors"]) == 3
    torch.testing.assert_close(torch.tensor(many["vectors"]), expected, rtol=1e-5, atol=1e-6)
    assert tree(ws.root) == before  # the demo dataset is neither read nor rewritten


@pytest.fixture(scope="module")
def amn(ws: Workspace) -> Any:
    return load(ws, "lvm-amn")


CTX = contexts(1)[0]


def _with(row: int, col: int, value: Any) -> list[list[Any]]:
    ctx = [list(r) for r in CTX]
    ctx[row][col] = value
    return ctx


@pytest.mark.parametrize(("body", "field"), [
    ({}, "context"),
    ([CTX], "body"),
    ({"context": "5 vectors"}, "context"),
    ({"context": CTX[:4]}, "context"),
    ({"context": [*CTX, CTX[0]]}, "context"),
    ({"context": [r[:63] for r in CTX]}, "context"),
    ({"context": [CTX[0], CTX[1], CTX[2], CTX[3], 1.0]}, "context"),
    ({"context": _with(2, 7, "0.5")}, "context"),
    ({"context": _with(2, 7, True)}, "context"),
    ({"context": _with(2, 7, None)}, "context"),
    ({"context": _with(2, 7, [0.5])}, "context"),
    ({"context": _with(2, 7, float("nan"))}, "context"),
    ({"context": _with(2, 7, float("inf"))}, "context"),
    ({"context": _with(2, 7, 1e39)}, "context"),  # finite, but beyond float32
    ({"context": _with(2, 7, 10**400)}, "context"),
    ({"context": _with(4, 0, 3e38)}, "context"),  # a float32, but the model overflows on it
    ({"contexts": []}, "contexts"),
    ({"contexts": CTX}, "contexts"),  # one context where a batch of them belongs
    ({"contexts": {"a": CTX}}, "contexts"),
    ({"contexts": [CTX, _with(4, 63, float("-inf"))]}, "contexts"),
    ({"contexts": [CTX, CTX[:3]]}, "contexts"),
    ({"context": CTX, "contexts": [CTX]}, "contexts"),
    ({"context": CTX, "temperature": 0.5}, "temperature"),
    ({"context": CTX, "version": "v1"}, "version"),  # the server strips it; a predictor never sees it
])  # fmt: skip
def test_bad_lvm_input_names_its_field(amn: Any, body: Any, field: str) -> None:
    assert refused(amn, body) == field


def test_a_bad_value_is_located_and_the_batch_is_bounded(amn: Any) -> None:
    with pytest.raises(BadInput) as info:
        amn.predict({"contexts": [CTX, _with(3, 9, float("nan"))]})
    assert "[1][3][9]" in str(info.value)
    with pytest.raises(BadInput) as info:
        amn.predict({"context": _with(3, 9, "x")})
    assert "[3][9]" in str(info.value)
    assert len(amn.predict({"contexts": [CTX] * MAX_BATCH})["vectors"]) == MAX_BATCH
    assert refused(amn, {"contexts": [CTX] * (MAX_BATCH + 1)}) == "contexts"
    assert len(amn.predict({"context": [[int(x > 0) for x in r] for r in CTX]})["vector"]) == 64  # ints are numbers


# ----------------------------------------------------------------------------- passthrough
def test_passthrough_gives_the_last_vector_back_and_checks_like_a_model_port() -> None:
    p = passthrough_predictor(dim=4, context=2)
    assert (p.kind, p.parameters, p.slow, p.input_shape["context"]) == ("passthrough", 0, False, [2, 4])
    assert p.predict({"context": [[1, 2, 3, 4], [5, 6.5, 7, 8]], "key": "k"}) == {"vector": [5.0, 6.5, 7.0, 8.0]}
    assert p.predict({"contexts": [[[0] * 4, [1] * 4]] * 2}) == {"vectors": [[1.0] * 4] * 2}
    for body, field in (({"context": [[1, 2, 3, 4]]}, "context"), ({"context": [[1, 2, 3], [1, 2, 3]]}, "context"),
                        ({"context": [[1, 2, 3, 4], [1, 2, 3, float("nan")]]}, "context"),
                        ({"context": [[1, 2, 3, 4], [1, 2, 3, 10**400]]}, "context"),
                        ({"context": [[1, 2, 3, 4], [1, 2, False, 4]]}, "context"),
                        ({"contexts": [[[0] * 4, [1] * 4]] * (MAX_BATCH + 1)}, "contexts"),
                        ({"context": [[0] * 4] * 2, "x": 1}, "x")):  # fmt: skip
        assert refused(p, body) == field
    free = passthrough_predictor()
    assert free.predict({"context": [[1.0, 2.0, 3.0]]}) == {"vector": [1.0, 2.0, 3.0]}
    assert refused(free, {"context": [[1.0, 2.0, 3.0], [1.0]]}) == "context"  # rows of one width
    with pytest.raises(ValueError):
        passthrough_predictor(dim=0)


def test_the_passthrough_port_never_imports_torch() -> None:
    code = ("import sys; from trainledger.engines.serving.kinds import passthrough_predictor as p; "
            "assert p(2).predict({'context': [[1, 2]]}) == {'vector': [1.0, 2.0]}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'safetensors')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- san
def test_san_answers_a_frame_or_its_input_with_the_heads_mixed_by_mix(ws: Workspace) -> None:
    from trainledger.engines.training.san import HEADS, SAN

    p = load(ws, "san")
    assert (p.kind, p.slow, p.input_shape["input"]) == ("san", False, [128])
    model = own_model(ws, "san", SAN())
    session = sorted(Path(json.loads((ws.run_dir("san") / "run.json").read_text())["data"]["path"]).glob("*.jsonl"))[0]
    frames = [json.loads(line) for line in session.read_text().splitlines()[:3]]
    with torch.no_grad():
        raw = model(torch.tensor([f["input"] for f in frames]))
    expected = {k: (torch.softmax(v, 1) if k == "gesture_probs" else v) for k, v in raw.items()}

    def as_tensor(out: dict[str, Any], key: str) -> torch.Tensor:
        return torch.tensor(out[key] if isinstance(out[key], list) else [out[key]])

    one = p.predict({"frame": frames[0]})
    assert one["mix"] == 1.0 and list(one["output"]) == list(HEADS)
    assert isinstance(one["output"]["cut_timing"], float) and len(one["output"]["camera_scores"]) == 7
    for key in HEADS:
        torch.testing.assert_close(as_tensor(one["output"], key), expected[key][0], rtol=1e-5, atol=1e-6)
    assert p.predict({"input": frames[0]["input"]})["output"] == one["output"]
    batch = p.predict({"frames": frames, "mix": 1})["outputs"]
    assert len(batch) == 3 and batch == p.predict({"inputs": [f["input"] for f in frames]})["outputs"]
    baseline = p.predict({"frame": frames[1], "mix": 0.0})["output"]
    for key in HEADS:  # mix 0.0: the frame's own heads
        torch.testing.assert_close(as_tensor(baseline, key), torch.tensor(frames[1][key]).reshape(-1).float())
    half = p.predict({"frames": frames, "mix": 0.25})["outputs"][2]
    for key in HEADS:
        want = 0.75 * torch.tensor(frames[2][key]).reshape(-1).float() + 0.25 * expected[key][2]
        torch.testing.assert_close(as_tensor(half, key), want, rtol=1e-5, atol=1e-6)
    broken = dict(frames[0], input=frames[0]["input"][:100])
    for body, field in (({"frame": frames[0], "mix": 1.5}, "mix"), ({"frame": frames[0], "mix": True}, "mix"),
                        ({"input": frames[0]["input"], "mix": 0.5}, "mix"), ({"frame": broken}, "frame"),
                        ({"frame": {k: v for k, v in frames[0].items() if k != "phase"}}, "frame"),
                        ({"frames": [frames[0], "a frame"]}, "frames"), ({"input": [0.0] * 127}, "input"),
                        ({"inputs": [[0.0] * 128, [float("nan")] * 128]}, "inputs"),
                        ({"frame": frames[0], "input": frames[0]["input"]}, "input"),
                        ({"heads": 1}, "heads")):  # fmt: skip
        assert refused(p, body) == field


# ----------------------------------------------------------------------------- ternary-vae
def test_ternary_vae_gives_the_latent_mean_and_its_reconstruction(ws: Workspace) -> None:
    from trainledger.engines.training.ternary_vae import TernaryVAE, all_operations, logits_to_ops

    p = load(ws, "ternary-vae")
    assert (p.kind, p.input_shape["op"], p.input_shape["latent"]) == ("ternary-vae", [9], [16])
    model = own_model(ws, "ternary-vae", TernaryVAE())
    ops = all_operations()[[0, 4000, 19682]]
    with torch.no_grad():
        mu, _ = model.encode(ops)
        recon = logits_to_ops(model.decode(mu))
    one = p.predict({"op": ops[1].tolist()})
    torch.testing.assert_close(torch.tensor(one["latent"]), mu[1], rtol=1e-5, atol=1e-6)
    assert one["reconstruction"] == recon[1].tolist() and one["exact"] == (recon[1] == ops[1]).all().item()
    many = p.predict({"ops": ops.tolist()})
    assert many["reconstructions"] == recon.tolist() and len(many["latents"]) == 3 == len(many["exact"])
    for body, field in (({"op": [1, 0, -1, 0, 1, 0, -1, 0, 2]}, "op"), ({"op": [1, 0, -1, 0, 1, 0, -1, 0]}, "op"),
                        ({"op": [1, 0, -1, 0, 1, 0, -1, 0, 0.5]}, "op"), ({"op": [True] * 9}, "op"),
                        ({"ops": [[0] * 9, "000000000"]}, "ops"), ({"ops": []}, "ops"),
                        ({"op": [0] * 9, "latent": [0.0] * 16}, "latent")):  # fmt: skip
        assert refused(p, body) == field


# ----------------------------------------------------------------------------- vocab
def test_vocab_assigns_each_normalised_feature_its_nearest_token(ws: Workspace) -> None:
    from trainledger.engines.training.vocab import Quantizer

    p = load(ws, "vocab")
    assert (p.kind, p.input_shape["feature"], p.input_shape["normalization"]) == ("vocab", [32], "l2")
    model = own_model(ws, "vocab", Quantizer(torch.zeros(64, 32)))
    x = torch.randn(4, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = model.distances(F.normalize(x, dim=1)).min(1)
    one = p.predict({"feature": x[0].tolist()})
    assert one["token"] == int(want.indices[0]) and math.isclose(one["sq_distance"], float(want.values[0]),
                                                                 rel_tol=1e-5, abs_tol=1e-6)  # fmt: skip
    assert p.predict({"feature": (x[0] * 7).tolist()})["token"] == one["token"]  # the direction counts
    many = p.predict({"features": x.tolist()})
    assert many["tokens"] == want.indices.tolist() and len(many["sq_distances"]) == 4
    for body, field in (({"feature": [0.0] * 32}, "feature"), ({"feature": [1.0] * 31}, "feature"),
                        ({"features": [[1.0] * 32, [0] * 32]}, "features"),
                        ({"features": [[1.0] * 32, [1.0] * 33]}, "features")):  # fmt: skip
        assert refused(p, body) == field
    version, blobs = deployed(ws, "vocab")  # no run to read: the default (L2) normalisation, said by /health
    assert load_predictor(ws, replace(version, run_id=None), blobs).input_shape["normalization"] == "l2"


# ----------------------------------------------------------------------------- lm-base, lora-lm
def greedy(model: torch.nn.Module, prompt: str, n: int) -> str:
    """The reference decode: the most likely next byte, n times or until EOS."""
    from trainledger.engines.training.lm import EOS

    tokens, out = list(prompt.encode()), []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(torch.tensor([tokens[-128:]]))[0, -1].argmax())
            if nxt == EOS:
                break
            tokens.append(nxt)
            out.append(nxt)
    return bytes(out).decode("utf-8", errors="replace")


def test_lm_base_continues_a_prompt_greedily_within_max_tokens(ws: Workspace) -> None:
    from trainledger.engines.training.lm import ByteLM, LMConfig

    p = load(ws, "lm-base")
    assert (p.kind, p.slow, p.input_shape["max_tokens"]) == ("lm-base", True, [1, 256])
    model = own_model(ws, "lm-base", ByteLM(LMConfig()))
    out = p.predict({"prompt": "The ", "max_tokens": 12})
    assert out["text"] == greedy(model, "The ", 12) and out["tokens"] <= 12 and out["stop"] in ("eos", "max_tokens")
    long = "ab" * 200  # longer than the context: the last 128 bytes are the window
    assert p.predict({"prompts": ["The ", long], "max_tokens": 5})["texts"] == [greedy(model, "The ", 5),
                                                                                 greedy(model, long, 5)]  # fmt: skip
    assert p.predict({"prompt": "x"})["tokens"] <= 64  # the default bound
    for body, field in (({"prompt": "x", "max_tokens": 0}, "max_tokens"),
                        ({"prompt": "x", "max_tokens": 257}, "max_tokens"),
                        ({"prompt": "x", "max_tokens": 2.0}, "max_tokens"), ({"prompt": ""}, "prompt"),
                        ({"prompt": 7}, "prompt"), ({"prompt": "x" * 4097}, "prompt"), ({"prompt": "\ud800"}, "prompt"),
                        ({"prompts": ["a"] * 17}, "prompts"), ({"max_tokens": 3}, "prompt")):  # fmt: skip
        assert refused(p, body) == field


def test_lora_lm_serves_the_adapters_on_their_own_verified_base(ws: Workspace) -> None:
    from trainledger.engines.training.lora import add_lora, load_base

    p = load(ws, "lora-lm")
    model, _ = load_base(ws.run_dir("base"))
    add_lora(model, 4, 8.0, ("q_proj", "k_proj", "v_proj", "o_proj"))
    own_model(ws, "lora-lm", model)
    assert p.parameters == sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    assert p.predict({"prompt": "Hi", "max_tokens": 8})["text"] == greedy(model, "Hi", 8)
    # a run whose recorded base checkpoint is not the base run's: refused, nothing served
    shutil.copytree(ws.run_dir("lora"), ws.run_dir("lora-other"))
    run = json.loads((ws.run_dir("lora-other") / "run.json").read_text())
    run["config"]["base_checkpoint"]["sha256"] = "0" * 64
    (ws.run_dir("lora-other") / "run.json").write_text(json.dumps(run))
    version, blobs = deployed(ws, "lora-lm")
    with pytest.raises(ValueError, match="base"):
        load_predictor(ws, replace(version, run_id="lora-other"), blobs)
    shutil.rmtree(ws.run_dir("lora-other"))


# ----------------------------------------------------------------------------- refusals at load
def test_weights_that_cannot_be_served_are_refused_at_load(ws: Workspace, tmp_path: Path) -> None:
    from safetensors.torch import load as load_safetensors  # bytes -> tensors; never pickle
    from safetensors.torch import save as save_safetensors

    version, blobs = deployed(ws, "lvm-amn")
    tensors = load_safetensors(blobs["model.safetensors"])
    nan = {**tensors, "query.weight": torch.full_like(tensors["query.weight"], float("nan"))}
    cases = [
        (replace(version, kind="lvm-gru", run_id=None), blobs),  # another kind's tensors
        (replace(version, kind="lvm-gru"), blobs),  # ... and its run says so
        (version, {"model.safetensors": b"not safetensors"}),
        (version, {"model.safetensors": save_safetensors(nan)}),
        (version, {"weights.bin": blobs["model.safetensors"]}),
        (version, {"a.safetensors": blobs["model.safetensors"], "b.safetensors": blobs["model.safetensors"]}),
        (replace(version, kind="resnet"), blobs),
        (replace(version, kind=None), blobs),
        (replace(deployed(ws, "lm-base")[0], run_id=None), deployed(ws, "lm-base")[1]),  # needs its run.json
        (replace(deployed(ws, "lm-base")[0], run_id="gone"), deployed(ws, "lm-base")[1]),
    ]
    for v, b in cases:
        with pytest.raises(ValueError, match=f"{v.model} {v.version}"):
            load_predictor(ws, v, b)
    renamed = load_predictor(ws, version, {"weights/amn.safetensors": blobs["model.safetensors"]})
    assert renamed.kind == "lvm-amn"  # a folder's one .safetensors file is the weights
