"""The local model in a process of its own (`model_process`): the same model as fitting here, and nothing lost
when the process is."""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import EXAMPLES
from taskc.compiler.driver import CompiledTask, compile_task
from taskc.runtime import labeling, local_model, model_process, model_process_spawn
from taskc.runtime.features import ItemBatch, item_batch
from taskc.runtime.local_model import LocalModelError, TrainingExample
from taskc.runtime.model_process import ModelProcess, RemoteModel

GOLD = EXAMPLES / "data" / "keto_gold.jsonl"


@pytest.fixture(scope="module")
def process() -> Iterator[ModelProcess]:
    started = ModelProcess.start()
    assert started is not None
    yield started


def _data(keto: CompiledTask, rows: int = 60) -> tuple[list[labeling.LabelingFunction], ItemBatch,
                                                        list[TrainingExample]]:
    records = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()[:rows]]
    task = keto.ir
    functions = labeling.labeling_functions(task)
    examples = [TrainingExample({k: v for k, v in r.items() if k != "label"}, r["label"], "generated",
                                1.0 + (i % 3) / 2) for i, r in enumerate(records)]
    return functions, item_batch(task, functions, [e.values for e in examples]), examples


def _saved(model: local_model.LocalModel, directory: Path, examples: list[TrainingExample],
           spec_hash: str) -> dict[str, bytes]:
    model.save(directory, model.describe(examples, spec_hash))
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_model_fitted_in_the_process_is_the_model_fitted_here(keto: CompiledTask, process: ModelProcess,
                                                                  tmp_path: Path) -> None:
    functions, batch, examples = _data(keto)
    here = local_model.train(keto.ir, functions, batch, examples)
    there = process.train(keto.ir, functions, batch, examples)
    assert isinstance(there, RemoteModel) and not there.fitted_here
    assert there.fit_warnings_ == here.fit_warnings_ == ()
    assert np.array_equal(there.predict_proba(batch), here.predict_proba(batch))
    assert there.predict(batch) == here.predict(batch)
    assert there.strongest_features() == here.strongest_features()
    assert there.feature_groups() == here.feature_groups()
    assert _saved(there, tmp_path / "there", examples, "h") == _saved(here, tmp_path / "here", examples, "h")
    assert not hasattr(there, "classifier_")  # the fitted state lives in the child only


def test_an_empty_batch_gets_an_empty_answer(keto: CompiledTask, process: ModelProcess) -> None:
    functions, batch, examples = _data(keto)
    model = process.train(keto.ir, functions, batch, examples)
    empty = ItemBatch((), np.zeros((0, len(functions)), dtype=np.int64))
    assert model.predict_proba(empty).shape == (0, len(keto.ir.class_names)) and model.predict(empty) == []


def test_what_fitting_refuses_is_refused_the_same_way(keto: CompiledTask, process: ModelProcess) -> None:
    functions, batch, examples = _data(keto)
    keto_only = [e for e in examples if e.label == "keto"]
    only = item_batch(keto.ir, functions, [e.values for e in keto_only])
    with pytest.raises(LocalModelError) as here:
        local_model.train(keto.ir, functions, only, keto_only)
    with pytest.raises(LocalModelError) as there:
        process.train(keto.ir, functions, only, keto_only)
    assert str(there.value) == str(here.value) and "only 'keto'" in str(here.value)
    assert process.alive  # a refusal is an answer, not a failure


def test_a_process_that_dies_leaves_the_model_to_this_process(keto: CompiledTask, tmp_path: Path) -> None:
    functions, batch, examples = _data(keto)
    doomed = ModelProcess.start()
    assert doomed is not None
    model = doomed.train(keto.ir, functions, batch, examples)
    doomed._child.kill()  # e.g. the machine ran out of memory
    doomed._child.wait()
    here = local_model.train(keto.ir, functions, batch, examples)
    assert np.array_equal(model.predict_proba(batch), here.predict_proba(batch))
    assert isinstance(model, RemoteModel) and model.fitted_here and not doomed.alive
    assert _saved(model, tmp_path / "a", examples, "h") == _saved(here, tmp_path / "b", examples, "h")


