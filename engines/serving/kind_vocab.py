"""The gesture vocabulary served: feature vectors in, their tokens (nearest centroids) out.

The vocabulary is fitted on L2-normalised features (seed 001's fix) unless its run said
otherwise (`--set normalize=false`, recorded in run.json's config as "normalization"), and a
feature is normalised the same way before it is assigned: so this kind reads its run's
run.json when there is one; a version without a run is taken to be normalised, the default,
and /health says which it assumes. The sizes (K tokens, dim) come from the centroids.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainledger.engines.serving.kind_input import pick, vector
from trainledger.engines.serving.kind_torch import check_output, floats, parameter_count, shape_of, strict_load
from trainledger.engines.serving.kinds import MAX_BATCH, BadInput, config
from trainledger.engines.training.vocab import NORMALIZE, Quantizer
from trainledger.engines.workspace import Workspace

ZERO_NORM = 1e-12  # the trainer drops features at or below this norm: they have no direction


class VocabPredictor:
    kind = "vocab"
    slow = False

    def __init__(self, model: Quantizer, normalize: bool) -> None:
        self.model = model
        self.normalize = normalize
        self.k, self.dim = (int(n) for n in model.centroids.shape)
        self.parameters = parameter_count(model)
        self.input_shape: dict[str, Any] = {"feature": [self.dim], "tokens": self.k,
                                            "normalization": "l2" if normalize else "none",
                                            "max_batch": MAX_BATCH}  # fmt: skip

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        field, value, batch = pick(body, "feature", "features")
        items = value if batch else [value]
        rows = [vector(row, field, self.dim, f"{field}[{i}]" if batch else field, finite=False)
                for i, row in enumerate(items)]  # fmt: skip
        x = floats(rows, field, drop_first=not batch)
        with torch.inference_mode():
            if self.normalize:
                norms = x.norm(dim=1)
                if bool((norms <= ZERO_NORM).any()):
                    i = int(torch.nonzero(norms <= ZERO_NORM)[0])
                    where = f"{field}[{i}]" if batch else field
                    raise BadInput(field, f"{where}: a zero vector has no direction (this vocabulary is L2-normalised)")
                x = F.normalize(x, dim=1)
            nearest = check_output(self.model.distances(x), field).min(dim=1)
        tokens, distances = nearest.indices.tolist(), nearest.values.tolist()
        if batch:
            return {"tokens": tokens, "sq_distances": distances}
        return {"token": tokens[0], "sq_distance": distances[0]}


def build(ws: Workspace, kind: str, state: dict[str, Tensor], run: dict[str, Any] | None) -> VocabPredictor:
    k, dim = shape_of(state, "centroids", kind, 2)
    recorded = config(run).get("normalization", "l2" if NORMALIZE else "none")
    if recorded not in ("l2", "none"):
        raise ValueError(f"run.json's config names normalization {recorded!r}, not l2 or none")
    model = strict_load(Quantizer(torch.zeros(k, dim)), state, kind)
    return VocabPredictor(model, recorded == "l2")
