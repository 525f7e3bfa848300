"""Process control for `trainledger demo`: a demo workspace, paced ternary-VAE trainers, a live
capture stream (a capture server on a free port fed by a synthetic sender) and the serving
demo (seed 003's six ports, engines/serving/demo.py).

Each trainer runs as `python -m trainledger.engines.training`, started by the launcher
(`procs.launch`: a session of its own, log in <workspace>/.trainledger/logs/<run-id>.log,
`--exit-with-parent`), stops cleanly on SIGTERM and exits by itself when its parent dies.
Nothing here imports torch, so starting a trainer returns at once. The capture sender lives
the same way; the server is started and stopped through capture.process. Beside the first
trainer runs the registry seeder (registry/demo_seed.py), which turns that run's best
checkpoints into the demo model's active version, rollback target and canary.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from trainledger.engines.metrics.writer import new_run_id
from trainledger.engines.procs import Launched, launch, stop_all
from trainledger.engines.workspace import (
    Workspace,
    default_demo_dir,
    init_workspace,
    validate_id,
)

if TYPE_CHECKING:
    from trainledger.engines.capture.process import ServerState

MODEL = "ternary-vae"
CAPTURE_RATE = 30.0  # frames per second, a phone's camera rate
CAPTURE_BAD_EVERY = 97  # a broken line about every 3 s: the Capture pane shows rejects
CAPTURE_LOG = "capture-stream.log"
SEED_LOG = "registry-seed.log"
SERVING_LOG = "serving-demo.log"

# About 4 minutes on one core: best val/loss near epoch 5, the β/LR phase change spikes the
# loss at epoch 50, early stop ~100 epochs after the best. 139 steps per epoch at 64 steps/s
# is ~2.2 s per epoch and ~13 train rows per second.
DEMO_CONFIG: dict[str, Any] = {
    "epochs": 400,
    "batch_size": 128,
    "lr": 1e-3,
    "seed": 0,
    "patience": 100,
    "log_every": 5,
    "phase_epoch": 50,
    "pace": 64.0,
}
OPTIONS = (
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "patience",
    "log_every",
    "phase_epoch",
    "pace",
    "threads",
    "name",
)


def prepare_demo_workspace(path: Path | None = None) -> Workspace:
    return init_workspace(path or default_demo_dir())


class DemoProcesses:
    """The trainers and the capture stream started for one demo session; stop_all() ends them."""

    def __init__(self, ws: Workspace, *, register: bool = True) -> None:
        self.ws = ws
        self.register = register  # seed the registry from the first trainer's run
        self._seeder: Launched | None = None
        self._trainers: list[Launched] = []
        self._run_ids: dict[int, str] = {}
        self._sender: Launched | None = None
        self._serving: Launched | None = None
        self._capture: ServerState | None = None
        self.capture_session: str | None = None

    @property
    def logs_dir(self) -> Path:
        return self.ws.state_dir / "logs"

    def start_trainer(
        self, run_id: str | None = None, **overrides: Any
    ) -> subprocess.Popen[bytes]:
        """Start one trainer with DEMO_CONFIG changed by `overrides`; returns without waiting."""
        unknown = sorted(set(overrides) - set(OPTIONS))
        if unknown:
            raise TypeError(
                f"unknown trainer options: {unknown}; known: {list(OPTIONS)}"
            )
        run_id = validate_id(run_id, "run id") if run_id else self._new_run_id()
        args = [sys.executable, "-m", "trainledger.engines.training", MODEL,
                "--workspace", str(self.ws.root), "--run-id", run_id]  # fmt: skip
        for key, value in {**DEMO_CONFIG, **overrides}.items():
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        trainer = launch(args, self.logs_dir / f"{run_id}.log", exit_with_parent=True, run_log=run_id)
        self._trainers.append(trainer)
        self._run_ids[trainer.pid] = run_id
        if self.register and self._seeder is None:
            self._start_seeder(run_id)
        return _popen(trainer)

    def _start_seeder(self, run_id: str) -> None:
        """The registry seeder for `run_id`; it exits by itself once the demo model is in place."""
        args = [sys.executable, "-m", "trainledger.engines.registry.demo_seed",
                "--workspace", str(self.ws.root), "--run", run_id]  # fmt: skip
        self._seeder = launch(args, self.logs_dir / SEED_LOG, exit_with_parent=True)

    def start_serving(self) -> subprocess.Popen[bytes]:
        """The serving demo (engines/serving/demo.py): trains and registers seed 003's models,
        brings up their six ports, drives traffic and runs a canary that fails by itself."""
        if self._serving is None or _popen(self._serving).poll() is not None:
            args = [sys.executable, "-m", "trainledger.engines.serving.demo", "--workspace", str(self.ws.root)]
            self._serving = launch(args, self.logs_dir / SERVING_LOG, exit_with_parent=True, run_log="*")
        return _popen(self._serving)

    @property
    def serving(self) -> subprocess.Popen[bytes] | None:
        return _popen(self._serving) if self._serving is not None else None

    @property
    def seeder(self) -> subprocess.Popen[bytes] | None:
        return _popen(self._seeder) if self._seeder is not None else None

    def _new_run_id(self) -> str:
        while True:
            run_id = new_run_id(MODEL)
            if (
                run_id not in self._run_ids.values()
                and not self.ws.run_dir(run_id).exists()
            ):
                return run_id

    def run_id(self, proc: subprocess.Popen[bytes]) -> str:
        return self._run_ids[proc.pid]

    def log_path(self, proc: subprocess.Popen[bytes]) -> Path:
        return self.logs_dir / f"{self.run_id(proc)}.log"

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [_popen(t) for t in self._running()]

    def _running(self) -> list[Launched]:
        return [t for t in self._trainers if _popen(t).poll() is None]

    def start_capture(self, port: int = 0) -> ServerState:
        """Start a capture server for the demo workspace (port 0: a free one, so the demo never
        collides with a real server on 9471) and a sender streaming synthetic frames to it.

        Raises CaptureServerError when the server does not start; the error is also written to
        the stream's log, and the caller decides whether the demo goes on without capture.
        """
        from trainledger.engines.capture.process import (
            CaptureServerError,
            start_server,
            stop_server,
        )

        if self._sender is not None and _popen(self._sender).poll() is None:
            raise CaptureServerError("the demo's capture stream is already running")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / CAPTURE_LOG
        try:
            state = start_server(self.ws, port=port, fsync="batch", exit_with_parent=True)
        except CaptureServerError as exc:
            with open(log_path, "a") as log:
                log.write(
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')} capture server did not start: {exc}\n"
                )
            raise
        self._capture = state
        session = time.strftime("demo-%Y%m%d-%H%M%S")
        args = [sys.executable, "-m", "trainledger.engines.capture", "stream", "--url", state.url,
                "--session", session, "--rate", f"{CAPTURE_RATE:g}", "--bad-every", str(CAPTURE_BAD_EVERY)]  # fmt: skip
        try:
            self._sender = launch(args, log_path, exit_with_parent=True)
        except OSError:
            stop_server(self.ws)
            self._capture = None
            raise
        self.capture_session = session
        return state

    @property
    def capture_sender(self) -> subprocess.Popen[bytes] | None:
        return _popen(self._sender) if self._sender is not None else None

    def stop_capture(self, timeout: float = 5.0) -> None:
        """Stop the sender, then the server this object started (if it did)."""
        if self._sender is not None:
            stop_all([self._sender], timeout, group=True)
        self._stop_server(timeout)

    def _stop_server(self, timeout: float) -> None:
        if self._capture is not None:
            from trainledger.engines.capture.process import stop_server

            stop_server(self.ws, timeout)
            self._capture = None

    def stop_all(self, timeout: float = 5.0) -> None:
        """SIGTERM every trainer's, the sender's and the seeder's process group together, wait up to
        `timeout` for all of them, SIGKILL the rest; then stop the capture server."""
        others = [p for p in (self._sender, self._seeder, self._serving) if p is not None]
        stop_all([*self._running(), *others], timeout, group=True)  # the serving demo drains its ports
        self._stop_server(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def demo_report(ws: Workspace, run_id: str, pid: int, log: Path) -> str:
    """This demo's own run after the demo stopped it: id, final status, rows, where its log is.

    Read from the run folder once the trainer has exited (a SIGTERM'd trainer records
    `stopped` as it goes), so a second demo in the same workspace names its own run with its
    final status, never the previous demo's run that the console may have had on screen.
    """
    from trainledger.engines.metrics.series import RunSeries
    from trainledger.engines.safetext import clean
    from trainledger.engines.workspace import read_run_info

    run_dir = ws.run_dir(run_id)
    lines = [f"trainer pid: {pid} (stopped)"]
    if not (run_dir / "run.json").exists():
        lines.append(f"demo run: {run_id}  status not-started  (the trainer wrote no run.json)")
    else:
        info = read_run_info(run_dir)
        series = RunSeries(run_dir, cache_dir=ws.cache_dir, run_id=run_id)
        series.refresh()
        snap = series.snapshot()
        line = f"demo run: {run_id}  status {clean(info.status)}  {snap.n} rows"
        if snap.malformed:
            line += f" ({snap.malformed:,} malformed lines skipped)"
        if info.error:
            line += f"  [{clean(info.error)}]"
        lines.append(line)
    lines.append(f"trainer log: {clean(str(log))}")
    return "\n".join(lines)


def _popen(launched: Launched) -> subprocess.Popen[bytes]:
    """The Popen handle of a process this object launched (procs.launch always sets it)."""
    assert launched.proc is not None
    return launched.proc
