"""Which version answers a request: the sticky, deterministic canary split.

A request with a key (header `X-Request-Key` or a `key` field) lands in bucket
`sha256(model NUL salt NUL key) mod 10,000`; it goes to the canary when the bucket is below
traffic x 100. The salt is fixed for one canary (its version and the time it first took
traffic), so raising the % only adds buckets: a key already on the canary stays there, and a
new canary reshuffles who is first. A request without a key takes the next number n of a
counter and bucket `n x 7919 mod 10,000` (7919 is prime to 10,000, so every 10,000 keyless
requests visit each bucket once: exactly traffic % of them go to the canary, spread evenly).

The Route is immutable and replaced whole on a swap, so a request that picked a version keeps
it to the end while the next one sees the new route.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

BUCKETS = 10_000
STRIDE = 7919


def key_bucket(model: str, salt: str, key: str) -> int:
    digest = hashlib.sha256(f"{model}\0{salt}\0{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def sequence_bucket(n: int) -> int:
    return (n * STRIDE) % BUCKETS


def on_canary(bucket: int, traffic: int) -> bool:
    return bucket < traffic * (BUCKETS // 100)


@dataclass(frozen=True)
class Loaded:
    """One version in memory, ready to answer: what was loaded and when."""

    version: str
    checksum: str
    predictor: Any
    loaded_at: float
    artifacts: tuple[dict[str, Any], ...] = ()  # name, sha256, path (the blob file)
    run_id: str | None = None
    kind: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.checksum, "artifacts": list(self.artifacts),
                "parameters": int(getattr(self.predictor, "parameters", 0)), "loaded_at": self.loaded_at,
                "run_id": self.run_id, "kind": self.kind}  # fmt: skip


@dataclass(frozen=True)
class Route:
    model: str
    active: Loaded | None = None
    canary: Loaded | None = None
    traffic: int = 0
    salt: str = ""
    _counter: Any = field(default_factory=itertools.count, compare=False, repr=False)

    def pick(self, key: str | None) -> Loaded | None:
        """The version that answers a request with `key` (None: the next in the sequence)."""
        if self.canary is None or self.traffic <= 0:
            return self.active
        bucket = sequence_bucket(next(self._counter)) if key is None else key_bucket(self.model, self.salt, key)
        return self.canary if on_canary(bucket, self.traffic) or self.active is None else self.active
