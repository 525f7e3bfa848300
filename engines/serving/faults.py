"""`--fault VERSION:error=0.3,latency_ms=200`: injected failures, a testing and demo aid.

A fault makes the named version's answers fail (HTTP 500) with probability `error` and
adds `latency_ms` before each answer, so a canary's analysis has something to catch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainledger.engines.workspace import InvalidId, validate_id


@dataclass(frozen=True)
class Fault:
    error: float = 0.0  # fraction of answers that fail, 0..1
    latency_ms: float = 0.0  # added before each answer

    def to_dict(self) -> dict[str, float]:
        return {"error": self.error, "latency_ms": self.latency_ms}


def parse_fault(text: str) -> tuple[str, Fault]:
    """("v3", Fault(0.3, 200.0)) from "v3:error=0.3,latency_ms=200"; ValueError naming what is wrong."""
    version, sep, spec = text.partition(":")
    if not sep or not version or not spec:
        raise ValueError(f"a fault is VERSION:error=F,latency_ms=MS, not {text!r}")
    try:
        validate_id(version, "version")
    except InvalidId as exc:
        raise ValueError(str(exc)) from None
    values = {"error": 0.0, "latency_ms": 0.0}
    for part in spec.split(","):
        key, eq, raw = part.partition("=")
        key = key.strip()
        if not eq or key not in values:
            raise ValueError(f"fault {text!r}: {part!r} is not error=F or latency_ms=MS")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"fault {text!r}: {key} must be a number, not {raw!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"fault {text!r}: {key} must be a finite number >= 0")
        values[key] = value
    if values["error"] > 1:
        raise ValueError(f"fault {text!r}: error is a fraction from 0 to 1")
    if values["latency_ms"] > 60_000:
        raise ValueError(f"fault {text!r}: latency_ms is at most 60000")
    return version, Fault(values["error"], values["latency_ms"])
