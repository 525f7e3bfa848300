"""Writes a run folder: run.json, metrics.jsonl and events.jsonl.

The format is plain JSON Lines that any script can write without this code
(docs/formats.md); this writer is the convenience for Python. Each row is one
`write` + flush, so a reader never sees a row we did not finish unless the
process dies mid-write, and readers tolerate that partial last line.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from trainledger.engines.procs import launched_run_log
from trainledger.engines.workspace import (
    EVENTS_FILE,
    METRICS_FILE,
    RUN_FILE,
    Workspace,
    atomic_write_json,
    resolve_workspace,
    validate_id,
)

RUN_SCHEMA = "trainledger-run/1"
TERMINAL_STATUSES = ("finished", "stopped", "failed")

_encoder = msgspec.json.Encoder()


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null so every reader can parse the row."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return _clean(value.item())
        except (TypeError, ValueError):
            return value
    return value


def new_run_id(model: str | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"-{validate_id(model, 'model name')}" if model else ""
    return f"{stamp}{tag}-{secrets.token_hex(2)}"


class MetricsWriter:
    """Create a run folder and append metrics rows and events to it.

    >>> with MetricsWriter(ws, model="mlp", config={"lr": 1e-3}) as run:
    ...     run.log({"train/loss": 0.5}, step=1, epoch=0)
    """

    def __init__(
        self,
        workspace: Workspace | Path | str,
        run_id: str | None = None,
        *,
        name: str | None = None,
        model: str | None = None,
        config: dict[str, Any] | None = None,
        directions: dict[str, str] | None = None,
        primary_metric: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        ws = workspace if isinstance(workspace, Workspace) else Workspace(Path(workspace))
        self.run_id = validate_id(run_id or new_run_id(model), "run id")
        self.dir = ws.run_dir(self.run_id)
        self.dir.mkdir(parents=True, exist_ok=False)
        self._info: dict[str, Any] = {
            "schema": RUN_SCHEMA,
            "id": self.run_id,
            "name": name,
            "model": model,
            "status": "running",
            "started": time.time(),
            "ended": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "argv": list(sys.argv),
            "config": config or {},
            "metrics": {k: {"direction": v} for k, v in (directions or {}).items()},
            "primary_metric": primary_metric,
        }
        if (log := launched_run_log(self.run_id)) is not None:  # started by the console or the demo
            self._info["log"] = log
        if extra:
            self._info.update(extra)
        self._write_info()
        self._metrics = open(self.dir / METRICS_FILE, "ab", buffering=0)
        self._events = open(self.dir / EVENTS_FILE, "ab", buffering=0)
        self._step = -1

    # -- run.json
    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def _write_info(self) -> None:
        atomic_write_json(self.dir / RUN_FILE, self._info)

    def update(self, **fields: Any) -> None:
        """Change fields of run.json (atomically replaced)."""
        self._info.update(fields)
        self._write_info()

    # -- rows
    def log(
        self,
        metrics: dict[str, Any],
        step: int | None = None,
        epoch: float | None = None,
        time_: float | None = None,
    ) -> None:
        """Append one row: `step` (default: previous + 1), `epoch`, `time`, the metrics."""
        self._step = self._step + 1 if step is None else int(step)
        row: dict[str, Any] = {"step": self._step}
        if epoch is not None:
            row["epoch"] = _clean(epoch)
        row["time"] = time.time() if time_ is None else time_
        for key, value in metrics.items():
            if key in ("step", "epoch", "time"):
                raise ValueError(f"metric name {key!r} is reserved")
            row[str(key)] = _clean(value)
        self._metrics.write(_encoder.encode(row) + b"\n")

    def event(
        self,
        kind: str,
        message: str = "",
        step: int | None = None,
        epoch: float | None = None,
        **fields: Any,
    ) -> None:
        """Append an event (best, early_stop, phase, ...) at `step` (default: the last row's)."""
        row: dict[str, Any] = {
            "kind": kind,
            "step": self._step if step is None else int(step),
            "time": time.time(),
        }
        if epoch is not None:
            row["epoch"] = _clean(epoch)
        if message:
            row["message"] = message
        row.update({k: _clean(v) for k, v in fields.items()})
        self._events.write(_encoder.encode(row) + b"\n")

    @property
    def closed(self) -> bool:
        return self._metrics.closed

    def finish(self, status: str = "finished", error: str | None = None) -> None:
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"status must be one of {TERMINAL_STATUSES}")
        if self._metrics.closed:
            return
        self._metrics.close()
        self._events.close()
        self._info.update(status=status, ended=time.time(), error=error)
        self._write_info()

    def __enter__(self) -> "MetricsWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self.finish(*end_status(exc_type, exc))


def end_status(exc_type: type[BaseException] | None, exc: BaseException | None) -> tuple[str, str | None]:
    """(status, error) for a run whose code ended with `exc` (None: it returned): finished,
    stopped for KeyboardInterrupt, else failed with "Type: message". SystemExit(0) or
    SystemExit(None) is a clean exit; any other SystemExit code is a failure."""
    if exc_type is None:
        return "finished", None
    if issubclass(exc_type, KeyboardInterrupt):
        return "stopped", None
    if issubclass(exc_type, SystemExit) and getattr(exc, "code", None) in (None, 0):
        return "finished", None
    return "failed", f"{exc_type.__name__}: {exc}"


