"""Fixtures shared by the engine tests: a fresh workspace, and reading JSONL back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainledger.engines.workspace import Workspace, init_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws")


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
