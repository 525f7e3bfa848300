"""The loop's newer parts: loss-term balance, trainer state for resume, system.jsonl, provenance."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from trainledger.engines.training.loop import (
    LoopConfig,
    Schedule,
    Trainer,
    _flatten_optimizer,
    _unflatten_optimizer,
    load_trainer_state,
    save_trainer_state,
)
from trainledger.engines.training.provenance import describe_data, resolve_device, sha256_tree
from trainledger.engines.training.system import SystemMonitor
from trainledger.engines.workspace import Workspace, init_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class TwoTermTask:
    """y = Wx with two weighted terms over two heads; `big` is scaled 100x."""

    model_name = "two-term"
    primary_metric = "val/loss"
    directions = {"val/loss": "min"}

    def __init__(self, scale: float = 100.0) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 4, generator=g)
        self.y = torch.randn(256, 2, generator=g)
        self.scale = scale

    def config(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def build_model(self) -> nn.Module:
        return nn.Linear(4, 2)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> list[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(self.x), generator=generator)
        return list(zip(self.x[order].split(batch_size), self.y[order].split(batch_size)))

    def schedule(self, epoch: float) -> Schedule:
        return Schedule(phase="only")

    def loss(self, model: nn.Module, batch: Any, schedule: Schedule) -> dict[str, Tensor]:
        x, y = batch
        out = model(x)
        big = self.scale * (out[:, 0] - y[:, 0]).pow(2).mean()
        small = (out[:, 1] - y[:, 1]).pow(2).mean()
        return {"loss": big + small, "term/big": big, "term/small": small}

    def evaluate(self, model: nn.Module, schedule: Schedule) -> dict[str, float]:
        with torch.no_grad():
            return {"val/loss": float((model(self.x) - self.y).pow(2).mean())}


def test_a_dominant_loss_term_is_measured_and_reported_once_per_cooldown(ws: Workspace) -> None:
    # 256 / 8 = 32 steps an epoch, 2 epochs = 64 steps; balance every 4 -> 16 checks, cooldown 40 steps
    cfg = LoopConfig(epochs=2, batch_size=8, log_every=4, balance_every=4, lr=1e-3, patience=0)
    result = Trainer(TwoTermTask(), cfg, ws, run_id="balance").run()
    assert result is not None and result.status == "finished" and result.step == 64
    rows = [r for r in jsonl(result.run_dir / "metrics.jsonl") if "train/loss" in r]
    assert len(rows) == 16
    for row in rows:
        assert row["balance/big/grad_norm"] > 10 * row["balance/small/grad_norm"] > 0
        assert row["balance/big/share"] + row["balance/small/share"] == pytest.approx(1.0)
        assert row["balance/big/share"] > 0.9
        assert "train/term/big" in row and "lr" in row
    events = [e for e in jsonl(result.run_dir / "events.jsonl") if e["kind"] == "loss_dominance"]
    assert [e["step"] for e in events] == [4, 44]  # once, then again after 10 x balance_every steps
    assert events[0]["dominant"] == "big" and events[0]["dominated"] == "small"
    assert events[0]["ratio"] > 10 and events[0]["factor"] == 10.0
    assert set(events[0]["grad_norms"]) == {"big", "small"}


def test_balanced_terms_raise_no_event_and_balance_can_be_off(ws: Workspace) -> None:
    cfg = LoopConfig(epochs=1, batch_size=8, log_every=4, balance_every=4, patience=0)
    result = Trainer(TwoTermTask(scale=1.0), cfg, ws, run_id="even").run()
    assert result is not None
    assert not [e for e in jsonl(result.run_dir / "events.jsonl") if e["kind"] == "loss_dominance"]
    off = LoopConfig(epochs=1, batch_size=8, log_every=4, balance_every=0, patience=0)
    result = Trainer(TwoTermTask(), off, ws, run_id="off").run()
    assert result is not None
    assert not any("balance/big/grad_norm" in r for r in jsonl(result.run_dir / "metrics.jsonl"))


def test_trainer_state_round_trips_the_optimizer_and_the_shuffle_rng(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    shuffle = torch.Generator().manual_seed(7)
    torch.randperm(10, generator=shuffle)
    (tmp_path / "checkpoints").mkdir()
    ref = save_trainer_state(tmp_path, "last", opt, shuffle)
    state, rng = load_trainer_state(tmp_path, ref)
    fresh = torch.optim.Adam(model.parameters(), lr=0.5)
    fresh.load_state_dict(state)
    for index, a in opt.state_dict()["state"].items():
        b = fresh.state_dict()["state"][index]
        for key in a:
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), (index, key, a[key], b[key])
    assert fresh.param_groups[0]["lr"] == 0.01
    again = torch.Generator()
    again.set_state(rng)
    assert torch.equal(torch.randperm(10, generator=again), torch.randperm(10, generator=shuffle))
    tensors, meta = _flatten_optimizer(opt.state_dict())
    assert all(k.startswith("optim.") for k in tensors)
    assert _unflatten_optimizer(tensors, meta)["param_groups"] == opt.state_dict()["param_groups"]


def test_resume_in_process_continues_steps_and_keeps_the_best(ws: Workspace) -> None:
    cfg = LoopConfig(epochs=1, batch_size=32, log_every=4, patience=0)
    first = Trainer(TwoTermTask(), cfg, ws, run_id="again").run()
    assert first is not None and first.step == 8
    cfg.epochs = 3
    second = Trainer(TwoTermTask(), cfg, ws, run_id="again", resume=True).run()
    assert second is not None and (second.step, second.epochs_done) == (24, 3)
    info = json.loads((second.run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["summary"]["step"] == 24
    vals = [r for r in jsonl(second.run_dir / "metrics.jsonl") if "val/loss" in r]
    assert [r["epoch"] for r in vals] == [0, 1, 2, 3]
    assert second.best is not None and second.best["value"] <= first.best["value"]  # type: ignore[index]


def test_system_monitor_writes_rows_and_leaves_out_what_it_cannot_read(tmp_path: Path) -> None:
    monitor = SystemMonitor(tmp_path, interval=0.05).start()
    time.sleep(0.3)
    monitor.stop()
    rows = jsonl(tmp_path / "system.jsonl")
    assert len(rows) >= 3
    assert all({"time", "cpu_percent", "rss_bytes"} <= r.keys() for r in rows)
    assert rows[0]["rss_bytes"] > 0 and all(r["time"] <= s["time"] for r, s in zip(rows, rows[1:]))
    assert all(v is not None for r in rows for v in r.values())


def test_data_hashes_and_device_resolution(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"alpha")
    (folder / "sub" / "b.bin").write_bytes(b"\x00\x01")
    first = sha256_tree(folder)
    assert sha256_tree(folder) == first
    (folder / "sub" / "b.bin").write_bytes(b"\x00\x02")
    assert sha256_tree(folder) != first
    (folder / "sub" / "b.bin").rename(folder / "b.bin")
    (folder / "b.bin").write_bytes(b"\x00\x01")
    assert sha256_tree(folder) != first  # same bytes, other path

    class FileTask:
        data_path = folder / "a.txt"

    d = describe_data(FileTask())
    assert d is not None and d["kind"] == "file" and d["sha256"] == hashlib.sha256(b"alpha").hexdigest()
    FileTask.data_path = folder
    assert describe_data(FileTask())["sha256"] == sha256_tree(folder)  # type: ignore[index]
    assert describe_data(object()) is None

    auto = resolve_device("auto")
    assert auto in ("cpu", "cuda", "mps") and resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert auto != "cuda"
        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")
