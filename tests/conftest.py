"""Shared fixtures: where the examples are, the test tree on sys.path (for fake_openai), the compiled keto
task, and a run with no provider configured."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from taskc.compiler.driver import CompiledTask

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
EXAMPLES = ROOT / "examples"

# the shared helpers here, and the test modules of every stage's folder, which import each other's helpers
for folder in (TESTS, *(TESTS / stage for stage in ("spec", "compiler", "runtime", "cli", "review", "architecture"))):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from test_runtime_fixtures import compiled_keto  # noqa: E402 - needs the test tree on sys.path


@pytest.fixture
def keto_project(tmp_path: Path) -> Path:
    """A private copy of the keto example (task file and data) that a test may edit."""
    target = tmp_path / "keto"
    target.mkdir()
    shutil.copy(EXAMPLES / "keto.task.yaml", target / "keto.task.yaml")
    shutil.copytree(EXAMPLES / "data", target / "data")
    return target / "keto.task.yaml"


@pytest.fixture
def keto_v1_project(tmp_path: Path) -> Path:
    """A private copy of the frozen keto task (tests/fixtures/keto_v1.task.yaml) with the example's data, for
    tests that edit known lines of a task file."""
    target = tmp_path / "keto_v1"
    target.mkdir()
    shutil.copy(TESTS / "fixtures" / "keto_v1.task.yaml", target / "keto.task.yaml")
    shutil.copytree(EXAMPLES / "data", target / "data")
    return target / "keto.task.yaml"


@pytest.fixture(scope="module")
def keto(tmp_path_factory: pytest.TempPathFactory) -> CompiledTask:
    """The keto task compiled once per module, with small data files (see test_runtime_fixtures)."""
    return compiled_keto(tmp_path_factory.mktemp("keto"))


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OPENAI_API_KEY or OPENAI_BASE_URL from the environment the tests run in."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
