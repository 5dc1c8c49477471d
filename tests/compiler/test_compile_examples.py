"""The compiled output of the shipped examples is pinned, deterministic and free of machine details."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from spec_edits import edit
from taskc.compiler.driver import compile_task, write_outputs

from taskc.cli.main import main

EXAMPLES = Path(__file__).parents[2] / "examples"
SPECS = {
    "keto": EXAMPLES / "keto.task.yaml",
    "support": EXAMPLES / "support" / "support.task.yaml",
    "custom_templates": EXAMPLES / "custom_templates" / "reviews.task.yaml",
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_compiled_output_is_pinned(name: str, snapshot) -> None:
    result = compile_task(SPECS[name])
    assert result.ok, result.diagnostics
    assert result.compiled is not None
    files = {path: data.decode("utf-8") for path, data in sorted(result.compiled.files.items())
             if path != "manifest.json"}
    assert files == snapshot
    manifest = json.loads(result.compiled.files["manifest.json"])
    assert set(manifest["outputs"]) == set(files)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_examples_have_no_diagnostics(name: str) -> None:
    assert compile_task(SPECS[name]).diagnostics == []


def _compile_in_a_fresh_process(spec: Path, out: Path, hash_seed: str) -> dict[str, bytes]:
    env = os.environ | {"PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-m", "taskc", "compile", str(spec), "-o", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_two_compiles_are_byte_identical_whatever_the_hash_seed(name: str, tmp_path: Path) -> None:
    """Two processes, each with its own string-hash seed: an output that followed the order of a set or a
    dict of strings would differ between them (one process could not tell, its seed being fixed)."""
    first = _compile_in_a_fresh_process(SPECS[name], tmp_path / "a", "1")
    second = _compile_in_a_fresh_process(SPECS[name], tmp_path / "b", "2024")
    assert first and sorted(first) == sorted(second)
    for relative, data in first.items():
        assert data == second[relative], relative


def test_output_does_not_depend_on_location_or_cwd(tmp_path: Path, monkeypatch) -> None:
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(EXAMPLES, moved)
    monkeypatch.chdir(tmp_path)
    here = compile_task(SPECS["keto"]).compiled
    there = compile_task(Path(os.path.relpath(moved / "keto.task.yaml"))).compiled
    assert here is not None and there is not None
    assert here.files == there.files
    for data in there.files.values():
        assert str(tmp_path).encode() not in data


def test_plan_jobs_are_complete_and_keys_unique() -> None:
    compiled = compile_task(SPECS["keto"]).compiled
    assert compiled is not None
    plan = json.loads(compiled.files["plan.json"])
    jobs = plan["jobs"]
    assert len({job["id"] for job in jobs}) == len(jobs) == plan["estimate"]["phases"]["generate"]["calls"]
    assert len({job["cache_key"] for job in jobs}) == len(jobs)
    calls = plan["calls"]  # every call of a run, generation first, in one shape
    assert [c["id"] for c in calls if c["phase"] == "generate"] == [job["id"] for job in jobs]
    assert {c["phase"] for c in calls} == {"generate", "label_pool", "score_gold"}
    assert len({c["cache_key"] for c in calls}) == plan["estimate"]["calls"]
    assert sum(c["cost_usd"] for c in calls) == pytest.approx(plan["estimate"]["cost_usd"], abs=1e-4)
    gold_lines = sum(1 for line in (SPECS["keto"].parent / "data/keto_gold.jsonl").read_text().splitlines() if line)
    assert plan["estimate"]["phases"]["score_gold"]["calls"] == gold_lines
    for job in jobs:
        assert job["response_format"]["type"] == "json_schema"
        assert job["prompt"] in compiled.files
        assert set(job) >= {"id", "kind", "prompt", "model", "sampling", "seed", "examples", "cache_key"}


@pytest.mark.parametrize(("old", "new"), [
    ("temperature: 0.9", "temperature: 0.7"),  # sampling
    ("  model: gpt-4o-mini\n  temperature", "  model: gpt-4o\n  temperature"),  # the model
    ("  seed: 7", "  seed: 8"),  # the seed
    ("  max_tokens: 2000", "  max_tokens: 1500"),  # sampling limits
    ("  per_call: 10", "  per_call: 9"),  # how many examples a call asks for (the prompt says it)
    ("Ingredients in lowercase, without quantities.", "Ingredients in lowercase."),  # prompt and schema text
])
def test_cache_key_changes_with_anything_that_affects_the_call(keto_v1_project: Path, old: str, new: str) -> None:
    keto_project = keto_v1_project
    before = {job.id: job.cache_key for job in compile_task(keto_project).compiled.plan}
    keto_project.write_text(edit(keto_project.read_text(encoding="utf-8"), old, new), encoding="utf-8")
    after = {job.id: job.cache_key for job in compile_task(keto_project).compiled.plan}
    assert before.keys() & after.keys()
    assert all(before[key] != after[key] for key in before.keys() & after.keys())


def test_stale_prompt_files_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "prompts" / "generate" / "gone").mkdir(parents=True)
    (out / "prompts" / "generate" / "gone" / "old.md").write_text("stale")
    write_outputs(compile_task(SPECS["keto"]).compiled.files, out)
    assert not (out / "prompts" / "generate" / "gone" / "old.md").exists()


def test_template_code_in_spec_text_comes_out_literally(keto_v1_project: Path) -> None:
    keto_project = keto_v1_project
    hostile = "Sugar {{ ''.__class__.__mro__ }} and {% for x in range(10**9) %}x{% endfor %} {# c #}"
    text = edit(keto_project.read_text(encoding="utf-8"),
                "text: Sugar, honey and syrups are pure carbohydrate, even in a glaze or dressing.",
                f"text: \"{hostile}\"")
    keto_project.write_text(text, encoding="utf-8")
    compiled = compile_task(keto_project).compiled
    assert compiled is not None
    prompt = compiled.files["prompts/generate/not_keto/added_sugar.md"].decode()
    assert hostile in prompt
    assert hostile in compiled.files["prompts/classify.md"].decode()


def test_compile_summary_prints_calls_and_marked_estimate(tmp_path: Path, capsys) -> None:
    assert main(["compile", str(SPECS["keto"]), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    compiled = compile_task(SPECS["keto"]).compiled
    assert compiled is not None and f"{compiled.estimate.calls} LLM calls" in out
    assert f"generation: {len(compiled.plan)} calls" in out and "pool labeling: " in out and "gold scoring: " in out
    assert "ESTIMATE" in out and "$" in out and "with --batch" in out


def test_price_table_override(tmp_path: Path, capsys) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"gpt-4o-mini": {"input": 1000.0, "output": 1000.0}}))
    assert main(["compile", str(SPECS["keto"]), "-o", str(tmp_path / "out"), "--prices", str(prices)]) == 0
    out = capsys.readouterr().out
    cost = float(out.split("~$")[1].split()[0])
    assert cost > 10


def test_calls_of_one_cell_send_different_messages() -> None:
    """Identical messages make a model repeat its examples: every call of a cell has its own number and focus,
    and the first call's messages are the cell's prompt as it always was (no call line at all)."""
    from taskc.compiler.generation_calls import call_indices, job_messages

    compiled = compile_task(SPECS["keto"]).compiled
    assert compiled is not None
    messages = job_messages(compiled.plan, compiled.prompts)
    assert len({json.dumps(m) for m in messages}) == len(compiled.plan)
    for job, call, sent in zip(compiled.plan, call_indices(compiled.plan), messages, strict=True):
        prompt = compiled.prompts[job.prompt]
        assert sent[0] == prompt.as_chat()[0]  # one system message per cell
        assert ("This is call" in sent[1]["content"]) == (call > 0)
        if call:
            assert f"This is call {call + 1} for this class" in sent[1]["content"]
            assert f"## user (call {call + 1})" in compiled.files[job.prompt].decode()
