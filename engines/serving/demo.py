"""`trainledger demo`'s serving half: seed 003's six ports, live, and a canary that fails by itself.

Runs as a child of the console (`python -m trainledger.engines.serving.demo --workspace W
--exit-with-parent`, started by engines/demo.py), so the console never imports torch:
  1. trains the four LVM architectures and an "optimized" transformer on the generated
     sequential demo data (a few epochs each, seconds in all) and registers each as its
     model's active version (skipped for models already in the registry);
  2. trains one more transformer run and deploys it as a new version of lvm-transformer,
     with a short policy window, and puts it on canary at 25 % with an injected error rate
     (`--fault`, a testing aid): the port server's analysis aborts it by itself within the
     first minute, and the audit names the figures;
  3. writes ports.toml for 9001-9006 (seed 003's ports; a taken one is replaced by a free
     port, and said), starts the six servers (the passthrough on 9005) and drives light
     keyed traffic at them until SIGTERM, when it drains and stops them.
Progress goes to its log (.trainledger/logs/serving-demo.log).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from trainledger.engines.workspace import Workspace, open_workspace

LOG = "serving-demo.log"
CANARY_MODEL = "lvm-transformer"
CANARY_FAULT = "error=0.5"
CANARY_TRAFFIC = 25
CANARY_POLICY = {"window_s": 10.0, "min_requests": 10}
RATE_PER_PORT = 12.0  # requests per second per port
# seed 003's table: port, registry model, architecture, trainer settings
PORTS: tuple[tuple[int, str | None, str | None, dict[str, Any]], ...] = (
    (9001, "lvm-amn", "lvm-amn", {"epochs": 4}),
    (9002, "lvm-transformer", "lvm-transformer", {"epochs": 3}),
    (9003, "lvm-gru", "lvm-gru", {"epochs": 3}),
    (9004, "lvm-lstm", "lvm-lstm", {"epochs": 3}),
    (9005, None, None, {}),  # the passthrough baseline: no model
    (9006, "lvm-transformer-opt", "lvm-transformer", {"epochs": 6, "lr": 2e-3}),
)


def say(text: str) -> None:
    print(time.strftime("%H:%M:%S"), text, flush=True)


def _train(ws: Workspace, kind: str, run_id: str, seed: int, settings: dict[str, Any]) -> str:
    """One run on the demo's sequential data (seed 0's set: every port is trained on the same
    data, as seed 003's were; `seed` changes the initialisation and the order)."""
    from trainledger.engines.training.loop import StopFlag, Trainer
    from trainledger.engines.training.loop_parts import LoopConfig
    from trainledger.engines.training.models import TaskOptions, load_builder

    data = ws.root / "datasets" / "lvm" / "lvm-demo-seed0.npz"
    if not data.is_file():
        load_builder(kind)(TaskOptions(ws, seed=0))  # writes the demo set
    task = load_builder(kind)(TaskOptions(ws, data=data, seed=seed))
    cfg = LoopConfig(epochs=int(settings.get("epochs", 3)), batch_size=128, lr=float(settings.get("lr", 3e-3)),
                     log_every=5, patience=0, seed=seed)  # fmt: skip
    result = Trainer(task, cfg, ws, run_id=run_id, name=f"demo {kind}", stop=StopFlag()).run()
    if result is None or result.status != "finished":
        raise RuntimeError(f"training {kind} ended {getattr(result, 'status', None)}")
    return run_id


def _new_run_id(ws: Workspace, base: str) -> str:
    from trainledger.engines.metrics.writer import new_run_id

    while True:
        run_id = new_run_id(base)
        if not ws.run_dir(run_id).exists():
            return run_id


def seed_registry(ws: Workspace) -> str:
    """Every model of PORTS active in the registry, and a fresh failing canary; its version."""
    from trainledger.engines.registry.store import Registry

    with Registry(ws) as reg:
        known = {m.name for m in reg.models()} if reg.exists else set()
        for _port, model, kind, settings in PORTS:
            if model is None or kind is None or model in known:
                continue
            run_id = _train(ws, kind, _new_run_id(ws, model), 0, settings)
            change = _deploy(ws, reg, model, run_id, "trainledger demo")
            reg.promote(model, str(change.to_version), reason="trainledger demo: first version")
            say(f"registered {model} from run {run_id}")
        state = reg.model(CANARY_MODEL)
        if state.canary:
            reg.abort(CANARY_MODEL, reason="trainledger demo: a fresh canary replaces the last one")
        seed = random.randrange(1, 1_000_000)
        run_id = _train(ws, "lvm-transformer", _new_run_id(ws, CANARY_MODEL), seed, {"epochs": 2})
        change = _deploy(ws, reg, CANARY_MODEL, run_id, "trainledger demo: a canary")
        version = str(change.to_version)
        reg.set_policy(CANARY_MODEL, {**state.policy, **CANARY_POLICY}, reason="trainledger demo: short windows")
        return version


