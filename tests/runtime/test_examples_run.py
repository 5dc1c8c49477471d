"""Every example in examples/ runs to its verdict: offline, and against an LLM server (the fake one).

A run ends with 0 (the criterion holds) or 3 (it does not), never with an internal error, and writes its
report; whatever the example's fields are (numbers, booleans and enums beside text)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EXAMPLES
from fake_openai import FakeOpenAI

from taskc.cli.main import main

TASK_FILES = sorted(path.relative_to(EXAMPLES) for path in EXAMPLES.rglob("*.task.yaml"))


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path / "examples"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def _ran_to_a_verdict(status: int, run_dir: Path) -> None:
    assert status in (0, 3), status
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
    assert (status == 0) == bool((metrics.get("criterion") or {}).get("passed", True))


def test_there_are_examples_to_run() -> None:
    assert len(TASK_FILES) >= 3, TASK_FILES


@pytest.mark.parametrize("task_file", TASK_FILES, ids=str)
def test_each_example_runs_offline(task_file: Path, examples: Path, no_provider: None) -> None:
    run_dir = examples.parent / "run"
    _ran_to_a_verdict(main(["run", str(examples / task_file), "-o", str(run_dir), "-q"]), run_dir)


@pytest.mark.parametrize("task_file", TASK_FILES, ids=str)
def test_each_example_runs_against_an_llm_server(task_file: Path, examples: Path, server: FakeOpenAI,
                                                  no_provider: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    run_dir = examples.parent / "run"
    status = main(["run", str(examples / task_file), "-o", str(run_dir), "-q", "--base-url", server.base_url])
    _ran_to_a_verdict(status, run_dir)


def test_a_run_through_the_model_process_writes_what_a_run_without_it_writes(
        examples: Path, no_provider: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an endpoint, `taskc run` compiles the task and fits its local models in the model process
    (runtime/model_process.py; here forced with TASKC_MODEL_PROCESS=1, since this process imported
    scikit-learn already): every file comes out the same as without it. Each run has a server of its own
    answering one call at a time, so both get the same answers."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    written = {}
    for switch in ("1", "0"):
        monkeypatch.setenv("TASKC_MODEL_PROCESS", switch)
        run_dir = examples.parent / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        server = FakeOpenAI(seed=7).start()
        try:
            status = main(["run", str(examples / "keto.task.yaml"), "-o", str(run_dir), "-q", "--base-url",
                           server.base_url, "--concurrency", "1"])
        finally:
            server.stop()
        _ran_to_a_verdict(status, run_dir)
        written[switch] = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
                           if p.is_file()}
    assert sorted(written["1"]) == sorted(written["0"]) and "model/model.joblib" in written["0"]
    differing = sorted(name for name, data in written["1"].items() if written["0"][name] != data)
    assert [name for name in differing if name != "stats.json"] == [".lock", "cache.sqlite", "history.jsonl"]  # when

    def untimed(stats: bytes) -> dict:  # stats.json says how long the calls took; all else must be the same
        return {key: value for key, value in json.loads(stats).items() if key != "seconds"}
    assert untimed(written["1"]["stats.json"]) == untimed(written["0"]["stats.json"])


LOADED_LIBRARIES = """
import sys
from taskc.cli.main import main
status = main(sys.argv[1:])
print(sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy", "lark", "jsonschema"}))
sys.exit(status)
"""


def test_an_online_run_loads_neither_the_compilers_parser_nor_scikit_learn(
        examples: Path, server: FakeOpenAI, no_provider: None) -> None:
    """With an endpoint, a fresh `taskc run` receives its compiled task and fits its model in the model process
    (runtime/model_process.py): its own process never imports the expression parser (Lark), the task file's
    schema check, scikit-learn or SciPy; nor jsonschema, while every answer passes the fast schema check."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "TASKC_MODEL"))}
    run_dir = examples.parent / "run"
    done = subprocess.run([sys.executable, "-c", LOADED_LIBRARIES, "run", str(examples / "keto.task.yaml"), "-o",
                           str(run_dir), "-q", "--base-url", server.base_url],
                          env=env | {"OPENAI_API_KEY": "sk-test"}, capture_output=True, text=True, timeout=300)
    _ran_to_a_verdict(done.returncode, run_dir)
    assert done.stdout.splitlines()[-1] == "[]", done.stderr
