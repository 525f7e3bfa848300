"""Claims files (claimsfile.py): TOML read into Claims, every mistake one line naming the line or key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainledger.engines.provenance.claimsfile import (
    ClaimsFileError,
    known_key,
    load_claims,
    parse_claims,
)


def write(tmp_path: Path, text: str, name: str = "claims.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_file_reads_in_order_with_tables_and_unknown_keys_kept(tmp_path: Path) -> None:
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "model.json").write_text("{}")
    path = write(
        tmp_path,
        """
subject = "r1"
artifact = "art/model.json"

[claims]
parameters = 164248
"best.val/loss" = { value = 0.028, tol = 0.001 }
optimizer = "adam"
"field_share.audio_frames[].gesture_token" = 1.0
coverage.hash = 0.86
favourite_colour = "blue"
""",
    )
    cf = load_claims(path)
    assert cf.subject == "r1"
    assert cf.artifact == (tmp_path / "art" / "model.json").resolve()
    assert [c.key for c in cf.claims] == [
        "parameters", "best.val/loss", "optimizer", "field_share.audio_frames[].gesture_token", "coverage.hash",
        "favourite_colour",
    ]  # fmt: skip
    by = {c.key: c for c in cf.claims}
    assert by["parameters"].value == 164248 and isinstance(by["parameters"].value, int)
    assert by["parameters"].tol is None and by["parameters"].evidence == ()
    assert by["best.val/loss"].value == 0.028 and by["best.val/loss"].tol == 0.001
    assert by["optimizer"].value == "adam"
    assert by["coverage.hash"].value == 0.86  # a bare dotted key is the same key
    assert by["favourite_colour"].value == "blue"  # unknown: kept, for verify to report
    assert not known_key("favourite_colour")


def test_subject_and_artifact_are_optional(tmp_path: Path) -> None:
    cf = load_claims(write(tmp_path, "[claims]\nepochs = 2\n"))
    assert cf.subject is None and cf.artifact is None and cf.claims[0].key == "epochs"


def test_an_absolute_artifact_stays_absolute(tmp_path: Path) -> None:
    art = tmp_path / "elsewhere.jsonl"
    art.write_text("{}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    cf = load_claims(write(sub, f'artifact = "{art}"\n[claims]\n"field_share.x" = 0.5\n'))
    assert cf.artifact == art


@pytest.mark.parametrize(
    ("key", "known"),
    [("parameters", True), ("tokens.entropy_bits", True), ("best.val/loss", True), ("last.train/loss", True),
     ("field_share.a[].b", True), ("best.", False), ("field_share.", False), ("Parameters", False),
     ("coverage", False), ("bestval", False)],
)  # fmt: skip
def test_known_keys(key: str, known: bool) -> None:
    assert known_key(key) is known


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[claims]\nparameters = \n", "bad TOML"),
        ("[claims]\nparameters = 1\nparameters = 2\n", "bad TOML"),
        ("[claims]\n\nparameters = true\n", "claims.toml:3: claim 'parameters': a value must be a number"),
        ('[claims]\n"best.val/loss" = [1, 2]\n', "claims.toml:2: claim 'best.val/loss'"),
        ("[claims]\nlr = { value = 0.1, tol = -1 }\n", "tol must be a number >= 0"),
        ('[claims]\noptimizer = { value = "adam", tol = 0.1 }\n', "tol applies to a number"),
        ("[claims]\nlr = { tol = 0.1 }\n", "a table needs a value"),
        ("[claims]\nlr = { value = 0.1, tole = 0.1 }\n", "unknown field 'tole'"),
        ("[claims]\nlr = inf\n", "finite"),
        ("subject = 3\n[claims]\nlr = 0.1\n", "subject must be"),
        ("artifact = 3\n[claims]\nlr = 0.1\n", "artifact must be a path"),
        ("parameters = 5\n", "unknown top-level key 'parameters'"),
        ('subject = "r1"\n', "no [claims] table"),
        ("claims = 3\n", "claims must be a table"),
        ("[claims]\n", "is empty"),
    ],
)
def test_mistakes_are_one_line_naming_where(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ClaimsFileError) as info:
        load_claims(write(tmp_path, text))
    message = str(info.value)
    assert says in message and "\n" not in message
    assert message.startswith("claims.toml")


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ClaimsFileError, match=r"line 3"):
        parse_claims('[claims]\nepochs = 2\nlr = "unterminated\n', tmp_path / "c.toml")


def test_a_missing_artifact_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClaimsFileError, match=r"claims.toml:1: artifact .*nope.json: no such file"):
        load_claims(write(tmp_path, 'artifact = "nope.json"\n[claims]\n"field_share.x" = 1\n'))


def test_unreadable_files_are_refused_without_blocking(tmp_path: Path) -> None:
    with pytest.raises(ClaimsFileError, match="no such file"):
        load_claims(tmp_path / "absent.toml")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ClaimsFileError, match="FIFO"):
        load_claims(fifo)  # a FIFO with no writer: refused at once, never waited on
    with pytest.raises(ClaimsFileError, match="folder"):
        load_claims(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"[claims]\nepochs = 2\n\xff\xfe\n")
    with pytest.raises(ClaimsFileError, match=r"bin.toml:3: not UTF-8"):
        load_claims(binary)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ClaimsFileError, match="limit"):
        load_claims(big)
