"""The ternary VAE served: a ternary operation (9 digits of -1, 0, 1) in, its latent and its
reconstruction out.

Deterministic, as the trainer's exact-reconstruction metric is: the latent is the posterior
mean (no sampling), the reconstruction the decoder's most likely digit at that mean, and
`exact` says whether it gives the operation back. The sizes come from the weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainledger.engines.serving.kind_input import pick, type_name
from trainledger.engines.serving.kind_torch import check_output, floats, parameter_count, shape_of, strict_load
from trainledger.engines.serving.kinds import MAX_BATCH, BadInput
from trainledger.engines.training.ternary_vae import N_DIGITS, TernaryVAE, logits_to_ops
from trainledger.engines.workspace import Workspace

DIGITS = (-1, 0, 1)


def _operation(value: Any, field: str, path: str) -> list[int]:
    if type(value) is not list:
        raise BadInput(field, f"{path}: expected an array of {N_DIGITS} digits, got {type_name(value)}")
    if len(value) != N_DIGITS:
        raise BadInput(field, f"{path}: expected {N_DIGITS} digits, got {len(value)}")
    for j, digit in enumerate(value):
        if type(digit) is not int or digit not in DIGITS:
            got = digit if type(digit) is int else type_name(digit)
            raise BadInput(field, f"{path}[{j}]: expected -1, 0 or 1, got {got}")
    return value


class TernaryVAEPredictor:
    kind = "ternary-vae"
    slow = False

    def __init__(self, model: TernaryVAE) -> None:
        self.model = model
        self.parameters = parameter_count(model)
        self.latent_dim = model.latent_dim
        self.input_shape: dict[str, Any] = {"op": [N_DIGITS], "digits": list(DIGITS), "latent": [model.latent_dim],
                                            "max_batch": MAX_BATCH}  # fmt: skip

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        field, value, batch = pick(body, "op", "ops")
        items = value if batch else [value]
        ops = [_operation(op, field, f"{field}[{i}]" if batch else field) for i, op in enumerate(items)]
        x = floats(ops, field)
        with torch.inference_mode():
            mu, _ = self.model.encode(x)
            recon = logits_to_ops(check_output(self.model.decode(check_output(mu, field)), field))
            exact = (recon == x.long()).all(dim=1)
        latents, recons, exacts = mu.tolist(), recon.tolist(), exact.tolist()
        if batch:
            return {"latents": latents, "reconstructions": recons, "exact": exacts}
        return {"latent": latents[0], "reconstruction": recons[0], "exact": exacts[0]}


def build(ws: Workspace, kind: str, state: dict[str, Tensor], run: dict[str, Any] | None) -> TernaryVAEPredictor:
    hidden, digits = shape_of(state, "encoder.0.weight", kind, 2)
    if digits != N_DIGITS:
        raise ValueError(f"the weights are not {kind} weights (an input of {digits} digits, not {N_DIGITS})")
    latent, _ = shape_of(state, "to_mu.weight", kind, 2)
    return TernaryVAEPredictor(strict_load(TernaryVAE(hidden, latent), state, kind))
