"""Which models `trainledger train MODEL` knows, and where each one's Task is built.

Each entry names "module:function"; the function takes TaskOptions and returns a Task
(see loop.Task). Importing a model costs torch, so nothing is imported until a model
is asked for, and the CLI can list the names without loading anything.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from trainledger.engines.workspace import Workspace

MODELS: dict[str, str] = {
    "ternary-vae": "trainledger.engines.training.ternary_vae:build",
    "san": "trainledger.engines.training.san:build",
    "lvm-amn": "trainledger.engines.training.lvm:build_amn",
    "lvm-gru": "trainledger.engines.training.lvm:build_gru",
    "lvm-lstm": "trainledger.engines.training.lvm:build_lstm",
    "lvm-transformer": "trainledger.engines.training.lvm:build_transformer",
    "vocab": "trainledger.engines.training.vocab:build",
    "lm-base": "trainledger.engines.training.lm:build_base",
    "lora-lm": "trainledger.engines.training.lora:build",
}


@dataclass
class TaskOptions:
    """What every model builder receives. Without `data`, a builder generates the model's
    demo dataset under `<workspace>/datasets/<model>/` and sets the Task's `data_path`."""

    workspace: Workspace
    data: Path | None = None
    seed: int = 0
    backend: str = "torch"  # torch | mlx
    device: str = "cpu"  # resolved: cpu | cuda | mps
    extra: dict[str, Any] = field(default_factory=dict)  # model-specific (base run, force, ...)


class UnknownModel(ValueError):
    pass


def load_builder(name: str) -> Callable[[TaskOptions], Any]:
    try:
        target = MODELS[name]
    except KeyError:
        raise UnknownModel(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def datasets_dir(ws: Workspace, model: str) -> Path:
    path = ws.root / "datasets" / model
    path.mkdir(parents=True, exist_ok=True)
    return path
