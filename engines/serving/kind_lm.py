"""lm-base and lora-lm served: a prompt in, its greedy continuation out, at most `max_tokens` bytes.

Both need their run's run.json: the head count is in no tensor's shape (lm.LMConfig as the
run recorded it), and a LoRA run records its rank, alpha, targets and base. lora-lm's
version holds only the adapters (the loop's checkpoints keep no frozen base: lora.py), so
its base comes from the base run's own checkpoint, verified against its sidecar's sha256,
and refused unless that is the sha256 the LoRA run recorded it trained on: a base retrained
or replaced since never serves under an adapter made for another.

Decoding is greedy (the most likely next byte, so the same prompt gives the same text),
over a window of the model's context, and stops at EOS or `max_tokens`; the bytes are
decoded as UTF-8 with replacement characters for a cut sequence. The server runs it in a
thread (slow=True): a 64-byte answer is 64 forward passes.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import Tensor, nn

from trainledger.engines.serving.kind_input import pick, type_name, whole_in
from trainledger.engines.serving.kind_torch import parameter_count, strict_load
from trainledger.engines.serving.kinds import BadInput, config
from trainledger.engines.training.lm import EOS, ByteLM, LMConfig
from trainledger.engines.workspace import Workspace

MAX_TOKENS = 256  # most bytes one answer generates
DEFAULT_MAX_TOKENS = 64
MAX_PROMPT = 4096  # characters
MAX_PROMPTS = 16  # prompts per batch: each is its own decode loop


class LMPredictor:
    slow = True

    def __init__(self, kind: str, model: ByteLM) -> None:
        self.kind = kind
        self.model = model
        self.context = model.cfg.context
        self.parameters = parameter_count(model)
        self.input_shape: dict[str, Any] = {"prompt": f"text, 1 to {MAX_PROMPT} characters",
                                            "max_tokens": [1, MAX_TOKENS], "context": self.context,
                                            "max_batch": MAX_PROMPTS}  # fmt: skip

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        field, value, batch = pick(body, "prompt", "prompts", extra=("max_tokens",), max_batch=MAX_PROMPTS)
        limit = body.get("max_tokens", DEFAULT_MAX_TOKENS)
        limit = whole_in(limit, "max_tokens", 1, MAX_TOKENS)
        items = value if batch else [value]
        prompts = [_prompt(p, field, f"{field}[{i}]" if batch else field) for i, p in enumerate(items)]
        answers = [self.generate(p, limit) for p in prompts]
        if batch:
            return {"texts": [a[0] for a in answers], "tokens": [a[1] for a in answers],
                    "stops": [a[2] for a in answers]}  # fmt: skip
        text, count, stop = answers[0]
        return {"text": text, "tokens": count, "stop": stop}

    def generate(self, prompt: bytes, max_tokens: int) -> tuple[str, int, str]:
        """(text, bytes generated, "eos" | "max_tokens") for `prompt`, greedily."""
        tokens = list(prompt)
        out: list[int] = []
        stop = "max_tokens"
        with torch.inference_mode():
            for _ in range(max_tokens):
                window = torch.tensor([tokens[-self.context :]], dtype=torch.long)
                nxt = int(self.model(window)[0, -1].argmax())
                if nxt == EOS:
                    stop = "eos"
                    break
                tokens.append(nxt)
                out.append(nxt)
        return bytes(out).decode("utf-8", errors="replace"), len(out), stop


def _prompt(value: Any, field: str, path: str) -> bytes:
    if type(value) is not str:
        raise BadInput(field, f"{path}: expected text, got {type_name(value)}")
    if not value:
        raise BadInput(field, f"{path}: empty")
    if len(value) > MAX_PROMPT:
        raise BadInput(field, f"{path}: {len(value)} characters; at most {MAX_PROMPT}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(field, f"{path}: not valid Unicode (a lone surrogate)") from None


def lm_config(recorded: Any, what: str) -> LMConfig:
    """lm.LMConfig from a run.json's recorded `model` object; ValueError when it is not one."""
    names = {f.name for f in fields(LMConfig)}
    if not isinstance(recorded, dict) or not set(recorded) <= names:
        raise ValueError(f"{what}: run.json's config has no lm-base model settings ({', '.join(sorted(names))})")
    if not all(type(v) is int and v > 0 for v in recorded.values()):
        raise ValueError(f"{what}: run.json's model settings must be whole numbers > 0")
    return LMConfig(**recorded)


def _model(cfg: LMConfig, what: str) -> ByteLM:
    try:
        return ByteLM(cfg)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise ValueError(f"{what}: the recorded model settings do not build a model ({exc})") from None


def _lora_base(ws: Workspace, run: dict[str, Any]) -> nn.Module:
    """The frozen base with the LoRA wrappers the run trained, the base's bytes verified."""
    from trainledger.engines.training.lora import add_lora, load_base, resolve_base

    c = config(run)
    options = run.get("task_options") if isinstance(run.get("task_options"), dict) else {}
    base = options.get("base") if isinstance(options.get("base"), str) else c.get("base_run")
    lora, recorded = c.get("lora"), c.get("base_checkpoint")
    if not isinstance(base, str) or not isinstance(lora, dict) or not isinstance(recorded, dict):
        raise ValueError("run.json records no LoRA settings or base run (config.lora, config.base_checkpoint)")
    rank, alpha, targets = lora.get("rank"), lora.get("alpha"), lora.get("targets")
    if type(rank) is not int or rank < 1 or type(alpha) not in (int, float) or not isinstance(targets, list) \
            or not all(isinstance(t, str) for t in targets):  # fmt: skip
        raise ValueError("run.json's LoRA settings (rank, alpha, targets) are not valid")
    tag = recorded.get("tag") if isinstance(recorded.get("tag"), str) else "best"
    try:
        model, info = load_base(resolve_base(ws, base), tag)  # the base's checkpoint, its sha256 checked
    except (OSError, ValueError) as exc:
        raise ValueError(f"the base run {base} cannot be loaded ({exc})") from None
    if info["checkpoint"].get("sha256") != recorded.get("sha256"):
        raise ValueError(f"the base run {base}'s {tag} checkpoint is not the one this adapter was trained on "
                         f"(sha256 {str(info['checkpoint'].get('sha256'))[:12]}…, recorded "
                         f"{str(recorded.get('sha256'))[:12]}…)")  # fmt: skip
    try:
        add_lora(model, rank, float(alpha), tuple(targets))
    except ValueError as exc:
        raise ValueError(f"run.json's LoRA targets do not fit the base ({exc})") from None
    return model


def build(ws: Workspace, kind: str, state: dict[str, Tensor], run: dict[str, Any] | None) -> LMPredictor:
    assert run is not None  # kinds.NEEDS_RUN: load_predictor read it or refused
    if kind == "lm-base":
        model = _model(lm_config(config(run).get("model"), kind), kind)
    else:
        model = _lora_base(ws, run)
    return LMPredictor(kind, strict_load(model, state, kind))
