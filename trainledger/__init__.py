"""trainledger: a terminal console and headless engines for watching model training.

This small package holds the version and the one-line logging API, so a training
script can write a run folder with `trainledger.log({...}, step=...)` without
importing the console or any heavy engine.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "log"]


def log(metrics: dict[str, float], step: int | None = None, **kwargs: object) -> None:
    """Append one metrics row to the current process's run (see engines.metrics.writer)."""
    from trainledger.engines.metrics.writer import log as _log

    _log(metrics, step=step, **kwargs)
