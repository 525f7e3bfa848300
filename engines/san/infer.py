"""SAN inference in numpy, as a device runs it: no torch, the exported tensors only.

It mirrors `engines/training/san.py`'s `SAN` module (a trunk Linear(128,256) -> GELU ->
Linear(256,256) -> GELU, then one Linear head per target field) with the torch
state_dict's tensor names, and blends the model's output with the app's own baseline by
seed 000's `mixFactor`: 0.0 is the baseline only, 1.0 the model only. The training module
imports torch, so the head table is repeated here; a test keeps the two equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

DIMS = 128
HIDDEN = 256
# field -> width, in the training module's HEADS order (engines/training/san.py)
HEADS: dict[str, int] = {"camera_scores": 7, "cut_timing": 1, "pattern_intensity": 1,
                         "pattern_variation": 1, "phrase": 4, "gesture_probs": 8}  # fmt: skip
SCALAR_HEADS = frozenset(k for k, w in HEADS.items() if w == 1)
SOFTMAX_HEADS = frozenset({"gesture_probs"})  # trained with KL against a distribution


def expected_shapes(hidden: int = HIDDEN) -> dict[str, tuple[int, ...]]:
    """The tensors the model needs, in the torch state_dict's order, with their shapes."""
    shapes: dict[str, tuple[int, ...]] = {
        "trunk.0.weight": (hidden, DIMS),
        "trunk.0.bias": (hidden,),
        "trunk.2.weight": (hidden, hidden),
        "trunk.2.bias": (hidden,),
    }
    for key, width in HEADS.items():
        shapes[f"heads.{key}.weight"] = (width, hidden)
        shapes[f"heads.{key}.bias"] = (width,)
    return shapes


# No scipy on a device: a Maclaurin series for |x| < 0.5, Numerical Recipes' erfc fit beyond.
def erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1e-7 absolute (float64 arithmetic), elementwise, numpy only."""
    x = np.asarray(x, dtype=np.float64)
    shape, x = x.shape, x.reshape(-1)
    z = np.abs(x)
    # Numerical Recipes' erfc Chebyshev fit: fractional error below 1.2e-7 everywhere
    t = 1.0 / (1.0 + 0.5 * z)
    poly = _ERFC[-1] * t
    for c in _ERFC[-2:0:-1]:
        poly += c
        poly *= t
    poly += _ERFC[0] - z * z
    out = 1.0 - t * np.exp(poly)
    # near zero, erfc's relative error is an absolute error of 1e-7 in erf: the series instead
    small = z < 0.5
    if small.any():
        zs = z[small]
        z2 = zs * zs
        series = _SERIES[-1] * z2
        for c in _SERIES[-2:0:-1]:
            series += c
            series *= z2
        out[small] = zs * (series + _SERIES[0])
    return np.copysign(out, x).reshape(shape)


_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
         1.48851587, -0.82215223, 0.17087277)  # fmt: skip
# 2/sqrt(pi) * (1, -1/3, 1/10, -1/42, 1/216, -1/1320, 1/9360): erf's Maclaurin series in z^2
_SERIES = tuple(
    2.0 / math.sqrt(math.pi) * c
    for c in (1, -1 / 3, 1 / 10, -1 / 42, 1 / 216, -1 / 1320, 1 / 9360)
)


def gelu(x: np.ndarray) -> np.ndarray:
    """torch.nn.GELU() (the exact erf form)."""
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class SANInference:
    """The SAN model over exported tensors. ValueError if a tensor is missing or misshapen."""

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        self.tensors: dict[str, np.ndarray] = {}
        problems = []
        for name, shape in expected_shapes().items():
            value = tensors.get(name)
            if value is None:
                problems.append(f"{name}: missing")
            elif tuple(np.shape(value)) != shape:
                problems.append(
                    f"{name}: shape {list(np.shape(value))}, expected {list(shape)}"
                )
            else:
                self.tensors[name] = np.asarray(value, dtype=np.float32)
        if problems:
            raise ValueError("not SAN weights: " + "; ".join(problems))

    @property
    def parameter_count(self) -> int:
        return sum(int(v.size) for v in self.tensors.values())

    def predict(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Each head's output for inputs [N,128] ([N,width]) or [128] ([width]);
        gesture_probs is a softmax, the others are raw."""
        x = np.asarray(inputs, dtype=np.float32)
        single = x.ndim == 1
        if x.shape[-1:] != (DIMS,) or x.ndim not in (1, 2):
            raise ValueError(
                f"inputs: expected shape [N,{DIMS}] or [{DIMS}], got {list(x.shape)}"
            )
        if not np.isfinite(x).all():
            raise ValueError("inputs: values that are NaN or infinite")
        t = self.tensors
        h = x[None] if single else x
        h = gelu(h @ t["trunk.0.weight"].T + t["trunk.0.bias"])
        h = gelu(h @ t["trunk.2.weight"].T + t["trunk.2.bias"])
        out = {}
        for key in HEADS:
            y = h @ t[f"heads.{key}.weight"].T + t[f"heads.{key}.bias"]
            if key in SOFTMAX_HEADS:
                y = softmax(y)
            out[key] = y[0] if single else y
        return out

    def predict_frame(
        self, frame: Mapping[str, Any], mix_factor: float
    ) -> dict[str, Any]:
        """One capture frame's heads blended with the frame's own head fields (the app's
        baseline) by `mix_factor`; JSON-ready (scalars as floats, vectors as lists)."""
        from trainledger.engines.capture.schema import check_frame

        reason = check_frame(dict(frame))
        if reason is not None:
            raise ValueError(f"frame: {reason}")
        mixed = mix(
            self.predict(np.asarray(frame["input"])), baseline_of(frame), mix_factor
        )
        return {
            key: float(v[0]) if key in SCALAR_HEADS else [float(f) for f in v]
            for key, v in mixed.items()
        }


def baseline_of(frame: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A frame's own head fields as arrays shaped like one prediction ([width])."""
    return {
        key: np.atleast_1d(np.asarray(frame[key], dtype=np.float32)) for key in HEADS
    }


def mix(
    model_out: Mapping[str, np.ndarray], baseline: Mapping[str, Any], mix_factor: float
) -> dict[str, np.ndarray]:
    """(1 - m) * baseline + m * model for each head of `model_out`. m must be in [0, 1]:
    0.0 gives the baseline exactly, 1.0 the model exactly."""
    m = float(mix_factor)
    if not 0.0 <= m <= 1.0:  # NaN fails this too
        raise ValueError(
            f"mix_factor {mix_factor!r}: expected a number from 0.0 to 1.0"
        )
    out = {}
    for key, model in model_out.items():
        if key not in baseline:
            raise ValueError(f"baseline has no {key!r}")
        base = np.asarray(baseline[key], dtype=np.float32)
        model = np.asarray(model, dtype=np.float32)
        if base.shape != model.shape:
            raise ValueError(
                f"{key}: baseline shape {list(base.shape)} != model shape {list(model.shape)}"
            )
        out[key] = (
            base
            if m == 0.0
            else model
            if m == 1.0
            else ((1.0 - m) * base + m * model).astype(np.float32)
        )
    return out
