"""Shared fixtures: where the examples are, and the test tree on sys.path (for fake_openai)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
EXAMPLES = ROOT / "examples"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture
def keto_project(tmp_path: Path) -> Path:
    """A private copy of the keto example (task file and data) that a test may edit."""
    target = tmp_path / "keto"
    target.mkdir()
    shutil.copy(EXAMPLES / "keto.task.yaml", target / "keto.task.yaml")
    shutil.copytree(EXAMPLES / "data", target / "data")
    return target / "keto.task.yaml"
