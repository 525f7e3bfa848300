"""The checks a candidate passes before it is registered, on its files alone (no torch).

Seed 004's sanity check: the files exist, their sizes are reasonable (1 MB to 2 GB for LoRA
adapters), their format is one of `.safetensors` / `.npz`. Here also: the bytes match the
sha256 their checkpoint sidecar claims, every tensor parses and is finite, and a SAN pair
loads with the app's own loader.

Size ranges: seed 004's 1 MB floor is for its adapter folders, so it applies to kind
`lora-adapters` and to a folder candidate of no stated kind that is, or holds, an
`adapters/` folder (seed 004's `vX.Y.Z/adapters/` layout). trainledger's own models are tiny (an lvm-gru checkpoint is a
few KB; a lora-lm run's adapter checkpoint about 18 KB), so every other kind, lora-lm runs
included, has a 1 KB to 2 GB range. The console imports this module (the demo seeder
runs it), so nothing here imports torch. Checks never raise: a bad file is a failed check
with what was seen.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from trainledger.engines.registry.types import Candidate, Check
from trainledger.engines.safeio import open_regular_file

KB, MB, GB = 1 << 10, 1 << 20, 1 << 30
ADAPTERS_KIND = "lora-adapters"
SIZE_RANGES: dict[str, tuple[int, int]] = {ADAPTERS_KIND: (1 * MB, 2 * GB)}
DEFAULT_RANGE = (1 * KB, 2 * GB)
WEIGHT_SUFFIXES = (".safetensors", ".npz")
SAN_PAIR = ("san_weights.bin", "san_manifest.json")
FINITE_CHECK_LIMIT = 256 * MB  # larger files have their header checked, not every value
HEADER_LIMIT = 100 * MB  # safetensors' own cap on a header
SAN_LIMIT = 2 * GB


def _is_weights(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(WEIGHT_SUFFIXES) or base == SAN_PAIR[0]


def _allowed(name: str) -> bool:
    return _is_weights(name) or name.endswith(".json")


def _adapters_folder(candidate: Candidate) -> bool:
    """A folder named `adapters`, or one holding an `adapters/` folder (seed 004's layout)."""
    return Path(candidate.source).name == "adapters" or any(
        "adapters" in f.name.split("/")[:-1] for f in candidate.files
    )


def size_range(candidate: Candidate) -> tuple[int, int, str]:
    """(lowest, highest, which range) for the candidate's total bytes of weights."""
    kind = candidate.kind or ""
    if kind in SIZE_RANGES:
        return (*SIZE_RANGES[kind], f"the range for {kind}")
    if not kind and candidate.run_id is None and _adapters_folder(candidate):
        return (*SIZE_RANGES.get(ADAPTERS_KIND, DEFAULT_RANGE), "seed 004's range for an adapters folder")
    return (*DEFAULT_RANGE, "the default range")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open_regular_file(path) as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _non_finite(dtype: str, data: bytes | bytearray | memoryview) -> bool | None:
    """Whether raw little-endian values of a safetensors dtype hold NaN or infinity; None when
    the dtype is not a float (integers and bools are always finite)."""
    import numpy as np

    if dtype in ("F64", "F32", "F16"):
        values = np.frombuffer(data, dtype={"F64": "<f8", "F32": "<f4", "F16": "<f2"}[dtype])
        return not bool(np.isfinite(values).all())
    if dtype == "BF16":  # the top half of a float32
        values = (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        return not bool(np.isfinite(values).all())
    if dtype == "F8_E5M2":  # exponent all ones: infinity or NaN
        return bool((np.frombuffer(data, dtype=np.uint8) & 0x7C == 0x7C).any())
    if dtype == "F8_E4M3":  # no infinity; NaN is S.1111.111
        return bool((np.frombuffer(data, dtype=np.uint8) & 0x7F == 0x7F).any())
    return None


_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E5M2": 1, "F8_E4M3": 1, "I64": 8, "I32": 4,
             "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}  # fmt: skip


def _layout_problem(header: dict[str, object], body: int) -> str | None:
    """What is wrong with a header's tensor table against a data section of `body` bytes:
    every entry a known dtype, a shape whose size fits its offsets, the tensors tiling the
    data section without gaps or overlaps (as safetensors itself requires)."""
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            return f"tensor {name!r}: not an object"
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _ITEMSIZE:
            return f"tensor {name!r}: unknown dtype {dtype!r}"
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            return f"tensor {name!r}: bad shape"
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):  # fmt: skip
            return f"tensor {name!r}: bad data_offsets"
        begin, end = offsets
        count = 1
        for d in shape:
            count *= d
        if not 0 <= begin <= end <= body or end - begin != count * _ITEMSIZE[str(dtype)]:
            return f"tensor {name!r}: offsets {offsets} do not fit its shape or the file"
        spans.append((begin, end, name, str(dtype)))
    spans.sort()
    at = 0
    for begin, end, name, _ in spans:
        if begin != at:
            return f"tensor {name!r}: a gap or an overlap at byte {at}"
        at = end
    if at != body:
        return f"{body - at} bytes after the last tensor"
    return None


def _safetensors(path: Path, size: int) -> str | None:
    """None when the file parses and (up to FINITE_CHECK_LIMIT) every value is finite.

    The header (8-byte little-endian length, then JSON) is read within bounds and its tensor
    table checked against the file; the values are then read through a read-only mmap (no
    copy: a 200 MB file costs one pass of isfinite, not a second copy of it), each float
    tensor checked, bf16 and fp8 included (safetensors.numpy cannot hold those)."""
    import mmap

    with open_regular_file(path) as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        n = int.from_bytes(head, "little")
        if n > min(HEADER_LIMIT, size - 8):
            return f"header length {n} does not fit the file"
        try:
            header = json.loads(fh.read(n))
        except (ValueError, RecursionError):
            return "header is not JSON"
        if not isinstance(header, dict):
            return "header is not a JSON object"
        problem = _layout_problem(header, size - 8 - n)
        if problem or size > FINITE_CHECK_LIMIT or size - 8 - n == 0:
            return problem
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                base = 8 + n
                for name, info in header.items():
                    if name == "__metadata__":
                        continue
                    begin, end = info["data_offsets"]
                    if _non_finite(info["dtype"], view[base + begin : base + end]):
                        return f"tensor {name!r} holds NaN or infinity"
            finally:
                view.release()
    return None


def _npz(path: Path) -> str | None:
    import numpy as np

    try:
        with open_regular_file(path) as fh, np.load(fh, allow_pickle=False) as z:
            for name in z.files:
                arr = z[name]
                if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                    return f"array {name!r} holds NaN or infinity"
    except Exception as exc:  # noqa: BLE001
        return f"does not open as npz ({type(exc).__name__}: {exc})"
    return None


def _san(bin_path: Path, manifest: Path) -> str | None:
    from trainledger.engines.safeio import read_regular
    from trainledger.engines.san.weights import describe, load_weights

    code = load_weights(read_regular(bin_path, SAN_LIMIT), read_regular(manifest, HEADER_LIMIT))  # never raises
    return None if code > 0 else f"the app's loader says {describe(code)}"


def _weights_problem(path: Path, name: str, size: int) -> str | None:
    try:
        if name.endswith(".safetensors"):
            return _safetensors(path, size)
        if name.endswith(".npz"):
            return _npz(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    except Exception as exc:  # noqa: BLE001 - never raise: the failure is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def file_checks(candidate: Candidate) -> list[Check]:
    """files, format, size, sha256 (when a sidecar claims one) and weights, in that order;
    after a failed `files` check only that one. Never raises."""
    checks: list[Check] = []
    sizes: dict[str, int] = {}
    missing = []
    for f in candidate.files:
        try:
            with open_regular_file(f.path) as fh:
                sizes[f.name] = os.fstat(fh.fileno()).st_size
        except OSError as exc:  # a FIFO, a folder, a device: refused at once (safeio)
            missing.append(f"{f.name}: {exc.strerror or exc}")
    if not candidate.files:
        missing.append("no files")
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
        checks.append(Check("format", True, ", ".join(sorted({n.rsplit(".", 1)[-1] for n in weights}))))
    total = sum(sizes[n] for n in weights)
    lo, hi, which = size_range(candidate)
    checks.append(Check("size", lo <= total <= hi, f"{total:,} bytes of weights; {which} is {lo:,} to {hi:,}"))
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
        if why := _weights_problem(f.path, f.name, sizes[f.name]):
            problems.append(f"{f.name}: {why}")
    for b in san_bin:
        manifest = b[: -len(SAN_PAIR[0])] + SAN_PAIR[1]
        try:
            why = "no san_manifest.json beside it" if manifest not in by_name else _san(by_name[b], by_name[manifest])
        except Exception as exc:  # noqa: BLE001 - unreadable meanwhile, too large: the finding
            why = f"{type(exc).__name__}: {exc}"
        if why:
            problems.append(f"{b}: {why}")
    if weights:
        checks.append(Check("weights", not problems, "; ".join(problems) or "every tensor parses and is finite"))
    return checks
