"""The training data pool: JSONL samples, validated line by line, rendered to text and split 90/10.

A pool is one `.jsonl` file or a folder of them (searched recursively, read in sorted path
order). Each non-blank line is one sample in one of two formats:

    instruction  {"instruction": str, "input": str, "output": str}   (instruction and/or input)
    chat         {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}

Bad lines are not fatal: they are counted by reason, with the first few file:line places
kept so that a person can go and fix them. Each kept sample is rendered to one training
text with the templates below, and falls in the validation split when the sha256 of that
text says so (a tenth of the hash space): the same text lands on the same side on every
run and machine, and growing the pool never moves an old sample across.

No torch here: reading a pool is cheap, and the console may want the counts.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------- config
READY_THRESHOLD = 100  # samples a pool needs before training starts without --force
VAL_FRACTION = 0.1
ROLES = ("system", "user", "assistant")
EXAMPLES_PER_REASON = 5  # file:line places kept per reject reason
DEMO_SAMPLES = 300

# Templates (documented, stable: changing them changes every split and every model).
#   instruction:  "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}"
#                 (the Instruction or Input section is left out when that field is empty)
#   chat:         "<|role|>\n{content}" per message, joined by "\n"
INSTRUCTION_HEADER = "### Instruction:\n"
INPUT_HEADER = "### Input:\n"
RESPONSE_HEADER = "### Response:\n"


class NotEnoughSamples(ValueError):
    """A pool below the ready-to-train threshold; `--force` trains anyway."""

    def __init__(self, n: int, threshold: int = READY_THRESHOLD) -> None:
        self.n = n
        self.threshold = threshold
        super().__init__(
            f"the data pool has {n} valid sample{'s' if n != 1 else ''}; training needs at least "
            f"{threshold} (add data, or pass --force to train anyway)"
        )


def ready_to_train(n: int, threshold: int = READY_THRESHOLD) -> bool:
    return n >= threshold


def check_ready(n: int, threshold: int = READY_THRESHOLD, force: bool = False) -> None:
    """Raise NotEnoughSamples below the threshold, unless forced."""
    if not force and not ready_to_train(n, threshold):
        raise NotEnoughSamples(n, threshold)


# ----------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Sample:
    text: str  # the rendered training text
    format: str  # instruction | chat
    source: str  # "file:line"


@dataclass
class Pool:
    samples: list[Sample] = field(default_factory=list)
    rejects: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first "file:line"s
    files: list[Path] = field(default_factory=list)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejects.values())

    def reject(self, reason: str, where: str) -> None:
        self.rejects[reason] += 1
        places = self.examples.setdefault(reason, [])
        if len(places) < EXAMPLES_PER_REASON:
            places.append(where)

    def split(self, val_fraction: float = VAL_FRACTION) -> tuple[list[Sample], list[Sample]]:
        return split_samples(self.samples, val_fraction)

    def summary(self) -> dict[str, Any]:
        """What a run's config records about its data."""
        return {
            "files": [str(f) for f in self.files],
            "n_samples": len(self.samples),
            "n_rejected": self.n_rejected,
            "rejects": dict(sorted(self.rejects.items())),
            "reject_examples": {k: v for k, v in sorted(self.examples.items())},
        }


def render_instruction(instruction: str, input: str, output: str) -> str:
    parts = []
    if instruction.strip():
        parts.append(INSTRUCTION_HEADER + instruction.strip())
    if input.strip():
        parts.append(INPUT_HEADER + input.strip())
    parts.append(RESPONSE_HEADER + output.strip())
    return "\n\n".join(parts)


