"""trainledger: a terminal console and headless engines for watching model training.

This small package holds the version and the one-line logging API, so a training
script can write a run folder with `trainledger.log({...}, step=...)` without
importing the console or any heavy engine.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "log", "run"]


def log(metrics: dict[str, float], step: int | None = None, **kwargs: object) -> None:
    """Append one metrics row to the current process's run (see engines.metrics.writer)."""
    from trainledger.engines.metrics.writer import log as _log

    _log(metrics, step=step, **kwargs)


def run(workspace: object = None, **fields: object) -> object:
    """`with trainledger.run(model=..., config=...):` a run that `log` writes into and that ends
    with the block: finished, stopped (Ctrl-C) or failed with the exception (see engines.metrics.writer)."""
    from trainledger.engines.metrics.writer import run as _run

    return _run(workspace, **fields)  # type: ignore[arg-type]
