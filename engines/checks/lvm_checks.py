"""lvm_dataset: an LVM run's .npz checked against seed 003's rules, without unpickling anything.

Which file: `options["data"]`, else run.json `task_options.data`, else `config.data_path`
(the demo dataset the trainer generated), else a version's `dataset_path`.

1. Keys and shapes, as engines/training/lvm.py trains on them: `context_vectors` [N,5,D],
   `target_vectors` [N,D], `doc_ids` [N] and `positions` [N] (integers), N > 0, numeric.
   Shapes and dtypes come from each member's .npy header, so the vectors are never loaded.
   A member whose dtype holds Python objects (a pickle) is refused, never loaded; the two
   index arrays are loaded with `np.load(allow_pickle=False)`.
2. Sequential coherence: within each doc id, rows in file order must have consecutive
   positions (each one more than the previous row of that document). The first offending
   row is reported with its document, position and the expected position.
3. The declared data source must not be taxonomic (seed 003: WordNet, SWO/GO, DBpedia
   ontology chains, FactoidWiki; anything naming an ontology or a taxonomy). The source is
   read from an npz string key `dataset_source` (or `data_source`, `source`) and from
   run.json `data.source` / `data.dataset_source` / `config.dataset_source`. An undeclared
   source is said in the reason, not failed.

Figure: {"examples": N, "incoherent_rows": k}.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trainledger.engines.checks.base import CheckContext, CheckResult, check
from trainledger.engines.checks.files import evidence, user_path
from trainledger.engines.safeio import open_regular_file

NAME = "lvm_dataset"
CONTEXT = 5  # engines/training/lvm.CONTEXT (spelled here: that module imports torch)
KEYS = ("context_vectors", "target_vectors", "doc_ids", "positions")
SOURCE_KEYS = ("dataset_source", "data_source", "source")
INDEX_LIMIT = 256 << 20  # bytes of one index array (doc_ids, positions) that may be loaded
SOURCE_LIMIT = 1 << 20
TAXONOMIC = frozenset({"wordnet", "swo", "go", "factoidwiki", "ontology", "ontologies", "ontological",
                       "taxonomy", "taxonomies", "taxonomic"})  # fmt: skip


class Refused(ValueError):
    pass


def data_path(ctx: CheckContext) -> Path | None:
    run, opts = ctx.subject.run, ctx.options
    recorded = run.get("data") if isinstance(run.get("data"), dict) else {}
    text = (opts.get("data") or recorded.get("path") or (run.get("task_options") or {}).get("data")
            or (run.get("config") or {}).get("data_path"))  # fmt: skip
    if not text and ctx.subject.version is not None:
        text = ctx.subject.version.dataset_path
    return user_path(ctx.ws, str(text)) if text else None


def taxonomic(source: str) -> bool:
    return bool(TAXONOMIC & set(re.findall(r"[a-z0-9]+", source.lower())))


def headers(zf: zipfile.ZipFile) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{key: (shape, dtype)} from each .npy member's header (no data read)."""
    out = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        with zf.open(info) as member:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(member)
        out[info.filename[:-4]] = (tuple(shape), dtype)
    return out


def load_member(fh: Any, zf: zipfile.ZipFile, key: str, limit: int) -> np.ndarray:
    if zf.getinfo(f"{key}.npy").file_size > limit:
        raise Refused(f"key {key!r} is over the {limit}-byte limit this check loads")
    fh.seek(0)
    with np.load(fh, allow_pickle=False) as npz:
        return np.asarray(npz[key])


def shape_problem(hdr: dict[str, tuple[tuple[int, ...], np.dtype]]) -> str | None:
    missing = [k for k in KEYS if k not in hdr]
    if missing:
        return f"missing key {missing[0]!r} (has: {', '.join(sorted(hdr)) or 'none'})"
    (ctx_shape, ctx_dt), (tgt_shape, tgt_dt) = hdr["context_vectors"], hdr["target_vectors"]
    if len(ctx_shape) != 3 or ctx_shape[1] != CONTEXT:
        return f"key 'context_vectors' must be [N,{CONTEXT},D], got {list(ctx_shape)}"
    n, _, dim = ctx_shape
    if tgt_shape != (n, dim):
        return f"key 'target_vectors' must be [{n},{dim}], got {list(tgt_shape)}"
    for key in ("doc_ids", "positions"):
        shape, dt = hdr[key]
        if shape != (n,):
            return f"key {key!r} must be [{n}], got {list(shape)}"
        if dt.kind not in "iu":
            return f"key {key!r} must hold integers, not {dt}"
    for key, dt in (("context_vectors", ctx_dt), ("target_vectors", tgt_dt)):
        if dt.kind not in "fiu":
            return f"key {key!r} is not numeric (dtype {dt})"
    if n == 0:
        return "key 'context_vectors' holds no examples"
    return None


