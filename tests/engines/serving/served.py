"""What the serving tests share: tiny real LVM runs deployed into a real registry, and a real
port server process on a free 127.0.0.1 port with a small HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from trainledger.engines.registry.source import candidate_from_run
from trainledger.engines.registry.store import Registry
from trainledger.engines.serving import records
from trainledger.engines.workspace import Workspace, init_workspace

MODEL = "amn"
CTX, DIM = 5, 16


def train_runs(ws: Workspace, seeds: tuple[int, ...] = (0, 1, 2)) -> list[str]:
    """One-epoch lvm-amn runs on a small generated set (a few seconds each)."""
    from trainledger.engines.training.datasets import write_npz
    from trainledger.engines.training.loop import StopFlag, Trainer
    from trainledger.engines.training.loop_parts import LoopConfig
    from trainledger.engines.training.lvm import generate
    from trainledger.engines.training.models import TaskOptions, load_builder

    data = ws.root / "datasets" / "lvm-small.npz"
    data.parent.mkdir(parents=True, exist_ok=True)
    write_npz(data, generate(0, n_docs=30, doc_len=25, dim=DIM))
    out = []
    for seed in seeds:
        task = load_builder("lvm-amn")(TaskOptions(ws, data=data, seed=seed))
        cfg = LoopConfig(epochs=1, batch_size=128, lr=3e-3, log_every=5, patience=0)
        result = Trainer(task, cfg, ws, run_id=f"amn-s{seed}", stop=StopFlag()).run()
        assert result is not None and result.status == "finished"
        out.append(f"amn-s{seed}")
    return out


def registry_workspace(root: Path) -> Workspace:
    """A workspace whose registry holds amn v1 (active), v2 and v3, each from its own run."""
    ws = init_workspace(root)
    with Registry(ws) as reg:
        for run_id in train_runs(ws):
            reg.deploy(MODEL, candidate_from_run(ws, run_id))
        reg.promote(MODEL, "v1")
    return ws


def copy_workspace(src: Workspace, dst: Path) -> Workspace:
    shutil.copytree(src.root, dst, symlinks=True)
    from trainledger.engines.workspace import open_workspace

    return open_workspace(dst)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVE = ("import sys, json; from pathlib import Path; from trainledger.engines.workspace import open_workspace;"
         "from trainledger.engines.serving.server import run_server; from trainledger.engines.serving.faults import "
         "parse_fault; a = json.loads(sys.argv[1]); run_server(open_workspace(Path(a['ws'])), model=a['model'], "
         "port=a['port'], faults=dict(parse_fault(f) for f in a['faults']), passthrough_dim=a.get('dim'), "
         "bake_s=a.get('bake_s', 600.0))")  # fmt: skip


class Served:
    """A port server in a process of its own; `url`, `post`, `get`; `stop()` drains it."""

    def __init__(self, ws: Workspace, model: str | None = MODEL, faults: tuple[str, ...] = (), dim: int | None = None,
                 bake_s: float = 600.0) -> None:  # fmt: skip
        self.ws, self.port = ws, free_port()
        self.log = ws.root / f"serve-{self.port}.log"
        args = {"ws": str(ws.root), "model": model, "port": self.port, "faults": list(faults), "dim": dim,
                "bake_s": bake_s}  # fmt: skip
        with open(self.log, "ab") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen([sys.executable, "-c", SERVE, json.dumps(args)], stdout=log,
                                         stderr=subprocess.STDOUT, env=env)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the server did not come up:\n" + self.log.read_text()
            if records.record_path(ws, self.port).exists():
                try:
                    if self.get("/health")[0] == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.05)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path: str) -> tuple[int, Any]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if r.getheader("Content-Type", "").startswith("application/json")
                              else data.decode())  # fmt: skip
        finally:
            c.close()

    def post(self, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None,
             conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, Any], str | None]:  # fmt: skip
        c = conn or self.conn
        data = raw if raw is not None else json.dumps(body).encode()
        c.request("POST", "/predict", body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        out = r.read()
        try:
            parsed = json.loads(out)
        except ValueError:
            parsed = {"raw": out.decode(errors="replace")}
        return r.status, parsed, r.getheader("X-Trainledger-Version")

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
        self.stop()


def context(seed: float = 0.1) -> list[list[float]]:
    return [[(seed * (r + 1) + c * 0.01) % 1.0 for c in range(DIM)] for r in range(CTX)]
