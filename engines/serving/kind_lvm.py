"""The LVM kinds served: 5 context vectors in, the predicted next vector out.

The architecture is lvm.ARCHITECTURES[arch](dim), the trainer's own, with the vector size
read from the weights (so nothing is rebuilt from the run: the demo dataset is neither read
nor rewritten). This is the hot path the serving benchmark measures against a bare server
calling the model: one pass over the rows to check them, one numpy conversion, one forward
under inference_mode, one finiteness sum, tolist.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainledger.engines.serving.kind_input import pick, vector_rows
from trainledger.engines.serving.kind_torch import check_output, floats, parameter_count, shape_of, strict_load
from trainledger.engines.serving.kinds import MAX_BATCH
from trainledger.engines.training.lvm import ARCHITECTURES, CONTEXT
from trainledger.engines.workspace import Workspace

# arch -> (a tensor whose shape holds the vector size, which axis)
DIM_FROM: dict[str, tuple[str, int]] = {
    "amn": ("query.weight", 1), "gru": ("out.weight", 0), "lstm": ("out.weight", 0), "transformer": ("inp.weight", 1),
}  # fmt: skip


class LVMPredictor:
    slow = False

    def __init__(self, kind: str, model: torch.nn.Module, dim: int) -> None:
        self.kind = kind
        self.model = model
        self.dim = dim
        self.parameters = parameter_count(model)
        self.input_shape: dict[str, Any] = {"context": [CONTEXT, dim], "max_batch": MAX_BATCH}

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        field, value, batch = pick(body, "context", "contexts")
        dim = self.dim
        if batch:
            for i, ctx in enumerate(value):
                vector_rows(ctx, field, CONTEXT, dim, f"{field}[{i}]", finite=False)
            x = floats(value, field)
        else:
            vector_rows(value, field, CONTEXT, dim, field, finite=False)
            x = floats([value], field, drop_first=True)
        with torch.inference_mode():
            y = check_output(self.model(x), field)
        return {"vectors": y.tolist()} if batch else {"vector": y[0].tolist()}

def build(ws: Workspace, kind: str, state: dict[str, Tensor], run: dict[str, Any] | None) -> LVMPredictor:
    arch = kind.removeprefix("lvm-")
    name, axis = DIM_FROM[arch]
    dim = shape_of(state, name, kind, 2)[axis]
    model = strict_load(ARCHITECTURES[arch](dim), state, kind)
    return LVMPredictor(kind, model, dim)