# ----------------------------------------------------------------------------- trainledger.log
# The one-line API has no `with` around the script, so it learns how the process ends from
# hooks installed at the first call: sys.excepthook (an uncaught exception, chained to the
# previous hook), a wrapper of sys.exit (its code), and atexit (the end). A bare
# `raise SystemExit(n)` is invisible to all three; `with trainledger.run():` sees everything.
_current: MetricsWriter | None = None
_hooked = False
_exit_code: list[Any] = []  # the code of the main thread's last sys.exit() call


def _hook_process() -> None:
    global _hooked
    if _hooked:
        return
    _hooked = True
    import atexit
    import threading

    previous_hook = sys.excepthook
    real_exit = sys.exit

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        if _current is not None:
            _current.finish(*end_status(exc_type, exc))
        previous_hook(exc_type, exc, tb)

    def exit_(code: Any = None) -> None:
        if threading.current_thread() is threading.main_thread():
            _exit_code[:] = [code]
        real_exit(code)

    def at_exit() -> None:
        if _current is not None:
            code = _exit_code[0] if _exit_code else None
            _current.finish(*end_status(SystemExit if _exit_code else None, SystemExit(code)))

    sys.excepthook = excepthook
    sys.exit = exit_
    atexit.register(at_exit)


def log(metrics: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
    """`trainledger.log({...}, step=...)`: one line for any training script.

    The first call creates a run in the workspace found as the console finds one
    ($TRAINLEDGER_WORKSPACE, the current folder, or the default); `epoch=` is accepted.
    The run ends finished when the process exits normally or with sys.exit(0), failed with
    the exception's type and message when it raises or calls sys.exit with another code,
    stopped on an uncaught KeyboardInterrupt (docs/formats.md, run.json `status`).
    """
    global _current
    if _current is None or _current.closed:
        ws, _ = resolve_workspace(None)
        _current = MetricsWriter(ws, name=os.environ.get("TRAINLEDGER_RUN_NAME"))
        _hook_process()
    _current.log(metrics, step=step, epoch=kwargs.pop("epoch", None))
    if kwargs:
        raise TypeError(f"unexpected arguments: {sorted(kwargs)}")


def run(workspace: Workspace | Path | str | None = None, **fields: Any) -> MetricsWriter:
    """`with trainledger.run(model=..., config=...):` the run that `trainledger.log` writes into;
    it ends with the block: finished, stopped (KeyboardInterrupt) or failed (any exception,
    SystemExit with a code other than 0 included). Takes MetricsWriter's keyword arguments."""
    global _current
    ws = workspace if workspace is not None else resolve_workspace(None)[0]
    fields.setdefault("name", os.environ.get("TRAINLEDGER_RUN_NAME"))
    _current = MetricsWriter(ws, **fields)
    _hook_process()
    return _current


def json_safe(value: Any, _depth: int = 0) -> Any:
    """`value` as JSON can hold it: numbers, strings, booleans, None, lists and string-keyed
    dicts as they are (NaN and infinity as null, numpy/torch scalars as numbers); anything else
    (a Path, a dtype, an object) as its str(). For a config given by a script."""
    if _depth > 32:
        return str(value)
    value = _clean(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, _depth + 1) for v in value]
    tolist = getattr(value, "tolist", None)  # a numpy array
    if callable(tolist):
        try:
            return json_safe(tolist(), _depth + 1)
        except (TypeError, ValueError):
            pass
    return str(value)


def init(
    name: str | None = None,
    config: dict[str, Any] | None = None,
    tags: Any = None,
    workspace: Workspace | Path | str | None = None,
    **fields: Any,
) -> MetricsWriter:
    """`trainledger.init(name=, config=, tags=, workspace=)`: start a run and return it.

    `run.log({...}, step=, epoch=)` appends rows (so does `trainledger.log`); `run.finish()`
    ends it finished. Used as `with trainledger.init(...) as run:` it ends with the block:
    finished, stopped (KeyboardInterrupt) or failed with the exception's type and message.
    Without `with` or finish(), it ends as `trainledger.log`'s run does, when the process ends.
    `config` goes to run.json (the console's config and hyperparameter columns), `tags` to
    meta.json; other keyword arguments are MetricsWriter's (model, primary_metric, directions,
    run_id). The workspace is found as `trainledger train` finds it (a new folder becomes one).
    """
    from trainledger.engines.runmeta import validate_name, validate_tag, write_meta

    tag_list = [validate_tag(t) for t in ([tags] if isinstance(tags, str) else list(tags or ()))]
    if name is not None:
        validate_name(name)
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict, not {type(config).__name__}")
    ws = workspace if isinstance(workspace, Workspace) else resolve_workspace(workspace)[0]
    if name is None:
        name = os.environ.get("TRAINLEDGER_RUN_NAME")
    writer = run(ws, name=name, config=json_safe(config or {}), **fields)
    if tag_list:
        write_meta(writer.dir, tags=tag_list)
    return writer
