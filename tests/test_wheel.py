"""The wheel holds every package: built, installed non-editable into a fresh venv, and run.

CI's suite runs against the editable install, where a package missing from pyproject's
list still imports from the checkout. These tests build the real wheel and run the
console from it, so a new `engines/<x>/` that pyproject does not name fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOPS = {"trainledger": "trainledger", "console": "trainledger.console",
        "engines": "trainledger.engines", "themes": "trainledger.themes"}  # fmt: skip


def _tree_packages() -> set[str]:
    found = set()
    for folder, name in TOPS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    return found


def test_pyproject_lists_every_package_in_the_tree() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    tree = _tree_packages()
    assert tree - listed == set(), "packages in the tree that the wheel would leave out"
    assert listed - tree == set(), "packages pyproject names that do not exist"
    assert config["package-dir"] == {v: k for k, v in TOPS.items()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the tracked and new files: setuptools' build/ folder in the
    # checkout would carry modules deleted since the last build into the wheel.
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True, timeout=60,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("trainledger-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_every_package_and_the_styles(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    folders = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert folders == _tree_packages()
    for tcss in (ROOT / "themes").glob("*.tcss"):
        assert f"trainledger/themes/{tcss.name}" in names
    modules = {n for n in names if n.endswith(".py")}
    for folder, name in TOPS.items():
        for py in (ROOT / folder).rglob("*.py"):
            rel = py.relative_to(ROOT / folder)
            assert "/".join([*name.split("."), *rel.parts]) in modules, f"{py} is not in the wheel"


@pytest.mark.slow
def test_the_installed_wheel_runs_the_console(wheel: Path, tmp_path: Path) -> None:
    """Non-editable, in a venv of its own; the dependencies come from this test's environment."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    site = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())  # fmt: skip
    # A path entry, not a site dir: this environment's .pth files (the editable install's
    # finder among them) are not run, so trainledger can only come from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")

    where = subprocess.run(
        [str(python), "-c", "import trainledger.console.app as a, trainledger.themes as t; "
         "print(a.__file__); print(t.CSS_PATH.is_file())"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    path, css = where.stdout.split()
    assert Path(path).is_relative_to(site) and css == "True"

    script = env_dir / "bin" / "trainledger"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=120)  # fmt: skip
    assert version.returncode == 0 and version.stdout.startswith("trainledger ")
    demo = subprocess.run(
        [str(script), "demo", "--workspace", str(tmp_path / "demo"), "--headless-seconds", "5"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "runs: 1" in demo.stdout and "capture:" in demo.stdout
