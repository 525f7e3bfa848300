"""Loading a subject's model for the model checks, the way a port loads it (engines/serving/kinds).

A run: its checkpoints/best.safetensors, whose sha256 and size must be the ones its
checkpoints/best.json sidecar records. A version: its registry artifacts
(registry/artifacts/<sha[:2]>/<sha>), each re-hashed against the registry's sha256. Either way
the bytes go through kinds.read_weights and the kind's own `build` (strict loading), so a
check sees the model a port would serve. torch is imported only inside the functions (the
runner imports this module without torch too); nothing is written.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from trainledger.engines.provenance.subject import Subject
from trainledger.engines.serving.kinds import KIND_MODULES
from trainledger.engines.workspace import Workspace

WEIGHTS_LIMIT = 4 << 30  # bytes of one weights file read into memory
SIDECAR_LIMIT = 1 << 20
CHECKPOINT = "checkpoints/best.safetensors"
SIDECAR = "checkpoints/best.json"
KINDS = tuple(KIND_MODULES)  # every kind a port can load


class NotLoadable(ValueError):
    """The model cannot be loaded; `missing` says the files are absent (a skip, not a failure)."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def servable(kind: str | None) -> bool:
    return kind in KIND_MODULES


def rel(ws: Workspace, path: Any) -> str:
    """Workspace-relative POSIX when inside the workspace, else absolute."""
    from pathlib import Path

    p = Path(path).resolve()
    try:
        return p.relative_to(Path(ws.root).resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def run_blobs(ws: Workspace, subject: Subject) -> tuple[dict[str, bytes], list[str]]:
    """{"model.safetensors": the run's best checkpoint bytes}, checked against best.json."""
    from trainledger.engines.safeio import read_regular

    assert subject.run_dir is not None
    weights, sidecar = subject.run_dir / CHECKPOINT, subject.run_dir / SIDECAR
    evidence = [rel(ws, weights), rel(ws, sidecar)]
    try:
        meta = json.loads(read_regular(sidecar, SIDECAR_LIMIT))
    except FileNotFoundError:
        raise NotLoadable(f"{subject.label} has no {SIDECAR}", missing=True) from None
    except (OSError, ValueError) as exc:
        raise NotLoadable(f"{SIDECAR} cannot be read ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise NotLoadable(f"{SIDECAR} records no sha256")
    try:
        data = read_regular(weights, WEIGHTS_LIMIT)
    except FileNotFoundError:
        raise NotLoadable(f"{subject.label} has no {CHECKPOINT}", missing=True) from None
    except OSError as exc:
        raise NotLoadable(f"{CHECKPOINT} cannot be read ({exc})") from None
    sha = hashlib.sha256(data).hexdigest()
    if sha != meta["sha256"]:
        raise NotLoadable(f"{CHECKPOINT}'s sha256 {sha[:12]}… is not the {meta['sha256'][:12]}… {SIDECAR} records")
    if type(meta.get("bytes")) is int and meta["bytes"] != len(data):
        raise NotLoadable(f"{CHECKPOINT} is {len(data)} bytes, {SIDECAR} records {meta['bytes']}")
    return {"model.safetensors": data}, evidence


def version_blobs(ws: Workspace, subject: Subject) -> tuple[dict[str, bytes], list[str]]:
    """Every artifact of the version, each re-hashed against its registered sha256."""
    from trainledger.engines.registry import blobs
    from trainledger.engines.registry.types import RegistryError
    from trainledger.engines.safeio import read_regular

    version = subject.version
    assert version is not None
    registry = ws.registry_dir
    out: dict[str, bytes] = {}
    evidence: list[str] = []
    if not version.artifacts:
        raise NotLoadable(f"{subject.label} has no artifacts", missing=True)
    for art in version.artifacts:
        try:
            path = blobs.blob_path(registry, art.sha256)
        except RegistryError as exc:
            raise NotLoadable(f"{art.name}: {exc}") from None
        evidence.append(rel(ws, path))
        try:
            data = read_regular(path, WEIGHTS_LIMIT)
        except FileNotFoundError:
            raise NotLoadable(f"{art.name}: its blob {rel(ws, path)} is missing", missing=True) from None
        except OSError as exc:
            raise NotLoadable(f"{art.name}: cannot be read ({exc})") from None
        if hashlib.sha256(data).hexdigest() != art.sha256:
            raise NotLoadable(f"{art.name}: its bytes no longer hash to the registered sha256")
        out[art.name] = data
    return out, evidence


def subject_blobs(ws: Workspace, subject: Subject) -> tuple[dict[str, bytes], list[str]]:
    if subject.version is not None:
        return version_blobs(ws, subject)
    if subject.run_dir is None:
        raise NotLoadable(f"{subject.label} has no run folder", missing=True)
    return run_blobs(ws, subject)


def load_subject(ws: Workspace, subject: Subject) -> tuple[Any, list[str]]:
    """(the kind's Predictor, the files read); NotLoadable naming what is wrong."""
    import importlib

    from trainledger.engines.serving import kinds

    blobs, evidence = subject_blobs(ws, subject)
    try:
        if subject.version is not None:
            return kinds.load_predictor(ws, subject.version, blobs), evidence
        kind = subject.kind
        if not servable(kind):
            raise NotLoadable(f"kind {kind!r} has no served model", missing=True)
        state = kinds.read_weights(subject.label, blobs)
        if kind in kinds.NEEDS_RUN and not subject.run:
            raise NotLoadable(f"a {kind} run needs its run.json", missing=True)
        module = importlib.import_module(f"trainledger.engines.serving.{kinds.KIND_MODULES[kind]}")
        return module.build(ws, kind, state, subject.run or None), evidence
    except NotLoadable:
        raise
    except ValueError as exc:
        raise NotLoadable(str(exc)) from None


# ----------------------------------------------------------------------------- fixed inputs
N_INPUTS = 32
SEED = 13
PROMPTS = ("The ", "Once upon a time", "In the beginning", "A model ", "def main(", "Hello, ", "We trained",
           "1, 2, 3, ", "She said", "The data", "import ", "What is", "Results:", "Today the", "# Title\n",
           "It was")  # fmt: skip


def batch_body(predictor: Any, n: int = N_INPUTS) -> dict[str, Any]:
    """A fixed (seeded) batch request for the predictor's kind."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    kind = predictor.kind
    if kind.startswith("lvm-"):
        from trainledger.engines.training.lvm import CONTEXT

        return {"contexts": rng.standard_normal((n, CONTEXT, predictor.dim)).round(6).tolist()}
    if kind == "san":
        from trainledger.engines.capture.schema import DIMS

        return {"inputs": rng.standard_normal((n, DIMS)).round(6).tolist()}
    if kind == "ternary-vae":
        from trainledger.engines.training.ternary_vae import N_DIGITS

        return {"ops": rng.integers(-1, 2, (n, N_DIGITS)).tolist()}
    if kind == "vocab":
        return {"features": rng.standard_normal((n, predictor.dim)).round(6).tolist()}
    if kind in ("lm-base", "lora-lm"):
        return {"prompts": list(PROMPTS[: min(n, len(PROMPTS))]), "max_tokens": 1}
    raise NotLoadable(f"no fixed inputs for kind {kind!r}", missing=True)


def single_bodies(predictor: Any, n: int) -> list[dict[str, Any]]:
    """`n` one-example requests (the batch's examples, cycled)."""
    body = batch_body(predictor)
    (field, items), *rest = [(k, v) for k, v in body.items() if isinstance(v, list)]
    single = {"contexts": "context", "inputs": "input", "ops": "op", "features": "feature", "prompts": "prompt"}
    extra = {k: v for k, v in body.items() if k != field}
    return [{single[field]: items[i % len(items)], **extra} for i in range(n)]


def output_heads(predictor: Any) -> dict[str, Any]:
    """head -> array [inputs, values]: what the model computes for the fixed inputs.

    lvm: the predicted vectors; san: each head; ternary-vae: the latent means; vocab: the squared
    distances to the nearest centroid; lm-base / lora-lm: the next-byte logits after each prompt."""
    import numpy as np

    kind = predictor.kind
    body = batch_body(predictor)
    if kind in ("lm-base", "lora-lm"):
        import torch

        rows = []
        with torch.inference_mode():
            for prompt in body["prompts"]:
                window = torch.tensor([list(prompt.encode())[-predictor.context :]], dtype=torch.long)
                rows.append(predictor.model(window)[0, -1].float().numpy())
        return {"next_byte_logits": np.stack(rows)}
    out = predictor.predict(body)
    if kind.startswith("lvm-"):
        return {"vector": np.asarray(out["vectors"], dtype=np.float64)}
    if kind == "ternary-vae":
        return {"latent": np.asarray(out["latents"], dtype=np.float64)}
    if kind == "vocab":
        return {"sq_distance": np.asarray(out["sq_distances"], dtype=np.float64)[:, None]}
    heads: dict[str, Any] = {}
    for key in out["outputs"][0]:
        heads[key] = np.asarray([np.ravel(o[key]) for o in out["outputs"]], dtype=np.float64)
    return heads
