"""The compiled task is the contract between compiler and runtime: typed configs, rendered to files last."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from taskc.compiler.configs import EvalConfig, FinetuneConfig
from taskc.compiler.driver import compile_task, dump_ir

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [ROOT / "examples" / "keto.task.yaml", ROOT / "examples" / "support" / "support.task.yaml",
            ROOT / "examples" / "custom_templates" / "reviews.task.yaml"]


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_config_files_are_rendered_from_the_typed_configs(spec: Path) -> None:
    compiled = compile_task(spec).compiled
    assert compiled is not None
    assert isinstance(compiled.finetune, FinetuneConfig) and isinstance(compiled.eval, EvalConfig)
    assert json.loads(compiled.files["finetune.json"]) == compiled.finetune.to_json()
    assert json.loads(compiled.files["eval.json"]) == compiled.eval.to_json()
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.finetune.system_message = "changed"  # type: ignore[misc]
    rendered = compiled.finetune.to_json()
    rendered["classes"].append("x")
    if "job" in rendered:
        rendered["job"]["seed"] = -1
    assert compiled.finetune.to_json() != rendered  # a rendering is a copy: the config stays as compiled


def test_the_runtime_reads_the_configs_fields_not_emitted_dicts() -> None:
    indexed = re.compile(r"\.(finetune|eval)\[\"")
    for source in sorted((ROOT / "runtime").rglob("*.py")) + sorted((ROOT / "taskc" / "cli").glob("*.py")):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            assert not indexed.search(line), f"{source.name}:{number} indexes an emitted config: {line.strip()}"


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_compiled_task_is_frozen_and_its_collections_read_only(spec: Path) -> None:
    compiled = compile_task(spec).compiled
    assert compiled is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.plan = ()  # type: ignore[misc]
    assert isinstance(compiled.plan, tuple) and isinstance(compiled.calls.calls, tuple)
    some_prompt = next(iter(compiled.prompts))
    for mapping, key in ((compiled.prompts, some_prompt), (compiled.context, "task"),
                         (compiled.input_hashes, spec.name), (compiled.files, "plan.json")):
        assert key in mapping
        with pytest.raises(TypeError):
            mapping[key] = mapping[key]  # type: ignore[index]
    assert compiled.files is compiled.files  # rendered once, on first use
    assert json.loads(compiled.files["manifest.json"])["inputs"] == dict(compiled.input_hashes)


def test_the_data_paths_are_resolved_once_in_lowering_and_carried_in_the_ir() -> None:
    spec = EXAMPLES[0]
    task = compile_task(spec).compiled.ir  # type: ignore[union-attr]
    assert task.pool is not None and task.eval is not None
    for relative in (task.pool.path, task.eval.gold):
        assert task.data_path(relative) == (spec.parent / relative).resolve()
    assert set(task.resolved_files) >= {task.pool.path, task.eval.gold}
    dumped = dump_ir(task)
    assert "resolved_files" not in dumped and not any(path in dumped for path in task.resolved_files.values())
    callers = sorted(str(path.relative_to(ROOT)) for folder in ("compiler", "runtime", "taskc")
                     for path in (ROOT / folder).rglob("*.py")
                     if "resolve_project_path(" in path.read_text(encoding="utf-8"))
    assert callers == ["compiler/lowering.py", "compiler/paths.py"]  # paths.py defines it