def test_a_process_that_cannot_start_leaves_training_here(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    monkeypatch.setenv(model_process.ENVIRONMENT_SWITCH, "1")
    monkeypatch.setattr(model_process, "_early", None)  # none left by an earlier test's run
    assert ModelProcess.start() is None
    assert model_process.trainer() is local_model.train


@pytest.mark.parametrize("finds", ["no taskc", "another copy of taskc"])
def test_an_interpreter_without_this_taskc_leaves_training_here_without_a_word(
        finds: str, keto: CompiledTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    if finds == "no taskc":  # the interpreter without its site-packages, as a zipapp's or an embedder's may be
        python = tmp_path / "python"
        python.write_text(f"#!/bin/sh\nexec '{sys.executable}' -S \"$@\"\n", encoding="utf-8")
        python.chmod(0o755)
        monkeypatch.setattr(sys, "executable", str(python))
    else:  # e.g. an older taskc installed beside the source checkout that is running
        monkeypatch.setattr(model_process_spawn, "MODEL_PROCESS_FILE", str(tmp_path / "elsewhere" / "model_process.py"))
    started = ModelProcess.start()
    assert started is not None
    functions, batch, examples = _data(keto)
    model = started.train(keto.ir, functions, batch, examples)
    assert isinstance(model, RemoteModel) and model.fitted_here and not started.alive
    assert model.predict(batch) == local_model.train(keto.ir, functions, batch, examples).predict(batch)
    assert started._child.wait() == 3 and capfd.readouterr().err == ""


def test_data_that_cannot_be_sent_is_fitted_here(keto: CompiledTask, process: ModelProcess) -> None:
    functions, batch, examples = _data(keto, rows=20)
    odd = ItemBatch(tuple({**v, "note": lambda: None} for v in batch.values), batch.votes)  # no pickle for that
    model = process.train(keto.ir, functions, odd, examples)
    assert isinstance(model, RemoteModel) and model.fitted_here
    assert model.predict(batch) == local_model.train(keto.ir, functions, batch, examples).predict(batch)
    assert process.alive  # nothing was sent: the process is still fine for the next model


@pytest.mark.parametrize(("switch", "expected"), [("0", False), ("1", True), ("", False)])
def test_the_process_is_started_where_it_pays(switch: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Here scikit-learn is imported already, so without the switch a child would only cost a start."""
    monkeypatch.setenv(model_process.ENVIRONMENT_SWITCH, switch)
    assert "sklearn" in sys.modules
    assert model_process.worth_starting() is expected


# -- compiling in the model process (`taskc run` with an endpoint) ------------------------------------------

def _same_compile(here: Any, there: Any) -> None:
    assert there.diagnostics == here.diagnostics and there.sources == here.sources
    if here.compiled is None:
        assert there.compiled is None
        return
    a, b = here.compiled, there.compiled
    assert (b.ir, b.prompts, b.plan, b.calls, b.estimate, b.files) == (a.ir, a.prompts, a.plan, a.calls, a.estimate,
                                                                       a.files)
    values = {"dish": "Cauliflower rice", "ingredients": ["cauliflower", "butter"]}
    fields = [f.name for f in a.ir.fields]
    item = {name: values.get(name, "x") for name in fields}
    assert b.classification_messages(item) == a.classification_messages(item)  # its templates compiled again


@pytest.mark.parametrize("spec", ["keto.task.yaml", "custom_templates/reviews.task.yaml"])
def test_a_task_compiled_in_the_process_is_the_task_compiled_here(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = EXAMPLES / spec
    monkeypatch.setenv(model_process.ENVIRONMENT_SWITCH, "1")
    monkeypatch.setattr(model_process, "_early", None)
    model_process.start_early(path, plan_data=True)
    early = model_process._early
    assert early is not None and early.compiling is not None
    there = model_process.compiled(path, plan_data=True)
    assert early.compiling is None  # the child's answer was read, not compiled again here
    _same_compile(compile_task(path, plan_data=True), there)
    assert model_process.trainer().__self__ is early  # type: ignore[attr-defined]  # then it fits the models


def test_a_task_with_errors_gets_the_same_diagnostics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "bad.task.yaml"
    spec.write_text("taskc: 1\ntask:\n  name: bad\nclasses: [one]\n", encoding="utf-8")
    monkeypatch.setenv(model_process.ENVIRONMENT_SWITCH, "1")
    monkeypatch.setattr(model_process, "_early", None)
    model_process.start_early(spec)
    there = model_process.compiled(spec)
    assert there.diagnostics and there.compiled is None
    _same_compile(compile_task(spec), there)


def test_other_arguments_or_no_process_compile_here(keto: CompiledTask, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    path = EXAMPLES / "keto.task.yaml"
    monkeypatch.setenv(model_process.ENVIRONMENT_SWITCH, "1")
    monkeypatch.setattr(model_process, "_early", None)
    model_process.start_early(path, plan_data=True)
    early = model_process._early
    assert early is not None
    _same_compile(compile_task(path, plan_data=False), model_process.compiled(path, plan_data=False))
    assert early.compiling is not None  # not what the child was asked: compiled here, the answer left unread
    functions, batch, examples = _data(keto)
    model = model_process.trainer()(keto.ir, functions, batch, examples)  # the unread answer is skipped
    assert isinstance(model, RemoteModel) and not model.fitted_here and early.compiling is None
    assert model.predict(batch) == local_model.train(keto.ir, functions, batch, examples).predict(batch)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    model_process.start_early(path)
    assert model_process._early is None
    _same_compile(compile_task(path), model_process.compiled(path))


def test_templates_survive_a_pickle(keto: CompiledTask) -> None:
    again = pickle.loads(pickle.dumps(keto.templates))
    assert not again.templates._compiled  # type: ignore[attr-defined]  # compiled at a first render, if any
    context = {**keto.context, "input_json": "{}"}
    assert again.render("classification", dict(context)) == keto.templates.render("classification", dict(context))
    assert again.sources == keto.templates.sources and set(again.sources) == {"generation", "classification"}


# -- the interpreter spawned first thing (model_process_spawn) --------------------------------------------------

EARLY_SPAWN = """
import os, sys
from taskc.runtime import model_process_spawn
from taskc.runtime.model_process import ModelProcess
model_process_spawn.spawn_early()
early = model_process_spawn._spawned.pid
if sys.argv[1] == "adopt":
    started = ModelProcess.start()
    print(early, started._child.pid)
else:  # nobody adopts it: it is stopped at exit
    print(early)
"""


def _pid_is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("then", ["adopt", "exit"])
def test_the_interpreter_spawned_early_is_the_one_the_run_uses_or_is_stopped_at_exit(then: str) -> None:
    import subprocess

    env = {**__import__("os").environ, model_process_spawn.ENVIRONMENT_SWITCH: "1"}
    done = subprocess.run([sys.executable, "-c", EARLY_SPAWN, then], capture_output=True, text=True, env=env,
                          timeout=120, check=True)
    pids = [int(pid) for pid in done.stdout.split()]
    if then == "adopt":
        assert pids[0] == pids[1]
    assert not _pid_is_running(pids[0]) and done.stderr == ""


def test_an_early_interpreter_that_died_is_replaced(monkeypatch: pytest.MonkeyPatch, keto: CompiledTask) -> None:
    monkeypatch.setenv(model_process.ENVIRONMENT_SWITCH, "1")
    model_process_spawn.spawn_early()
    dead = model_process_spawn._spawned
    assert dead is not None
    dead.kill()
    dead.wait()
    started = ModelProcess.start()
    assert started is not None and started._child is not dead and started.alive
    functions, batch, examples = _data(keto, rows=20)
    assert not started.train(keto.ir, functions, batch, examples).fitted_here
