"""The torch side every served kind shares: strict loading, the parameter count, checked tensors.

Imported only by the kind modules, which only load_predictor imports: a port process pays
for torch when it loads a model, the passthrough port never.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from trainledger.engines.serving.kind_input import float32_array
from trainledger.engines.serving.kinds import BadInput


def strict_load(model: nn.Module, state: dict[str, Tensor], kind: str) -> nn.Module:
    """`model` with `state` loaded strictly (every tensor named and shaped as the model's), in eval
    mode and without gradients; ValueError when the tensors are not this kind's."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:400]
        raise ValueError(f"the weights are not {kind} weights ({detail})") from None
    model.eval()
    model.requires_grad_(False)
    return model


def parameter_count(model: nn.Module) -> int:
    """Every value the served model computes with: parameters and buffers (for lora-lm, the
    frozen base, held as buffers, plus the adapters)."""
    return sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())


def shape_of(state: dict[str, Tensor], name: str, kind: str, ndim: int) -> tuple[int, ...]:
    """The shape of tensor `name`; ValueError when it is missing or has another rank."""
    tensor = state.get(name)
    if tensor is None:
        raise ValueError(f"the weights are not {kind} weights (no tensor {name!r})")
    if tensor.dim() != ndim:
        raise ValueError(f"the weights are not {kind} weights ({name!r} is {list(tensor.shape)})")
    return tuple(tensor.shape)


def floats(data: list[Any], field: str, drop_first: bool = False, where: Any = None) -> Tensor:
    """Checked nested numbers as a float32 tensor (numpy builds it: twice as fast as torch.tensor
    on nested lists; torch shares the memory)."""
    return torch.from_numpy(float32_array(data, field, drop_first, where))


def check_output(out: Tensor, field: str) -> Tensor:
    """`out` if every value is finite. The weights were checked finite at load, so only an
    input too large for the model can overflow it: that is the request's fault, not the port's."""
    if not math.isfinite(float(out.sum(dtype=torch.float64))):
        raise BadInput(field, "the model's output for this input is not finite (values too large?)")
    return out