def first_incoherent(doc_ids: np.ndarray, positions: np.ndarray) -> tuple[int, dict[str, int] | None]:
    """(rows whose position is not the previous row of their document's + 1, the first of them)."""
    docs = doc_ids.astype(np.int64)
    pos = positions.astype(np.int64)
    order = np.argsort(docs, kind="stable")  # each document's rows, still in file order
    sd, sp = docs[order], pos[order]
    same = sd[1:] == sd[:-1]
    bad = np.flatnonzero(same & (sp[1:] != sp[:-1] + 1)) + 1
    if not len(bad):
        return 0, None
    rows = order[bad]
    k = int(np.argmin(rows))
    i = int(bad[k])
    return len(bad), {"row": int(rows[k]), "doc_id": int(sd[i]), "position": int(sp[i]), "expected": int(sp[i - 1] + 1)}


def declared_sources(ctx: CheckContext, fh: Any, zf: zipfile.ZipFile, hdr: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for key in SOURCE_KEYS:
        if key in hdr and hdr[key][1].kind in "US":
            values = load_member(fh, zf, key, SOURCE_LIMIT)
            for v in np.unique(values.reshape(-1))[:16]:
                found.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
    run = ctx.subject.run
    data, config = run.get("data") or {}, run.get("config") or {}
    for value in (data.get("source") if isinstance(data, dict) else None,
                  data.get("dataset_source") if isinstance(data, dict) else None,
                  config.get("dataset_source") if isinstance(config, dict) else None):  # fmt: skip
        if isinstance(value, str) and value:
            found.append(value)
    return list(dict.fromkeys(found))


@check(NAME, kinds=("lvm-*",))
def lvm_dataset(ctx: CheckContext) -> CheckResult | None:
    """An LVM .npz: seed 003's keys and shapes, consecutive positions per doc id, no taxonomic source."""
    path = data_path(ctx)
    if path is None:
        return CheckResult(NAME, None, None, "no data path recorded (run.json task_options.data / config.data_path)")
    ev = (evidence(ctx.ws, path),)

    def fail(reason: str, figure: Any = None, **details: Any) -> CheckResult:
        return CheckResult(NAME, False, figure, reason, {"data": ev[0], **details}, ev)

    try:
        fh = open_regular_file(path)
    except FileNotFoundError:
        return fail(f"{path.name}: no such file")
    except OSError as exc:
        return fail(f"{path.name}: {exc.strerror or exc}")
    with fh:
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError):
            return fail(f"{path.name}: not a .npz archive")
        with zf:
            try:
                hdr = headers(zf)
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
                return fail(f"{path.name}: a damaged .npy member ({type(exc).__name__})")
            pickled = sorted(k for k, (_, dt) in hdr.items() if dt.hasobject)
            if pickled:
                return fail(f"refused: pickled object array {pickled[0]!r} (never loaded)", refused=pickled)
            problem = shape_problem(hdr)
            if problem:
                return fail(f"{path.name}: {problem}", keys={k: list(s) for k, (s, _) in hdr.items()})
            try:
                doc_ids = load_member(fh, zf, "doc_ids", INDEX_LIMIT)
                positions = load_member(fh, zf, "positions", INDEX_LIMIT)
                sources = declared_sources(ctx, fh, zf, hdr)
            except (Refused, ValueError, OSError, zipfile.BadZipFile) as exc:
                return fail(f"{path.name}: {exc if isinstance(exc, Refused) else type(exc).__name__}")
    n, _, dim = hdr["context_vectors"][0]
    n_bad, first = first_incoherent(doc_ids, positions)
    figure = {"examples": int(n), "incoherent_rows": n_bad}
    details = {"data": ev[0], "examples": int(n), "dim": int(dim), "docs": int(len(np.unique(doc_ids))),
               "sources": sources, "first_incoherent": first}  # fmt: skip
    if first is not None:
        return CheckResult(NAME, False, figure, f"positions not consecutive: doc {first['doc_id']} at row "
                           f"{first['row']} has position {first['position']}, expected {first['expected']} "
                           f"({n_bad:,} such rows)", details, ev)  # fmt: skip
    bad_sources = [s for s in sources if taxonomic(s)]
    if bad_sources:
        return CheckResult(NAME, False, figure, f"taxonomic data source {bad_sources[0]!r} (seed 003: sequential "
                                                f"data only)", details, ev)  # fmt: skip
    said = f"source {', '.join(map(repr, sources))}" if sources else "no declared source"
    return CheckResult(NAME, True, figure, f"{n:,} examples of [{CONTEXT},{dim}] over {details['docs']:,} docs, "
                                           f"positions consecutive; {said}", details, ev)  # fmt: skip
