"""Load a candidate's weights with its model kind's own code and push one batch through them.

Seed 004's model validation ("the model loads; it generates output") made mechanical: the
run's Task is rebuilt from its run.json as the trainer builds it, the checkpoint is loaded
with `strict=True`, and one training batch goes through the model; every floating output
must be finite and not flat. This imports torch, so only the CLI process calls it (the
console runs `trainledger registry deploy` as a child process). Rebuilding the Task writes
nothing into the workspace: the demo dataset a run was trained on is there already and is
reused, a lora-lm run's base is only read. Never raises.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from trainledger.engines.registry.types import Candidate, Check
from trainledger.engines.workspace import RUN_FILE, RUN_FILE_LIMIT, Workspace

WEIGHTS_LIMIT = 2 << 30  # sanity.py's largest size range


def _skipped(why: str) -> list[Check]:
    return [Check("loads", True, why, skipped=True), Check("probe", True, why, skipped=True)]


def _tensors(obj: Any, out: list[Any]) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point():
            out.append(obj.detach())
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _tensors(item, out)
    elif isinstance(obj, dict):
        for item in obj.values():
            _tensors(item, out)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            _tensors(getattr(obj, name), out)


def _task(ws: Workspace, run: dict[str, Any]) -> Any:
    from trainledger.engines.training.models import TaskOptions, load_builder

    options = run.get("task_options") if isinstance(run.get("task_options"), dict) else {}
    settings = options.get("set") if isinstance(options.get("set"), dict) else {}
    base = options.get("base")
    base_dir = None
    if isinstance(base, str):
        base_dir = Path(base) if "/" in base else ws.run_dir(base)
    extra = {**settings, "set": settings, "force": options.get("force") is True, "base": base, "base_dir": base_dir}
    data = Path(options["data"]) if isinstance(options.get("data"), str) else None
    seed = options.get("seed") if isinstance(options.get("seed"), int) else 0
    return load_builder(run["model"])(TaskOptions(ws, data=data, seed=seed, backend="torch", device="cpu",
                                                  extra=extra))  # fmt: skip


def load_and_probe(ws: Workspace, candidate: Candidate) -> list[Check]:
    if candidate.run_id is None:
        return _skipped("a folder: no run to rebuild the model from")
    if candidate.backend not in (None, "torch"):
        return _skipped(f"a {candidate.backend} run: loaded by its own backend, not probed here")
    try:
        import torch
        from safetensors.torch import load as load_safetensors  # bytes -> tensors; never pickle

        from trainledger.engines.safeio import read_regular

        run = json.loads(read_regular(ws.run_dir(candidate.run_id) / RUN_FILE, RUN_FILE_LIMIT))
        if not isinstance(run, dict):
            raise ValueError("run.json is not a JSON object")
        if not isinstance(run.get("model"), str):
            run["model"] = candidate.kind
        weights = [f for f in candidate.files if f.name.endswith(".safetensors")]
        if not weights:
            raise ValueError("no .safetensors file among the candidate's files")
        state = load_safetensors(read_regular(weights[0].path, WEIGHTS_LIMIT))  # a FIFO is refused
        task = _task(ws, run)
        model = task.build_model()
        model.load_state_dict(state, strict=True)
        count = sum(t.numel() for t in state.values())
        floats = [t for t in state.values() if t.is_floating_point()]
        zeroed = bool(floats) and not any(bool(t.any()) for t in floats)
    except Exception as exc:  # noqa: BLE001 - every failure is the check's finding
        return [Check("loads", False, f"{type(exc).__name__}: {exc}"),
                Check("probe", True, "not run: the weights did not load", skipped=True)]  # fmt: skip
    loads = Check("loads", True, f"{count:,} parameters into {type(model).__name__} (strict)")
    outputs: list[Any] = []  # the model's own output; a submodule's when the loss calls only parts of it
    inner: list[Any] = []
    handles = [model.register_forward_hook(lambda _m, _i, out: _tensors(out, outputs))]
    handles += [m.register_forward_hook(lambda _m, _i, out: _tensors(out, inner))
                for m in model.modules() if m is not model]  # fmt: skip
    try:
        model.eval()
        batch = task.train_batches(8, torch.Generator().manual_seed(0))[0]
        try:
            with torch.no_grad():
                task.loss(model, batch, task.schedule(0.0))
        except RuntimeError:  # a loss that takes its own gradients (lora-lm) needs autograd on
            outputs.clear()
            inner.clear()
            task.loss(model, batch, task.schedule(0.0))
    except Exception as exc:  # noqa: BLE001
        return [loads, Check("probe", False, f"{type(exc).__name__}: {exc}")]
    finally:
        for handle in handles:
            handle.remove()
    outputs = outputs or inner
    if not outputs:  # the loss used the parameters directly: judge the evaluation's figures instead
        try:
            figures = task.evaluate(model, task.schedule(0.0))
        except Exception as exc:  # noqa: BLE001
            return [loads, Check("probe", False, f"no forward call, and evaluation failed: {exc}")]
        values = [float(v) for v in figures.values() if isinstance(v, (int, float))]
        finite = bool(values) and all(math.isfinite(v) for v in values)
        return [loads, Check("probe", finite, f"no forward call; {len(values)} evaluation figures "
                             + ("finite" if finite else "not all finite"))]  # fmt: skip
    try:
        return [loads, _judge(outputs, zeroed, count)]
    except Exception as exc:  # noqa: BLE001
        return [loads, Check("probe", False, f"{type(exc).__name__}: {exc}")]


def _judge(outputs: list[Any], zeroed: bool, count: int) -> Check:
    """Finite and not flat. A model whose every loaded weight is 0 fails too: a residual model
    (lvm's `ctx[:, -1] + out(...)`) then still gives a varied output, its input passed through."""
    import torch

    flat = torch.cat([t.float().reshape(-1) for t in outputs])
    if not torch.isfinite(flat).all():
        return Check("probe", False, f"non-finite output ({flat.numel():,} values)")
    std = float(flat.std()) if flat.numel() > 1 else 0.0
    shape = "x".join(str(d) for d in outputs[0].shape)
    detail = f"output {shape}, std {std:.3g}" + ("" if std > 1e-12 else " (flat)")
    if zeroed:
        return Check("probe", False, f"{detail}; all {count:,} loaded values are 0 (a wiped or untrained model)")
    return Check("probe", std > 1e-12, detail)
