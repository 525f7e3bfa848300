"""What a port serves: a registry version's weights in its kind's model, behind one `predict(body)`.

The server hands over the version and its artifact bytes, already checked against their
sha256; the weights are read from those bytes with safetensors (never pickle, never the
run's own checkpoint file) and loaded strictly into the model the kind's training module
defines. The architecture comes from the tensors' shapes; lm-base and lora-lm also read
their run's run.json (the head count and the LoRA settings are in no tensor's shape), vocab
reads it for its normalisation, and lora-lm loads its frozen base from the base run's own
verified checkpoint (the registry names the base, it does not copy it). Nothing is written.

Each kind's request and response are in docs/formats.md. A bad request raises BadInput,
which names the top-level field it is about; the server answers it with a 400. This module
imports no torch: the passthrough port (the last context vector back, seed 003's baseline)
never needs it, and each kind's torch module is imported only when a version is loaded.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Protocol

from trainledger.engines.registry.types import Version
from trainledger.engines.workspace import RUN_FILE, RUN_FILE_LIMIT, Workspace

MAX_BATCH = 1024  # examples per request; more -> BadInput naming the batch field
WEIGHTS_FILE = "model.safetensors"  # what a run's candidate registers (registry/source.py)

# kind -> the module that builds its predictor (each has `build(ws, kind, state, run)`)
KIND_MODULES: dict[str, str] = {
    "lvm-amn": "kind_lvm", "lvm-gru": "kind_lvm", "lvm-lstm": "kind_lvm", "lvm-transformer": "kind_lvm",
    "san": "kind_san", "ternary-vae": "kind_vae", "vocab": "kind_vocab", "lm-base": "kind_lm", "lora-lm": "kind_lm",
}  # fmt: skip
NEEDS_RUN = frozenset({"lm-base", "lora-lm"})  # their architecture is not all in the tensors' shapes


class BadInput(ValueError):
    """A request the kind cannot answer; `field` is the top-level key it is about. str() is the
    message, led by the position inside the field (``contexts[3][2][7]: ...``) or by the field."""

    def __init__(self, field: str, message: str) -> None:
        located = message.startswith(field) and message[len(field) : len(field) + 1] in ("[", ".", ":")
        super().__init__(message if located else f"{field}: {message}")
        self.field = field
        self.message = message


class Predictor(Protocol):
    kind: str  # "lvm-amn" ... or "passthrough"
    input_shape: dict[str, Any]  # JSON-able, shown by /health
    parameters: int  # values in the served model's tensors (0 for passthrough)
    slow: bool  # True: the server runs predict in a thread

    def predict(self, body: dict[str, Any]) -> dict[str, Any]: ...


# ----------------------------------------------------------------------------- passthrough
class PassthroughPredictor:
    """Seed 003's baseline port: no model, the last context vector back, checked as an LVM port
    checks its input (so the two cost the same to validate). Pure Python: no torch."""

    kind = "passthrough"
    parameters = 0
    slow = False

    def __init__(self, dim: int | None = None, context: int | None = None) -> None:
        for name, value in (("dim", dim), ("context", context)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"passthrough {name} must be a whole number >= 1, not {value!r}")
        self.dim = dim
        self.context = context
        self.input_shape: dict[str, Any] = {"context": [context, dim], "max_batch": MAX_BATCH}

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        from trainledger.engines.serving.kind_input import pick, vector_rows

        field, value, batch = pick(body, "context", "contexts")
        if not batch:
            return {"vector": _last(vector_rows(value, field, self.context, self.dim, field))}
        return {"vectors": [_last(vector_rows(ctx, field, self.context, self.dim, f"{field}[{i}]"))
                            for i, ctx in enumerate(value)]}  # fmt: skip


def _last(rows: list[list[float]]) -> list[float]:
    return [float(x) for x in rows[-1]]


def passthrough_predictor(dim: int | None = None, context: int | None = None) -> Predictor:
    """The no-model port; `dim` / `context` (None: any) are the vector size and rows it accepts."""
    return PassthroughPredictor(dim, context)


# ----------------------------------------------------------------------------- loading
def load_predictor(ws: Workspace, version: Version, blobs: dict[str, bytes]) -> Predictor:
    """The predictor for `version`, its weights taken from `blobs` (artifact name -> bytes, already
    sha256-checked). ValueError, naming what is wrong, when the model cannot be built."""
    kind = version.kind
    label = f"{version.model} {version.version}"
    if kind not in KIND_MODULES:
        known = ", ".join(KIND_MODULES)
        raise ValueError(f"{label}: cannot serve kind {kind!r}" + ("" if kind else " (the version names none)")
                         + f"; servable kinds: {known}")  # fmt: skip
    state = read_weights(label, blobs)
    run = read_run(ws, version, required=kind in NEEDS_RUN)
    module = importlib.import_module(f"trainledger.engines.serving.{KIND_MODULES[kind]}")
    try:
        return module.build(ws, kind, state, run)
    except BadInput as exc:  # a builder's own checks are about the version, not a request
        raise ValueError(f"{label}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None


def weights_name(blobs: dict[str, bytes]) -> str:
    """The artifact holding the weights: model.safetensors, else the only *.safetensors."""
    if WEIGHTS_FILE in blobs:
        return WEIGHTS_FILE
    found = sorted(name for name in blobs if name.endswith(".safetensors"))
    if len(found) != 1:
        listed = ", ".join(sorted(blobs)) or "none"
        what = "no .safetensors artifact" if not found else "more than one .safetensors artifact"
        raise ValueError(f"{what} to load the weights from (artifacts: {listed})")
    return found[0]


def read_weights(label: str, blobs: dict[str, bytes]) -> dict[str, Any]:
    """The tensors of the weights artifact, every floating value finite; ValueError otherwise."""
    try:
        name = weights_name(blobs)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None
    from safetensors.torch import load as load_safetensors  # bytes -> tensors; never pickle

    try:
        state = load_safetensors(blobs[name])
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for bad bytes
        raise ValueError(f"{label}: {name} is not a readable safetensors file ({type(exc).__name__})") from None
    if not state:
        raise ValueError(f"{label}: {name} holds no tensors")
    import torch

    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{label}: {name}: tensor {key!r} holds NaN or infinite values")
    return state


def read_run(ws: Workspace, version: Version, required: bool) -> dict[str, Any] | None:
    """The run.json of the version's run, read only; None when the version has no run, or its run.json
    is gone or unreadable, and the kind can do without. A run of another kind or backend is refused."""
    label = f"{version.model} {version.version}"
    if version.run_id is None:
        if required:
            raise ValueError(f"{label}: a {version.kind} version needs its run's run.json, and it names no run")
        return None
    from trainledger.engines.safeio import read_regular

    try:
        path = ws.run_dir(version.run_id) / RUN_FILE
        run = json.loads(read_regular(path, RUN_FILE_LIMIT))
    except FileNotFoundError:
        if required:
            raise ValueError(f"{label}: a {version.kind} version needs its run's run.json; "
                             f"run {version.run_id} has none in {ws.runs_dir}") from None  # fmt: skip
        return None
    except (OSError, ValueError) as exc:  # unreadable, not JSON, an invalid run id
        if required:
            raise ValueError(f"{label}: run {version.run_id}'s run.json cannot be read ({exc})") from None
        return None  # the weights alone build this kind: a damaged run.json does not stop the port
    if not isinstance(run, dict):
        if required:
            raise ValueError(f"{label}: run {version.run_id}'s run.json is not a JSON object")
        return None
    if isinstance(run.get("model"), str) and run["model"] != version.kind:
        raise ValueError(f"{label}: run {version.run_id} trained {run['model']}, not {version.kind}")
    backend = run.get("backend")
    if backend not in (None, "torch"):
        raise ValueError(f"{label}: run {version.run_id} trained with {backend}; only torch weights are served")
    return run


def config(run: dict[str, Any] | None) -> dict[str, Any]:
    """run.json's config object ({} without one)."""
    value = run.get("config") if run else None
    return value if isinstance(value, dict) else {}


def whole(value: Any, default: int | None = None) -> int | None:
    """An int (not a bool) from a JSON value, else `default`."""
    return value if type(value) is int else default
