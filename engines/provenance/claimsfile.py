"""Hand-written claims for `trainledger verify --claims FILE`: a TOML file, read into Claims.

    subject = "r1"                      # optional: a run id or MODEL@VERSION (else the command line's)
    artifact = "saved_model.json"       # optional: the file field_share.* is measured in,
                                        # relative to this file's folder
    [claims]
    parameters = 164248
    "best.val/loss" = { value = 0.028, tol = 0.001 }
    optimizer = "adam"
    "field_share.audio_frames[].gesture_token" = 1.0

A value is a number, a string, or a table `{ value = ..., tol = ... }` (`tol`: an absolute
tolerance for a number; without it numbers compare with model.REL_TOL, relative). Keys come
from VOCABULARY or the PATTERNS (`best.<metric>`, `last.<metric>`, `field_share.<field>`); an
unknown key is kept (verify reports it unverified, "unknown claim key"), never dropped. A file
that cannot be read, bad TOML, or a value of the wrong type is a ClaimsFileError: one line that
names the file and the line or key (the CLI prints it and exits 2). The Claims returned carry
no evidence: verify.py recomputes each from the subject's files.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainledger.engines.provenance.model import Claim
from trainledger.engines.safeio import FileTooLarge, NotRegularFile, read_regular
from trainledger.engines.safetext import clean

CLAIMS_FILE_LIMIT = 1 << 20  # a claims file is a few lines; 1 MiB is generous

# the documented vocabulary (docs/formats.md, "Claims files"); derive.derive_key computes each
VOCABULARY: tuple[str, ...] = (
    "parameters", "train_samples", "val_samples", "data_files", "data_sha256", "schema_version",
    "input_dims", "optimizer", "lr", "epochs", "best_epoch", "deployed_epoch",
    "coverage.sampling", "coverage.hash", "tokens.active", "tokens.entropy_bits",
)  # fmt: skip
PATTERNS: tuple[str, ...] = ("best.", "last.", "field_share.")  # each followed by a non-empty name
TOP_LEVEL = ("subject", "artifact", "claims")
TABLE_KEYS = ("value", "tol")


class ClaimsFileError(ValueError):
    """The claims file cannot be used: one line for the user (exit 2)."""


@dataclass(frozen=True)
class ClaimsFile:
    path: Path
    subject: str | None  # the file's own `subject`, if it names one
    artifact: Path | None  # `artifact`, resolved against the file's folder
    claims: tuple[Claim, ...]  # in file order, no evidence


def known_key(key: str) -> bool:
    """Whether `key` is in the vocabulary or one of its patterns (with a name after the dot)."""
    if key in VOCABULARY:
        return True
    return any(key.startswith(p) and key[len(p) :].strip() != "" for p in PATTERNS)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _line_of(text: str, key: str) -> int | None:
    """Best effort: the line where `key` is written as a key (bare or quoted) in the file."""
    quoted = {re.escape(key), re.escape(f'"{key}"'), re.escape(f"'{key}'")}
    pattern = re.compile(rf"^\s*(?:claims\s*\.\s*)?(?:{'|'.join(sorted(quoted))})\s*[=.]")
    for n, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return n
    return None


def _where(path: Path, text: str, key: str) -> str:
    line = _line_of(text, key)
    return f"{path.name}:{line}: " if line else f"{path.name}: "


def _claim(path: Path, text: str, key: str, raw: Any) -> Claim:
    def bad(why: str) -> ClaimsFileError:
        return ClaimsFileError(f"{_where(path, text, key)}claim {clean(key)!r}: {why}")

    tol: float | None = None
    if isinstance(raw, dict):
        extra = sorted(set(raw) - set(TABLE_KEYS))
        if extra:
            raise bad(f"unknown field {clean(extra[0])!r} in its table (expected value and tol)")
        if "value" not in raw:
            raise bad("a table needs a value: { value = ..., tol = ... }")
        if "tol" in raw:
            t = raw["tol"]
            if not _number(t) or not math.isfinite(float(t)) or float(t) < 0:
                raise bad(f"tol must be a number >= 0, not {clean(repr(t))}")
            tol = float(t)
        raw = raw["value"]
        if tol is not None and not _number(raw):
            raise bad("tol applies to a number; this value is not one")
    if isinstance(raw, bool) or not (_number(raw) or isinstance(raw, str)):
        kind = "a boolean" if isinstance(raw, bool) else type(raw).__name__
        raise bad(f"a value must be a number, a string or {{ value = ..., tol = ... }}, not {kind}")
    if isinstance(raw, float) and math.isinf(raw):
        raise bad("a value must be finite")
    return Claim(key=key, value=raw, tol=tol)


def parse_claims(text: str, path: Path) -> ClaimsFile:
    """The claims in `text` (the contents of `path`, which names it in errors and anchors `artifact`)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClaimsFileError(f"{path.name}: bad TOML: {clean(exc)}") from None
    for key in doc:
        if key not in TOP_LEVEL:
            raise ClaimsFileError(
                f"{_where(path, text, key)}unknown top-level key {clean(key)!r} "
                f"(expected subject, artifact and a [claims] table)"
            )
    subject = doc.get("subject")
    if subject is not None and (not isinstance(subject, str) or not subject.strip()):
        raise ClaimsFileError(f"{_where(path, text, 'subject')}subject must be a run id or MODEL@VERSION string")
    artifact_raw = doc.get("artifact")
    artifact: Path | None = None
    if artifact_raw is not None:
        if not isinstance(artifact_raw, str) or not artifact_raw.strip() or "\0" in artifact_raw:
            raise ClaimsFileError(f"{_where(path, text, 'artifact')}artifact must be a path string")
        artifact = Path(artifact_raw).expanduser()
        if not artifact.is_absolute():
            artifact = path.resolve().parent / artifact
    table = doc.get("claims")
    if table is None:
        raise ClaimsFileError(f"{path.name}: no [claims] table")
    if not isinstance(table, dict):
        raise ClaimsFileError(f"{_where(path, text, 'claims')}claims must be a table: [claims]")
    if not table:
        raise ClaimsFileError(f"{path.name}: the [claims] table is empty")
    claims = tuple(_claim(path, text, key, raw) for key, raw in _flatten(table))
    return ClaimsFile(path=path, subject=subject.strip() if subject else None, artifact=artifact, claims=claims)


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted keys written bare (`best.val = 1` is TOML for {best = {val = 1}}) back to one key.

    A table whose keys are exactly value/tol (or a subset holding value) is a value, not a level."""
    out: list[tuple[str, Any]] = []
    for key, raw in table.items():
        full = f"{prefix}{key}"
        if isinstance(raw, dict) and raw and not ("value" in raw and set(raw) <= set(TABLE_KEYS)):
            if set(raw) & set(TABLE_KEYS):  # a value table with a typo'd field: report it as one
                out.append((full, raw))
            else:
                out.extend(_flatten(raw, f"{full}."))
        else:
            out.append((full, raw))
    return out


def load_claims(path: str | Path) -> ClaimsFile:
    """Read and parse a claims file: regular files only, at most CLAIMS_FILE_LIMIT bytes, UTF-8."""
    path = Path(path).expanduser()
    try:
        data = read_regular(path, CLAIMS_FILE_LIMIT)
    except FileNotFoundError:
        raise ClaimsFileError(f"claims file {clean(path)}: no such file") from None
    except (NotRegularFile, FileTooLarge) as exc:
        raise ClaimsFileError(f"claims file {clean(path)}: {clean(exc)}") from None
    except OSError as exc:
        raise ClaimsFileError(f"claims file {clean(path)}: cannot read ({clean(exc.strerror or exc)})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ClaimsFileError(f"{path.name}:{line}: not UTF-8 text") from None
    parsed = parse_claims(text, path)
    if parsed.artifact is not None and not parsed.artifact.is_file():
        what = "no such file" if not parsed.artifact.exists() else "not a regular file"
        raise ClaimsFileError(f"{_where(path, text, 'artifact')}artifact {clean(parsed.artifact)}: {what}")
    return parsed
