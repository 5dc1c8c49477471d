"""The compiled task is the contract between compiler and runtime: typed configs, rendered to files last."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from taskc.compiler.driver import compile_task
from taskc.compiler.plan import EvalConfig, FinetuneConfig

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
    for source in sorted((ROOT / "runtime").glob("*.py")) + sorted((ROOT / "taskc" / "cli").glob("*.py")):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            assert not indexed.search(line), f"{source.name}:{number} indexes an emitted config: {line.strip()}"
