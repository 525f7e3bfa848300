"""SAN served: a capture schema-v2 frame (or only its 128-d input) in, the performance heads out.

The heads are what engines/san/infer.py gives a device: gesture_probs as a softmax (it was
trained with KL against a distribution), the others raw, scalars as numbers. With a frame,
`mix` (seed 000's mixFactor, default 1.0) blends the model's heads with the frame's own head
fields, the app's baseline: 0.0 gives the baseline, 1.0 the model. A bare input has no
baseline, so it takes no other mix. The hidden size comes from the weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainledger.engines.capture.schema import DIMS, SCHEMA_VERSION, check_frame
from trainledger.engines.serving.kind_input import fraction, pick, type_name, vector
from trainledger.engines.serving.kind_torch import check_output, floats, parameter_count, shape_of, strict_load
from trainledger.engines.serving.kinds import MAX_BATCH, BadInput
from trainledger.engines.training.san import HEADS, SAN
from trainledger.engines.workspace import Workspace

SOFTMAX_HEADS = frozenset(key for key, (_, loss) in HEADS.items() if loss == "kl")


def _columns() -> list[tuple[str, int, int]]:
    """(head, first column, width) of each head in the model's HEADS order."""
    out, start = [], 0
    for key, (width, _) in HEADS.items():
        out.append((key, start, width))
        start += width
    return out


COLUMNS = _columns()


def _column_head(column: int) -> str:
    return next(key for key, start, width in COLUMNS if start <= column < start + width)


class SANPredictor:
    kind = "san"
    slow = False

    def __init__(self, model: SAN) -> None:
        self.model = model
        self.parameters = parameter_count(model)
        self.input_shape: dict[str, Any] = {"frame": f"capture schema-v{SCHEMA_VERSION} frame", "input": [DIMS],
                                            "mix": [0.0, 1.0], "max_batch": MAX_BATCH}  # fmt: skip

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        field, value, batch = pick(body, "frame", "frames", others=(("input", "inputs"),), extra=("mix",))
        mix = fraction(body["mix"], "mix") if "mix" in body else 1.0
        items: list[Any] = value if batch else [value]

        def at(i: int) -> str:
            return f"{field}[{i}]" if batch else field

        frames = field in ("frame", "frames")
        if frames:
            for i, frame in enumerate(items):
                if not isinstance(frame, dict):
                    raise BadInput(field, f"{at(i)}: expected a schema-v{SCHEMA_VERSION} frame object, "
                                          f"got {type_name(frame)}")  # fmt: skip
                reason = check_frame(frame)
                if reason is not None:
                    raise BadInput(field, f"{at(i)}.{reason}")
            inputs = [frame["input"] for frame in items]
        else:
            if mix != 1.0:
                raise BadInput("mix", "mixing needs a frame's own heads as the baseline: send frame or frames, "
                                      "or leave mix out")  # fmt: skip
            inputs = [vector(row, field, DIMS, at(i), finite=False) for i, row in enumerate(items)]
        suffix = ".input" if frames else ""
        x = floats(inputs, field, where=lambda ix: f"{at(ix[0])}{suffix}[{ix[1]}]")
        with torch.inference_mode():
            heads = self.model(x)
            for key in SOFTMAX_HEADS:
                heads[key] = torch.softmax(heads[key], dim=1)
            out = torch.cat([heads[key] for key in HEADS], dim=1)
            if mix != 1.0:
                out = self._mixed(out, items, field, at, mix)
            rows = check_output(out, field).tolist()
        results = [{key: row[start] if width == 1 else row[start : start + width] for key, start, width in COLUMNS}
                   for row in rows]  # fmt: skip
        return {"outputs": results, "mix": mix} if batch else {"output": results[0], "mix": mix}

    @staticmethod
    def _mixed(model_out: Tensor, frames: list[dict[str, Any]], field: str, at: Any, mix: float) -> Tensor:
        """(1 - mix) * the frames' own heads + mix * the model's; exactly the baseline at 0.0."""
        rows = []
        for frame in frames:
            row: list[float] = []
            for key in HEADS:
                v = frame[key]
                row.extend(v if isinstance(v, list) else [v])
            rows.append(row)
        base = floats(rows, field, where=lambda ix: f"{at(ix[0])}.{_column_head(ix[1])}")
        return base if mix == 0.0 else (1.0 - mix) * base + mix * model_out


def build(ws: Workspace, kind: str, state: dict[str, Tensor], run: dict[str, Any] | None) -> SANPredictor:
    hidden, inputs = shape_of(state, "trunk.0.weight", kind, 2)
    if inputs != DIMS:
        raise ValueError(f"the weights are not {kind} weights (an input of {inputs}, not {DIMS})")
    return SANPredictor(strict_load(SAN(hidden), state, kind))