def _deploy(ws: Workspace, reg: Any, model: str, run_id: str, reason: str) -> Any:
    """Deploy the run's best checkpoint with every check `registry deploy` runs (files, load, probe)."""
    from trainledger.engines.registry.cli_deploy import run_checks
    from trainledger.engines.registry.source import candidate_from_run

    candidate = candidate_from_run(ws, run_id)
    return reg.deploy(model, candidate, reason=reason, checks=run_checks(ws, candidate, probe=True))


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _any_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def taken_ports() -> list[str]:
    """Seed 003's ports that are taken now, said in a line each (the console shows them)."""
    return [f"port {port} is taken: the demo's {model or 'passthrough'} serves on a free port instead "
            f"(see the Ports pane)" for port, model, _kind, _settings in PORTS if not _free(port)]  # fmt: skip


def write_ports(ws: Workspace, canary_version: str) -> list[Any]:
    from trainledger.engines.serving.portsfile import PortSpec, write_ports

    specs = []
    for port, model, _kind, _settings in PORTS:
        real = port if _free(port) else _any_port()
        if real != port:
            say(f"port {port} is taken: {model or 'passthrough'} serves on {real} instead")
        if model is None:
            specs.append(PortSpec(real, None, passthrough=True, dim=64))
        else:
            faults = (f"{canary_version}:{CANARY_FAULT}",) if model == CANARY_MODEL else ()
            specs.append(PortSpec(real, model, faults=faults))
    write_ports(ws, specs)
    return specs


def traffic(specs: list[Any], stop: threading.Event) -> None:
    """Light keyed traffic at every port: RATE_PER_PORT requests/s each, 5 x 64 contexts."""
    rng = random.Random(0)
    bodies = [json.dumps({"context": [[rng.gauss(0, 1) for _ in range(64)] for _ in range(5)]}) for _ in range(16)]
    conns: dict[int, http.client.HTTPConnection] = {}
    n = 0
    while not stop.is_set():
        for spec in specs:
            conn = conns.get(spec.port) or http.client.HTTPConnection("127.0.0.1", spec.port, timeout=2)
            conns[spec.port] = conn
            try:
                conn.request("POST", "/predict", body=bodies[n % len(bodies)],
                             headers={"Content-Type": "application/json", "X-Request-Key": f"user-{n % 500}"})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conns.pop(spec.port, None)
            n += 1
        stop.wait(1.0 / RATE_PER_PORT)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainledger.engines.serving.demo")
    p.add_argument("--workspace", required=True)
    p.add_argument("--exit-with-parent", action="store_true")
    args = p.parse_args(argv)
    ws = open_workspace(Path(args.workspace))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.exit_with_parent:
        from trainledger.engines.pids import parent_alive

        parent = __import__("os").getppid()

        def watch() -> None:
            while not stop.wait(0.5):
                if not parent_alive(parent):
                    stop.set()

        threading.Thread(target=watch, daemon=True).start()
    from trainledger.engines.registry.store import Registry
    from trainledger.engines.serving.process import PortsError, start_port, stop_port

    canary = seed_registry(ws)
    specs = write_ports(ws, canary)
    started = []
    try:
        for spec in specs:
            if stop.is_set():
                break
            try:
                start_port(ws, spec, exit_with_parent=True, timeout=60)
                started.append(spec.port)
                say(f"port {spec.port}: {spec.model or 'passthrough'} up")
            except PortsError as exc:
                say(f"port {spec.port}: {exc}")
        load = threading.Thread(target=traffic, args=(specs, stop), daemon=True)
        load.start()
        if not stop.is_set():
            with Registry(ws) as reg:
                reg.canary(CANARY_MODEL, canary, CANARY_TRAFFIC,
                           reason=f"trainledger demo: {canary} on canary with an injected fault ({CANARY_FAULT})")
            say(f"{CANARY_MODEL} {canary} on canary at {CANARY_TRAFFIC} % with an injected {CANARY_FAULT}: "
                f"watch the port server abort it by itself")
        stop.wait()
    finally:
        stop.set()
        for port in started:
            say(stop_port(ws, port, timeout=5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
