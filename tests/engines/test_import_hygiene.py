"""Engines never load Textual or the console; the console never loads torch.

Each check runs in a fresh interpreter so indirect imports are caught too.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import trainledger.engines as engines_pkg


def _modules(package) -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")
    )


def _loaded_after_import(module: str, watched: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {watched!r} "
        f"or any(m.startswith(w + '.') or m == w for w in {watched!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


ENGINE_MODULES = _modules(engines_pkg)


def test_engine_modules_found() -> None:
    assert "trainledger.engines.workspace" in ENGINE_MODULES
    assert "trainledger.engines.metrics.writer" in ENGINE_MODULES


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_never_loads_textual_or_console(module: str) -> None:
    loaded = _loaded_after_import(module, ("textual", "trainledger.console"))
    assert loaded == [], f"{module} loaded {loaded}"


@pytest.mark.parametrize(
    "module",
    ["trainledger.console.app", "trainledger.console.cli", "trainledger", "trainledger.console.summary"],
)
def test_console_never_loads_torch(module: str) -> None:
    loaded = _loaded_after_import(module, ("torch", "mlx"))
    assert loaded == [], f"{module} loaded {loaded}"
