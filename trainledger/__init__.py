"""trainledger: a terminal console and headless engines for watching model training.

This small package holds the version and the logging API, so a training script can
write a run folder with `trainledger.log({...}, step=...)` or
`with trainledger.init(name=..., config=..., tags=...) as run: run.log(...)` without
importing the console or any heavy engine.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "init", "log", "run"]


def log(metrics: dict[str, float], step: int | None = None, **kwargs: object) -> None:
    """Append one metrics row to the current process's run (see engines.metrics.writer)."""
    from trainledger.engines.metrics.writer import log as _log

    _log(metrics, step=step, **kwargs)


def init(
    name: str | None = None,
    config: dict[str, object] | None = None,
    tags: object = None,
    workspace: object = None,
    **fields: object,
) -> object:
    """`run = trainledger.init(name=..., config={...}, tags=[...])`: a new run to `run.log({...}, step=...)`
    into and `run.finish()`; `with trainledger.init(...) as run:` ends it with the block, failed with
    the exception if the block raises (see engines.metrics.writer.init)."""
    from trainledger.engines.metrics.writer import init as _init

    return _init(name=name, config=config, tags=tags, workspace=workspace, **fields)  # type: ignore[arg-type]


def run(workspace: object = None, **fields: object) -> object:
    """`with trainledger.run(model=..., config=...):` a run that `log` writes into and that ends
    with the block: finished, stopped (Ctrl-C) or failed with the exception (see engines.metrics.writer)."""
    from trainledger.engines.metrics.writer import run as _run

    return _run(workspace, **fields)  # type: ignore[arg-type]
