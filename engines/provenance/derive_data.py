"""Claims about the training data: its path, files, sha256, sample counts, schema, input
dimensionality, target fields and split, recomputed from the data where that is cheap and
torch-free (npz headers, capture frames, the data pool's lines), else from run.json as the
trainer recorded it (said so in `how`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainledger.engines.provenance.derive_files import Source, Unprovable, count, rel
from trainledger.engines.provenance.model import Claim, Evidence
from trainledger.engines.safeio import read_regular

N_OPS = 3**9  # the ternary VAE's generated data: every operation of 9 trits once
SESSION_LIMIT = 1 << 30
VOCAB_LOAD_LIMIT = 1 << 30
LVM_KEYS = ("context_vectors", "target_vectors", "doc_ids", "positions")


def _recorded(src: Source) -> dict[str, Any]:
    data = src.run.get("data")
    return data if isinstance(data, dict) else {}


def data_location(src: Source) -> Path:
    """The training data's path: run.json `data.path` (else config.data_path), or the version's."""
    for value in (_recorded(src).get("path"), src.config.get("data_path")):
        if isinstance(value, str) and value:
            return Path(value)
    version = src.subject.version
    if version is not None and version.dataset_path:
        return Path(version.dataset_path)
    if _recorded(src).get("generated"):
        raise Unprovable(f"the data was generated in memory ({_recorded(src)['generated']}), not read from a path")
    raise Unprovable("run.json records no data path")


def data_evidence(src: Source, how: str) -> Evidence:
    path = data_location(src)
    if not path.exists():
        raise Unprovable(f"the training data {rel(src.ws, path)} is gone")
    return src.evidence(path, how)


def data_path(src: Source, key: str) -> Claim:
    path = data_location(src)
    evs = [src.run_evidence("run.json data.path")] if src.run else []
    if path.exists():
        evs.append(src.evidence(path, "the data itself, hashed now"))
    if not evs:
        raise Unprovable(f"{src.subject.label}: nothing records the data path")
    return Claim(key, str(path), tuple(evs), label="training data path")


def _data_files(src: Source, path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if src.subject.kind == "san":
        return sorted(p for p in path.glob("*.jsonl") if p.is_file())  # read_sessions' files
    if src.subject.kind in ("lm-base", "lora-lm"):
        return sorted(p for p in path.rglob("*.jsonl") if p.is_file())  # datapool.pool_files
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def data_files(src: Source, key: str) -> Claim:
    ev = data_evidence(src, "")
    files = _data_files(src, data_location(src))
    what = "*.jsonl session files" if src.subject.kind == "san" else "data files"
    return Claim(key, len(files), (Evidence(ev.path, ev.sha256, f"{what} counted in the data now"),),
                 label="data files")  # fmt: skip


def generated_ops_sha() -> str:
    """sha256 of the ternary VAE's data as run.json describes it: all 3^9 operations, row i
    spelling i in base 3 (most significant trit first) as -1/0/1, a C-order int64 array."""
    import hashlib

    import numpy as np

    index = np.arange(N_OPS, dtype=np.int64)[:, None]
    ops = (index // 3 ** np.arange(8, -1, -1, dtype=np.int64)) % 3 - 1
    return hashlib.sha256(np.ascontiguousarray(ops, dtype=np.int64).tobytes()).hexdigest()


def data_sha256(src: Source, key: str) -> Claim:
    recorded = _recorded(src).get("sha256")
    version = src.subject.version
    if not isinstance(recorded, str) and version is not None:
        recorded = version.dataset_sha256
    if not isinstance(recorded, str):
        raise Unprovable("run.json records no data sha256")
    if _recorded(src).get("generated") == "all 3^9 operations":
        now = generated_ops_sha()
        if now != recorded:
            raise Unprovable(f"run.json records {recorded[:12]}… but all 3^9 operations hash {now[:12]}…")
        return Claim(key, recorded, (src.run_evidence("run.json data.sha256; regenerated all 3^9 operations"
                                                      " (int64, C order) and hashed: the same"),),
                     label="data sha256")  # fmt: skip
    ev = data_evidence(src, "sha256 of the data now (a folder: sha256_tree), equal to run.json's data.sha256")
    if ev.sha256 != recorded:
        raise Unprovable(f"the data changed since training: recorded {recorded[:12]}…, now {str(ev.sha256)[:12]}…")
    evs = [ev, src.run_evidence("run.json data.sha256")] if src.run else [ev]
    return Claim(key, recorded, tuple(evs), label="data sha256")


# ------------------------------------------------------------------ counting the data


def _san_frames(src: Source) -> dict[str, Any]:
    """Accepted capture frames counted now (schema check of every line, as the trainer does)."""
    from trainledger.engines.capture.schema import FrameError, decode_frame

    def make() -> dict[str, Any]:
        accepted = rejected = 0
        schemas: set[int] = set()
        dims: set[int] = set()
        for file in _data_files(src, data_location(src)):
            try:
                data = read_regular(file, SESSION_LIMIT)
            except OSError as exc:
                raise Unprovable(f"{rel(src.ws, file)}: cannot be read ({exc.strerror or exc})") from None
            for line in data.splitlines():
                if not line.strip():
                    continue
                try:
                    frame = decode_frame(line)
                except FrameError:
                    rejected += 1
                    continue
                accepted += 1
                schemas.add(int(frame.schema_version))
                dims.add(len(frame.input))
        return {"accepted": accepted, "rejected": rejected, "schemas": schemas, "dims": dims}

    return src.cached("san_frames", make)


def _npz(src: Source) -> dict[str, tuple[tuple[int, ...], str]]:
    from trainledger.engines.provenance.derive_files import npz_shapes

    path = data_location(src)
    if path.suffix != ".npz":
        raise Unprovable(f"{rel(src.ws, path)} is not an .npz")
    return src.cached("npz", lambda: npz_shapes(path))


def _vocab_rows(src: Source) -> int:
    """Feature vectors the vocab trainer keeps: rows that are not all zero (it drops those)."""
    import numpy as np

    path = data_location(src)
    if path.stat().st_size > VOCAB_LOAD_LIMIT:
        raise Unprovable(f"{rel(src.ws, path)} is too large to recount here")
    from trainledger.engines.safeio import open_regular_file

    with open_regular_file(path) as fh:
        loaded = np.load(fh, allow_pickle=False)
        features = loaded["features"] if path.suffix == ".npz" else loaded
        if features.ndim != 2:
            raise Unprovable(f"{rel(src.ws, path)}: features are not a 2-D array")
        return int(np.count_nonzero(np.any(features != 0, axis=1)))


def samples(src: Source, key: str) -> Claim:
    """The accepted samples (train + val), recounted from the data now."""
    kind = src.subject.kind or ""
    if _recorded(src).get("generated") == "all 3^9 operations":
        return Claim(key, N_OPS, (src.run_evidence("all 3^9 operations, generated (run.json data.generated)"),),
                     label="accepted samples")  # fmt: skip
    if kind == "san":
        n, how = _san_frames(src)["accepted"], "capture frames that pass the schema v2 check, counted now"
    elif kind.startswith("lvm-"):
        shapes = _npz(src)
        if "doc_ids" not in shapes:
            raise Unprovable("the .npz has no doc_ids")
        n, how = shapes["doc_ids"][0][0], "rows of doc_ids in the .npz header"
    elif kind == "vocab":
        n, how = _vocab_rows(src), "feature vectors that are not all zero (np.load, allow_pickle=False)"
    elif kind in ("lm-base", "lora-lm"):
        from trainledger.engines.training.datapool import read_pool

        n, how = len(read_pool(data_location(src)).samples), "data pool lines that pass validation (datapool.read_pool)"
    else:
        raise Unprovable(f"no way to count {kind or 'this kind'}'s samples from its data")
    return Claim(key, int(n), (data_evidence(src, how),), label="accepted samples")


def split_samples(src: Source, key: str) -> Claim:
    name = "n_train" if key == "train_samples" else "n_val"
    value = count(src.config.get(name))
    if value is None:
        version = src.subject.version
        if key == "train_samples" and version is not None and version.training_samples is not None:
            return Claim(key, int(version.training_samples),
                         (Evidence("registry/registry.db", None, "versions.training_samples, recorded at deploy"),),
                         label="training samples")  # fmt: skip
        raise Unprovable(f"run.json config records no {name}")
    how = f"run.json config.{name} as the trainer recorded it"
    evs = [src.run_evidence(how)]
    other = count(src.config.get("n_val" if name == "n_train" else "n_train"))
    try:
        total = samples(src, "samples")
    except (Unprovable, OSError, ValueError):
        total = None
    if total is not None and other is not None:
        if total.value != value + other:
            raise Unprovable(f"run.json says n_train + n_val = {value + other}, the data now holds {total.value}")
        ev = total.evidence[0]
        if ev.path != evs[0].path:
            evs.append(Evidence(ev.path, ev.sha256, f"n_train + n_val = {total.value}: {ev.how}"))
    label = "training samples" if key == "train_samples" else "validation samples"
    return Claim(key, value, tuple(evs), label=label)


def schema_version(src: Source, key: str) -> Claim:
    if src.subject.kind != "san":
        raise Unprovable(f"not applicable to {src.subject.kind}: only capture data has a schema version")
    frames = _san_frames(src)
    if len(frames["schemas"]) != 1:
        raise Unprovable(f"the data's accepted frames carry schema versions {sorted(frames['schemas'])}")
    (value,) = frames["schemas"]
    ev = data_evidence(src, f"schema_version of all {frames['accepted']} accepted frames")
    return Claim(key, value, (ev, src.run_evidence("run.json config.schema_version")), label="schema version")


def input_dims(src: Source, key: str) -> Claim:
    kind = src.subject.kind or ""
    if kind == "san":
        frames = _san_frames(src)
        if len(frames["dims"]) != 1:
            raise Unprovable(f"the accepted frames have input lengths {sorted(frames['dims'])}")
        (value,) = frames["dims"]
        return Claim(key, value, (data_evidence(src, "length of `input` in every accepted frame"),),
                     label="input dimensionality")  # fmt: skip
    if kind.startswith("lvm-") or kind == "vocab":
        name = "context_vectors" if kind.startswith("lvm-") else "features"
        path = data_location(src)
        if kind == "vocab" and path.suffix == ".npy":
            import numpy as np

            from trainledger.engines.safeio import open_regular_file

            with open_regular_file(path) as fh:
                version = np.lib.format.read_magic(fh)
                fmt = np.lib.format
                reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape = reader(fh)[0]
        else:
            shapes = _npz(src)
            if name not in shapes:
                raise Unprovable(f"the .npz has no {name}")
            shape = shapes[name][0]
        return Claim(key, int(shape[-1]), (data_evidence(src, f"last dimension of {name} in the array header"),),
                     label="input dimensionality")  # fmt: skip
    shape = _recorded(src).get("shape")
    if kind == "ternary-vae" and isinstance(shape, list) and len(shape) == 2 and count(shape[1]) is not None:
        return Claim(key, int(shape[1]), (src.run_evidence("run.json data.shape[1]: trits per operation"),),
                     label="input dimensionality")  # fmt: skip
    raise Unprovable(f"not applicable to {kind or 'this kind'}: its input is byte tokens, not vectors")


def target_fields(src: Source, key: str) -> Claim:
    kind = src.subject.kind or ""
    if kind == "san":
        targets = src.config.get("targets")
        if not isinstance(targets, dict) or not targets:
            raise Unprovable("run.json config records no targets")
        return Claim(key, sorted(targets), (src.run_evidence("run.json config.targets: the heads trained"),),
                     label="target fields")  # fmt: skip
    if kind.startswith("lvm-"):
        shapes = _npz(src)
        if "target_vectors" not in shapes:
            raise Unprovable("the .npz has no target_vectors")
        return Claim(key, ["target_vectors"], (data_evidence(src, "the .npz's target array"),), label="target fields")
    raise Unprovable(f"not applicable to {kind or 'this kind'}: it has no target fields")


def split_method(src: Source, key: str) -> Claim:
    split = src.config.get("split")
    if src.subject.kind in ("lm-base", "lora-lm") and not split:
        from trainledger.engines.training.datapool import VAL_FRACTION, read_pool, split_samples

        train, val = split_samples(read_pool(data_location(src)).samples)
        text = f"deterministic: a sample is in val when the sha256 of its text hashes below {VAL_FRACTION:g}"
        ev = data_evidence(src, f"datapool.split_samples on the pool now: {len(train)} train, {len(val)} val")
        return Claim(key, text, (ev,), label="split method")
    if not isinstance(split, str) or not split:
        raise Unprovable("run.json config records no split method")
    return Claim(key, split, (src.run_evidence("run.json config.split, as the trainer recorded it"),),
                 label="split method")  # fmt: skip