def render_chat(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"<|{m['role']}|>\n{m['content'].strip()}" for m in messages)


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def parse_sample(obj: Any) -> tuple[str, str] | str:
    """(format, text) for a valid sample, or the reason it is rejected."""
    if not isinstance(obj, dict):
        return "not an object"
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list) or not messages:
            return "bad messages"
        for m in messages:
            if not isinstance(m, dict):
                return "bad messages"
            if m.get("role") not in ROLES:
                return "bad role"
            if not _nonempty(m.get("content")):
                return "empty content"
        if not any(m["role"] == "assistant" for m in messages):
            return "no assistant message"
        return "chat", render_chat(messages)
    output = obj.get("output")
    if not isinstance(output, str):
        return "missing output"
    if not output.strip():
        return "empty content"
    instruction, input_ = obj.get("instruction", ""), obj.get("input", "")
    if not isinstance(instruction, str) or not isinstance(input_, str):
        return "bad field type"
    if not instruction.strip() and not input_.strip():
        return "missing instruction"
    return "instruction", render_instruction(instruction, input_, output)


def pool_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*.jsonl") if p.is_file())
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"no data pool at {path}")


def read_pool(path: Path | str) -> Pool:
    """Read and validate every line of the pool; exact duplicate texts are rejected too."""
    pool = Pool(files=pool_files(Path(path)))
    seen: set[str] = set()
    for file in pool.files:
        with open(file, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{file}:{lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    pool.reject("not JSON", where)
                    continue
                parsed = parse_sample(obj)
                if isinstance(parsed, str):
                    pool.reject(parsed, where)
                    continue
                fmt, text = parsed
                if text in seen:
                    pool.reject("duplicate", where)
                    continue
                seen.add(text)
                pool.samples.append(Sample(text=text, format=fmt, source=where))
    return pool


# ----------------------------------------------------------------------------- split
def hash_fraction(text: str) -> float:
    """A number in [0, 1) from the sha256 of the text: the same everywhere, unlike hash()."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_samples(samples: list[Sample], val_fraction: float = VAL_FRACTION) -> tuple[list[Sample], list[Sample]]:
    """(train, val): a sample is in val when its text hashes below `val_fraction`.

    With two or more samples and none hashed into val, the lowest-hashed one goes there,
    so that a small pool still has something to validate on.
    """
    train = [s for s in samples if hash_fraction(s.text) >= val_fraction]
    val = [s for s in samples if hash_fraction(s.text) < val_fraction]
    if not val and len(samples) >= 2 and val_fraction > 0:
        lowest = min(samples, key=lambda s: hash_fraction(s.text))
        train.remove(lowest)
        val = [lowest]
    return train, val


# ----------------------------------------------------------------------------- demo pool
_ANIMALS = ["cat", "dog", "owl", "fox", "bee", "cow", "hen", "eel", "yak", "ant"]
_COLORS = ["red", "blue", "green", "gray", "gold", "pink", "white", "black"]
_SOUNDS = {"cat": "meow", "dog": "woof", "owl": "hoot", "fox": "yip", "bee": "buzz",
           "cow": "moo", "hen": "cluck", "eel": "zap", "yak": "grunt", "ant": "tick"}  # fmt: skip


def demo_samples(n: int = DEMO_SAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """`n` short, distinct samples about a toy farm (sums, sounds, colours); 1 in 5 is chat."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(out) < n:
        kind = rng.randrange(3)
        a, b = rng.randrange(1, 20), rng.randrange(1, 20)
        animal, color = rng.choice(_ANIMALS), rng.choice(_COLORS)
        if kind == 0:
            q, ans = f"The farm has {a} {animal}s and gets {b} more. How many?", f"{a + b} {animal}s."
        elif kind == 1:
            q, ans = f"What does the {color} {animal} say?", f"The {color} {animal} says {_SOUNDS[animal]}."
        else:
            q, ans = f"{a} {animal}s leave a barn of {a + b}. How many stay?", f"{b} {animal}s stay."
        if q in seen:
            continue
        seen.add(q)
        if len(out) % 5 == 4:
            out.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]})
        else:
            out.append({"instruction": "Answer the farm question.", "input": q, "output": ans})
    return out


def write_demo_pool(folder: Path, n: int = DEMO_SAMPLES, seed: int = 0) -> Path:
    """Write (once) `folder/pool.jsonl` with the demo samples; returns its path."""
    path = Path(folder) / "pool.jsonl"
    text = "".join(json.dumps(s, sort_keys=True) + "\n" for s in demo_samples(n, seed))
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path
