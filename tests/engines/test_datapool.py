"""The data pool: line-by-line validation, rendering, the hash split, the ready-to-train threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainledger.engines.training import datapool
from trainledger.engines.training.datapool import (
    NotEnoughSamples,
    Sample,
    check_ready,
    demo_samples,
    hash_fraction,
    read_pool,
    ready_to_train,
    split_samples,
    write_demo_pool,
)
from trainledger.engines.workspace import Workspace, init_workspace

GOOD_INSTRUCTION = {"instruction": "Add.", "input": "2 and 3", "output": "5"}
GOOD_CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello."}]}  # fmt: skip

LINES: list[tuple[str, str | None]] = [  # (line, reject reason or None for a kept sample)
    (json.dumps(GOOD_INSTRUCTION), None),
    ("{not json", "not JSON"),
    ("[1, 2]", "not an object"),
    (json.dumps({"instruction": "Add.", "input": "1 and 1"}), "missing output"),
    (json.dumps({"instruction": "Add.", "output": "   "}), "empty content"),
    ("", None),  # blank: skipped, neither kept nor rejected
    (json.dumps(GOOD_CHAT), None),
    (json.dumps({"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}), "bad role"),
    (json.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}),
     "empty content"),
    (json.dumps({"messages": []}), "bad messages"),
    (json.dumps({"messages": [{"role": "user", "content": "only a question"}]}), "no assistant message"),
    (json.dumps({"instruction": 3, "output": "x"}), "bad field type"),
    (json.dumps({"input": "", "output": "an answer to nothing"}), "missing instruction"),
    (json.dumps(GOOD_INSTRUCTION), "duplicate"),
    (json.dumps({"input": "only input", "output": "fine"}), None),
    ("42", "not an object"),
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_reject_reason_is_counted_with_its_line_numbers(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "pool.jsonl", [line for line, _ in LINES])
    pool = read_pool(path)
    expected: dict[str, list[int]] = {}
    for lineno, (_line, reason) in enumerate(LINES, start=1):
        if reason:
            expected.setdefault(reason, []).append(lineno)
    assert dict(pool.rejects) == {k: len(v) for k, v in expected.items()}
    assert pool.examples == {k: [f"{path}:{n}" for n in v] for k, v in expected.items()}
    assert pool.n_rejected == 12
    kept = [s.source for s in pool.samples]
    assert kept == [f"{path}:1", f"{path}:7", f"{path}:15"]
    assert [s.format for s in pool.samples] == ["instruction", "chat", "instruction"]
    summary = pool.summary()
    assert summary["n_samples"] == 3 and summary["rejects"]["not an object"] == 2


def test_samples_render_to_the_documented_templates(tmp_path: Path) -> None:
    pool = read_pool(write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD_INSTRUCTION), json.dumps(GOOD_CHAT),
                                                       json.dumps({"instruction": "Say hi.",
                                                                   "output": "hi"})]))  # fmt: skip
    texts = [s.text for s in pool.samples]
    assert texts[0] == "### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:\n5"
    assert texts[1] == "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello."
    assert texts[2] == "### Instruction:\nSay hi.\n\n### Response:\nhi"


def test_a_folder_pool_reads_jsonl_files_recursively_in_sorted_order(tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    write_lines(folder / "b.jsonl", [json.dumps({"instruction": "b", "output": "1"})])
    write_lines(folder / "a" / "z.jsonl", [json.dumps({"instruction": "az", "output": "1"}), "oops"])
    write_lines(folder / "notes.txt", [json.dumps({"instruction": "ignored", "output": "1"})])
    pool = read_pool(folder)
    assert pool.files == [folder / "a" / "z.jsonl", folder / "b.jsonl"]
    assert [s.source for s in pool.samples] == [f"{folder / 'a' / 'z.jsonl'}:1", f"{folder / 'b.jsonl'}:1"]
    assert pool.examples == {"not JSON": [f"{folder / 'a' / 'z.jsonl'}:2"]}
    with pytest.raises(FileNotFoundError):
        read_pool(tmp_path / "nowhere")


def test_the_split_is_about_a_tenth_deterministic_and_machine_independent(tmp_path: Path) -> None:
    # sha256("abc") starts ba7816bf8f01cfea: the fraction does not depend on the process or machine
    assert hash_fraction("abc") == int("ba7816bf8f01cfea", 16) / 2**64
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in demo_samples(2000, seed=5)), encoding="utf-8")
    first, second = read_pool(path), read_pool(path)
    train_a, val_a = first.split()
    train_b, val_b = second.split()
    assert [s.text for s in val_a] == [s.text for s in val_b] and len(train_a) == len(train_b)
    assert len(train_a) + len(val_a) == 2000
    assert 0.08 < len(val_a) / 2000 < 0.12
    assert not {s.text for s in val_a} & {s.text for s in train_a}
    # a sample's side depends on its text only: a smaller pool keeps every old assignment
    sub_train, sub_val = split_samples(first.samples[:500])
    assert {s.text for s in sub_val} == {s.text for s in val_a} & {s.text for s in first.samples[:500]}
    assert len(sub_train) + len(sub_val) == 500


def test_a_tiny_pool_still_gets_one_validation_sample() -> None:
    samples = [Sample(text=f"t{i}", format="instruction", source=f"x:{i}") for i in range(3)]
    train, val = split_samples(samples)
    assert len(val) >= 1 and len(train) + len(val) == 3


def test_threshold_and_its_refusal_message(tmp_path: Path) -> None:
    assert not ready_to_train(99) and ready_to_train(100) and ready_to_train(5, threshold=5)
    with pytest.raises(NotEnoughSamples) as err:
        check_ready(42)
    message = str(err.value)
    assert "42" in message and "100" in message and "--force" in message
    check_ready(42, force=True)  # forced: no error
    check_ready(100)


def test_demo_pool_is_deterministic_valid_and_ready(tmp_path: Path) -> None:
    a = write_demo_pool(tmp_path / "a")
    b = write_demo_pool(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    pool = read_pool(a)
    assert len(pool.samples) == datapool.DEMO_SAMPLES == 300 and not pool.rejects
    assert {s.format for s in pool.samples} == {"instruction", "chat"}
    assert ready_to_train(len(pool.samples))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def test_lm_base_refuses_a_small_pool_unless_forced(ws: Workspace, tmp_path: Path) -> None:
    from trainledger.engines.training.lm import build_base
    from trainledger.engines.training.models import TaskOptions

    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in demo_samples(50)), encoding="utf-8")
    with pytest.raises(NotEnoughSamples, match="--force"):
        build_base(TaskOptions(ws, data=path))
    task = build_base(TaskOptions(ws, data=path, extra={"force": True}))
    assert task.data_path == path and len(task.train_seqs) + len(task.val_seqs) == 50
    demo = build_base(TaskOptions(ws))  # no data: the demo pool, written into the workspace
    assert demo.data_path == ws.root / "datasets" / "lm-base" / "pool.jsonl" and demo.data_path.exists()
    with pytest.raises(ValueError, match="no setting"):
        build_base(TaskOptions(ws, extra={"set": {"width": 3}}))
    assert build_base(TaskOptions(ws, extra={"set": {"d_model": "32"}})).cfg.d_model == 32
