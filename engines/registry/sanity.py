"""The checks a candidate passes before it is registered, on its files alone (no torch).

Seed 004's sanity check: the files exist, their sizes are reasonable (1 MB to 2 GB for LoRA
adapters), their format is one of `.safetensors` / `.npz`. Here also: the bytes match the
sha256 their checkpoint sidecar claims, every tensor parses and is finite, and a SAN pair
loads with the app's own loader. The 1 MB floor is seed 004's, for its adapter folders
(`--kind lora-adapters`); trainledger's own models, its tiny lora-lm adapters included, are
often well under 1 MB, so every other kind has a 1 KB floor. Checks never raise: a bad file
is a failed check with what was seen.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from trainledger.engines.registry.types import Candidate, Check
from trainledger.engines.safeio import open_regular_file

KB, MB, GB = 1 << 10, 1 << 20, 1 << 30
SIZE_RANGES: dict[str, tuple[int, int]] = {"lora-adapters": (1 * MB, 2 * GB)}
DEFAULT_RANGE = (1 * KB, 2 * GB)
WEIGHT_SUFFIXES = (".safetensors", ".npz")
SAN_PAIR = ("san_weights.bin", "san_manifest.json")
FINITE_CHECK_LIMIT = 256 * MB  # larger files have their header checked, not every value
HEADER_LIMIT = 100 * MB  # safetensors' own cap on a header


def _is_weights(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(WEIGHT_SUFFIXES) or base == SAN_PAIR[0]


def _allowed(name: str) -> bool:
    return _is_weights(name) or name.endswith(".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open_regular_file(path) as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _safetensors(path: Path, size: int) -> str | None:
    """None when the file parses and (up to FINITE_CHECK_LIMIT) every value is finite."""
    import numpy as np

    with open_regular_file(path) as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        n = int.from_bytes(head, "little")
        if n > min(HEADER_LIMIT, size - 8):
            return f"header length {n} does not fit the file"
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return "header is not JSON"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    if size > FINITE_CHECK_LIMIT:
        return None
    from safetensors.numpy import load

    try:
        with open_regular_file(path) as fh:
            tensors = load(fh.read())
    except Exception as exc:  # noqa: BLE001 - any parse failure is the finding
        return f"does not parse ({type(exc).__name__}: {exc})"
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            return f"tensor {name!r} holds NaN or infinity"
    return None


def _npz(path: Path) -> str | None:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            for name in z.files:
                arr = z[name]
                if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                    return f"array {name!r} holds NaN or infinity"
    except Exception as exc:  # noqa: BLE001
        return f"does not open as npz ({type(exc).__name__}: {exc})"
    return None


def _san(bin_path: Path, manifest: Path) -> str | None:
    from trainledger.engines.san.weights import load_weights

    with open_regular_file(bin_path) as b, open_regular_file(manifest) as m:
        code = load_weights(b.read(), m.read())  # never raises: the count, or -1 ... -4
    return None if code > 0 else f"the app's loader returns {code}"


def file_checks(candidate: Candidate) -> list[Check]:
    checks: list[Check] = []
    sizes: dict[str, int] = {}
    missing = []
    for f in candidate.files:
        try:
            with open_regular_file(f.path) as fh:
                sizes[f.name] = os.fstat(fh.fileno()).st_size
        except OSError as exc:
            missing.append(f"{f.name}: {exc.strerror or exc}")
    checks.append(Check("files", not missing, "; ".join(missing) or f"{len(sizes)} regular file(s)"))
    if missing:
        return checks
    names = [f.name for f in candidate.files]
    odd = [n for n in names if not _allowed(n)]
    weights = [n for n in names if _is_weights(n)]
    san_bin = [n for n in names if n.rsplit("/", 1)[-1] == SAN_PAIR[0]]
    if odd:
        checks.append(Check("format", False, "not .safetensors, .npz, the SAN pair or .json: " + ", ".join(odd)))
    elif not weights:
        checks.append(Check("format", False, "no weights file (.safetensors, .npz or san_weights.bin)"))
    else:
        checks.append(Check("format", True, ", ".join(sorted({n.rsplit('.', 1)[-1] for n in weights}))))
    total = sum(sizes[n] for n in weights)
    lo, hi = SIZE_RANGES.get(candidate.kind or "", DEFAULT_RANGE)
    checks.append(Check("size", lo <= total <= hi, f"{total:,} bytes of weights; allowed {lo:,} to {hi:,}"))
    claimed = [f for f in candidate.files if f.sha256]
    if claimed:
        bad = []
        for f in claimed:
            try:
                if _sha256(f.path) != f.sha256:
                    bad.append(f.name)
            except OSError as exc:
                bad.append(f"{f.name} ({exc.strerror or exc})")
        checks.append(Check("sha256", not bad, f"differs from its sidecar: {', '.join(bad)}" if bad
                            else f"{len(claimed)} file(s) match their sidecar"))  # fmt: skip
    problems = []
    by_name = {f.name: f.path for f in candidate.files}
    for f in candidate.files:
        try:
            if f.name.endswith(".safetensors"):
                why = _safetensors(f.path, sizes[f.name])
            elif f.name.endswith(".npz"):
                why = _npz(f.path)
            else:
                continue
        except OSError as exc:
            why = exc.strerror or str(exc)
        if why:
            problems.append(f"{f.name}: {why}")
    for b in san_bin:
        manifest = b[: -len(SAN_PAIR[0])] + SAN_PAIR[1]
        why = "no san_manifest.json beside it" if manifest not in by_name else _san(by_name[b], by_name[manifest])
        if why:
            problems.append(f"{b}: {why}")
    if weights:
        checks.append(Check("weights", not problems, "; ".join(problems) or "every tensor parses and is finite"))
    return checks
