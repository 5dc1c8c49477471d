"""Generated examples are checked against their cell: against a sloppy generator (the fake server's
off_target, empty_strings and repeats faults) every bad example is rejected with its reason, counted by
reason and by cell in stats.json, and the calls of a cell no longer send the same messages."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Faults
from taskc.compiler.driver import CompiledTask
from taskc.runtime.datasets import read_jsonl
from taskc.runtime.generation import GenerationOptions, load_generated_examples, run_generation
from taskc.runtime.validate import ExampleValidator
from test_runtime_fixtures import settings_for

QUIET = GenerationOptions(quiet=True)


def _stats(run_dir: Path) -> dict:
    return json.loads((run_dir / "stats.json").read_text(encoding="utf-8"))


def test_a_compliant_server_gives_on_target_examples(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        summary = run_generation(keto, tmp_path, settings_for(server), QUIET)
    stats = _stats(tmp_path)
    assert summary.accepted > 0
    assert not any(reason.startswith(("label:", "empty:")) for reason in stats["rejects_by_reason"])
    jobs = {job.id: job for job in keto.plan}
    assert all(e["label"] == jobs[e["provenance"]["job"]].target_class for e in load_generated_examples(tmp_path))


def test_off_target_labels_are_rejected_with_their_reason_and_cell(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(faults=Faults(off_target=1.0)) as server:
        summary = run_generation(keto, tmp_path, settings_for(server), QUIET)
    assert summary.accepted == 0 and summary.rejected > 0
    stats = _stats(tmp_path)
    # field checks come first (the fake's ingredient lists can be too long); every other example is off target
    assert set(stats["rejects_by_reason"]) <= {"label:off_target", "field:ingredients"}
    off_target = stats["rejects_by_reason"]["label:off_target"]
    assert off_target > 0
    cells = {f"{job.target_class}/{job.rationale or '_class'}" for job in keto.plan}
    assert set(stats["by_cell"]) == cells
    assert sum(c.get("label:off_target", 0) for c in stats["by_cell"].values()) == off_target
    rejected = read_jsonl(tmp_path / "rejected.jsonl")
    first = next(r for r in rejected if r["reason"]["id"] == "off_target")
    assert first["reason"]["id"] == "off_target" and first["example"]["label"] != first["provenance"]["target_class"]
    assert f"asked for examples of '{first['provenance']['target_class']}'" in first["reason"]["message"]


def test_empty_strings_are_rejected_unless_the_field_allows_them(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(faults=Faults(empty_strings=1.0)) as server:
        summary = run_generation(keto, tmp_path, settings_for(server), QUIET)
    stats = _stats(tmp_path)
    assert summary.accepted == 0 and set(stats["rejects_by_reason"]) <= {"empty:dish", "field:ingredients"}
    assert stats["rejects_by_reason"]["empty:dish"] > 0
    validator = ExampleValidator(keto.ir)
    blank_item = validator.check({"dish": "Omelette", "ingredients": ["eggs", "cream", " "], "label": "keto"})
    assert blank_item is not None and blank_item.reason == "empty:ingredients"
    allowing = dataclasses.replace(keto.ir.fields[0], min_length=0)
    task = dataclasses.replace(keto.ir, fields=(allowing, *keto.ir.fields[1:]))
    assert ExampleValidator(task).check({"dish": "", "ingredients": ["eggs", "cream"], "label": "keto"}) is None


def test_repeated_examples_are_counted_as_duplicates(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(faults=Faults(repeats=1.0)) as server:
        summary = run_generation(keto, tmp_path, settings_for(server), QUIET)
    stats = _stats(tmp_path)
    # every call answers the same examples: only the first call of each class can add new ones
    assert summary.duplicates > summary.accepted > 0
    assert stats["examples"]["duplicates"] == summary.duplicates == sum(stats["duplicates"].values())
    assert sum(c.get("duplicate", 0) for c in stats["by_cell"].values()) == summary.duplicates


@pytest.mark.parametrize("kind", ["off_target", "empty_strings", "repeats"])
def test_a_sloppy_answer_still_follows_the_schema(kind: str, keto: CompiledTask, tmp_path: Path) -> None:
    """The faults are content a strict schema cannot stop: only the runtime's own checks catch them."""
    import jsonschema

    schema = keto.plan[0].response_format["json_schema"]["schema"]
    with FakeOpenAI(faults=Faults(**{kind: 1.0})) as server:
        run_generation(keto, tmp_path, settings_for(server), QUIET)
        bodies = [body for method, path, _, body in server.requests if path.endswith("/chat/completions")]
    assert bodies
    from taskc.runtime.cache import ResponseCache
    from taskc.runtime.generation import planned_calls

    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        record = cache.get(planned_calls(keto)[0].cache_key)
    assert record is not None
    jsonschema.validate(record["content"], schema)


def test_rule_disagreements_are_counted_by_rationale(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        run_generation(keto, tmp_path, settings_for(server), QUIET)
    stats = _stats(tmp_path)
    disagreeing = [e for e in load_generated_examples(tmp_path) if e["rules"]["agrees"] is False]
    assert stats["rule_agreement"].get("disagree", 0) == len(disagreeing)
    expected: dict[str, int] = {}
    for example in disagreeing:
        for rationale, voted in zip(example["rules"]["fired"], example["rules"]["votes"], strict=True):
            if voted != example["label"]:
                expected[rationale] = expected.get(rationale, 0) + 1
    assert stats["rule_disagreements"] == dict(sorted(expected.items()))
    assert sum(c.get("rule_disagrees", 0) for c in stats["by_cell"].values()) == len(disagreeing)


def test_the_summary_carries_the_accepted_examples_as_examples_jsonl_holds_them(keto: CompiledTask,
                                                                                 tmp_path: Path) -> None:
    """The run's next stage takes them from the summary: nothing is read back from the file just written."""
    with FakeOpenAI() as server:
        summary = run_generation(keto, tmp_path, settings_for(server), QUIET)
    assert summary.examples and list(summary.examples) == load_generated_examples(tmp_path)
    assert "examples" not in summary.to_json() and summary.to_json()["accepted"] == len(summary.examples)
