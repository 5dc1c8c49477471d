"""One plan for every call (issue #14): what `taskc compile` and `taskc diff` promise is what a run does.

Each test compiles a task, runs it with the real command against the fake OpenAI
server, and holds the plan's count and price of calls to what the server counted
and what the run was charged (the server reports usage as the run's provider
would). The server here answers a generation call with as many examples as the
prompt asks for, as a model does; everything else is its schema-valid default.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, default_content
from fake_openai.server import SchemaInstance, follow_asked_class
from taskc.compiler.call_plan import LABEL_POOL, SCORE_FINETUNED, SCORE_GOLD, open_pool_items, read_plan_items
from taskc.compiler.driver import CompiledTask, compile_task
from taskc.runtime import labeling
from taskc.runtime.datafiles import read_pool
from test_run_cli import _project
from test_run_provider_faults import _fast_provider  # noqa: F401 - the autouse fixture: short retries and polls

from taskc.cli.main import main

CHAT = "POST /v1/chat/completions"
PER_CALL = 10
TOLERANCE = 0.10  # the estimate counts ~4 characters a token; the server counts its own way


def _responder(body: dict) -> dict | str:
    """Generation calls get as many examples as they ask for, labelled with their cell's class (an off-target
    example is rejected, and the plan counts the examples a compliant server gives); classification calls
    the server's default."""
    schema = body["response_format"]["json_schema"]
    if schema["name"] != "generated_examples":
        return default_content(body)
    wanted = copy.deepcopy(schema["schema"])
    wanted["properties"]["examples"] |= {"minItems": PER_CALL, "maxItems": PER_CALL}
    seed = hashlib.sha256(json.dumps([body["messages"], body.get("seed")]).encode()).digest()
    return follow_asked_class(body, json.dumps(SchemaInstance(wanted, random.Random(seed)).value(wanted)))


def _spec(root: Path, extra: str = "") -> Path:
    spec = _project(root)
    spec.write_text(spec.read_text(encoding="utf-8").replace(
        "  model: gpt-4o-mini\n", f"  model: gpt-4o-mini\n  per_call: {PER_CALL}\n") + extra, encoding="utf-8")
    return spec


def _compiled(spec: Path) -> CompiledTask:
    result = compile_task(spec)
    assert result.compiled is not None, [d.message for d in result.diagnostics]
    return result.compiled


def _run(spec: Path, run_dir: Path, server: FakeOpenAI, *options: str) -> tuple[int, dict[str, Any]]:
    status = main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, "-q", *options])
    return status, json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["llm"]


def _spent(llm: dict[str, Any]) -> float:
    return sum(llm[phase]["cost_usd"] for phase in ("generation", "pool_labeling", "prompted_baseline",
                                                    "finetuned_eval") if phase in llm)


def test_the_estimate_counts_every_call_the_run_makes_and_prices_it(tmp_path: Path) -> None:
    spec = _spec(tmp_path / "project")
    compiled = _compiled(spec)
    estimate = compiled.estimate
    assert set(estimate.phases) == {"generate", "label_pool", "score_gold"}
    with FakeOpenAI(responder=_responder) as server:
        status, llm = _run(spec, tmp_path / "run", server)
        counted = server.stats.snapshot()["by_endpoint"]
    assert status in (0, 3)
    assert counted == {CHAT: estimate.calls}  # every request the run sent, and nothing else, was planned
    assert llm["generation"]["calls_made"] == estimate.phases["generate"].calls
    assert llm["pool_labeling"]["requests"] == estimate.phases["label_pool"].calls == 2  # one silent, one conflict
    assert llm["prompted_baseline"]["requests"] == estimate.phases["score_gold"].calls == 9
    assert estimate.cost_usd == pytest.approx(_spent(llm), rel=TOLERANCE)
    plan = json.loads(compiled.files["plan.json"])
    assert Counter(call["phase"] for call in plan["calls"]) == {
        phase: item.calls for phase, item in estimate.phases.items()}


def test_diff_counts_and_prices_exactly_the_calls_a_rerun_makes(tmp_path: Path, capsys: Any) -> None:
    spec = _spec(tmp_path / "project")
    old = tmp_path / "old.task.yaml"
    old.write_text(spec.read_text(encoding="utf-8"), encoding="utf-8")
    with FakeOpenAI(responder=_responder) as server:
        _run(spec, tmp_path / "run", server)
        before = server.stats.snapshot()["by_endpoint"][CHAT]
        # a rationale's text: its generation cell, and every classification (their prompt holds every rationale)
        text = spec.read_text(encoding="utf-8")
        spec.write_text(text.replace("Praise words mean the reviewer liked it.",
                                     "Words of praise mean the reviewer liked it."), encoding="utf-8")
        (tmp_path / "data").mkdir()
        for name in ("pool.jsonl", "gold.jsonl"):  # the old version's data, where its relative paths lead
            (tmp_path / "data" / name).write_bytes((spec.parent / "data" / name).read_bytes())
        capsys.readouterr()
        assert main(["diff", str(old), str(spec), "--format", "json"]) == 1
        plan = json.loads(capsys.readouterr().out)["plan"]
        _, llm = _run(spec, tmp_path / "run", server)
        rerun = server.stats.snapshot()["by_endpoint"][CHAT] - before
    assert plan["new_by_phase"] == {"generate": 2, "label_pool": 2, "score_gold": 9}
    assert plan["every_classification"] is True
    assert rerun == plan["new_calls"] == 13
    assert plan["new_cost_usd"] == pytest.approx(_spent(llm), rel=TOLERANCE)
    assert llm["generation"]["calls_cached"] == plan["after"]["calls_by_phase"]["generate"] - 2


def test_a_rule_edit_replans_only_the_pool_items_whose_openness_it_changes(tmp_path: Path, capsys: Any) -> None:
    spec = _spec(tmp_path / "new")
    old = _spec(tmp_path / "old")
    spec.write_text(spec.read_text(encoding="utf-8").replace("good|great|lovely|tasty", "good|great|lovely|tasty|say"),
                    encoding="utf-8")
    assert main(["diff", str(old), str(spec), "--format", "json"]) == 1
    plan = json.loads(capsys.readouterr().out)["plan"]
    # "nothing to say" is now labeled by a rule; no prompt changed, so no other call is new
    assert plan["new_calls"] == 0 and plan["dropped_calls"] == 1
    assert plan["after"]["calls_by_phase"]["label_pool"] == plan["before"]["calls_by_phase"]["label_pool"] - 1


def test_the_compiler_plans_the_pool_items_the_rules_leave_open_as_the_runtime_sees_them(keto_project: Path) -> None:
    compiled = _compiled(keto_project)
    task = compiled.ir
    assert task.pool is not None
    records = read_pool(keto_project.parent / task.pool.path, task, limit=task.pool.limit).records
    functions = labeling.labeling_functions(task)
    votes = labeling.RuleVoter(task, functions).votes(labeling.rule_environments(task, records)).votes
    silent = (votes == labeling.ABSTAIN).all(axis=1)
    runtime_open = [r.line for r, quiet, conflict in zip(records, silent, labeling.items_in_conflict(votes),
                                                         strict=True) if quiet or conflict]
    planned = [call.line for call in compiled.calls.phase(LABEL_POOL)]
    assert planned == runtime_open and 0 < len(planned) < len(records)
    items = read_plan_items(task, task.pool.path, labeled=False, limit=task.pool.limit)
    assert items is not None and [(i.line, i.values) for i in items] == [(r.line, r.values) for r in records]
    assert [i.line for i in open_pool_items(task, items)] == planned


def test_batch_makes_every_phase_through_the_batch_api_at_the_batch_price(tmp_path: Path) -> None:
    spec = _spec(tmp_path / "project")
    estimate = _compiled(spec).estimate
    with FakeOpenAI(responder=_responder, batch_polls_to_finish=1) as server:
        _, llm = _run(spec, tmp_path / "run", server, "--batch")
        counted = server.stats.snapshot()["by_endpoint"]
        lines = sum(len(server.file_data[b["input_file_id"]].splitlines()) for b in server.batches.values())
    assert CHAT not in counted  # nothing went online at full price
    assert lines == estimate.calls and counted["POST /v1/batches"] == 3  # generation, pool labeling, gold scoring
    assert llm["pool_labeling"]["batch"] and llm["prompted_baseline"]["batch"]
    assert estimate.batch_cost_usd == pytest.approx(_spent(llm), rel=TOLERANCE)


def test_max_cost_prints_how_far_the_calls_in_flight_can_pass_it(tmp_path: Path, capsys: Any) -> None:
    spec = _spec(tmp_path / "project")
    with FakeOpenAI(responder=_responder) as server:
        main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "--max-cost", "0.5",
              "--concurrency", "4", "--json"])
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "--max-cost $0.5" in line)
    assert "up to 4, --concurrency" in line and "the dearest planned call at its max_tokens" in line
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))["llm"]["budget"]
    # the dearest call is a classification (200 max_tokens) or a generation call (no max_tokens): priced as planned
    assert summary["in_flight"] == 4 and summary["overshoot_bound_usd"] == pytest.approx(
        4 * summary["largest_call_usd"], rel=1e-2)
    assert summary["largest_call_usd"] > 0


FINETUNE = "finetune:\n  provider: openai\n"


def test_the_finetuned_models_calls_are_planned_and_priced_with_its_training(tmp_path: Path) -> None:
    compiled = _compiled(_spec(tmp_path / "project", FINETUNE))
    scored = compiled.calls.phase(SCORE_FINETUNED)
    assert [c.line for c in scored] == [c.line for c in compiled.calls.phase(SCORE_GOLD)]
    assert all(c.when == "--finetune" and c.cache_key is None for c in scored)
    finetune = compiled.estimate.finetune
    assert finetune is not None and finetune["scoring"]["calls"] == 9
    training = finetune["training"]
    assert training["epochs"] == 3 and training["examples"] == 36  # 40 generated, a tenth held out
    assert training["training_tokens"] > 0 and training["cost_usd"] is not None
    assert compiled.estimate.calls == 4 + 2 + 9  # the fine-tuned model's calls need --finetune


def test_finetune_waits_no_longer_than_its_bound_and_a_rerun_resumes_the_same_job(tmp_path: Path) -> None:
    spec = _spec(tmp_path / "project", FINETUNE)
    with FakeOpenAI(responder=_responder, finetune_polls_to_finish=10_000) as server:
        _, llm = _run(spec, tmp_path / "run", server, "--finetune", "--finetune-max-wait", "0.05")
        assert llm["finetune"]["timed_out"] and llm["finetune"]["status"] in ("queued", "running")
        notes = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))["notes"]
        assert any("--finetune-max-wait" in note and "no second job" in note for note in notes)
        server.finetune_polls_to_finish = 1
        before = server.stats.snapshot()["by_endpoint"][CHAT]
        _, llm = _run(spec, tmp_path / "run", server, "--finetune", "--finetune-max-wait", "60")
        counted = server.stats.snapshot()["by_endpoint"]
    assert counted["POST /v1/fine_tuning/jobs"] == 1 and len(server.jobs) == 1  # resumed, not started again
    assert llm["finetune"]["status"] == "succeeded" and "timed_out" not in llm["finetune"]
    assert counted[CHAT] - before == llm["finetuned_eval"]["requests"] == 9  # only the fine-tuned model's calls


def test_the_embeddings_students_requests_are_counted_and_priced(tmp_path: Path) -> None:
    spec = _spec(tmp_path / "project", "finetune:\n  provider: embeddings\n  inputs_per_request: 8\n")
    estimate = _compiled(spec).estimate
    assert estimate.embeddings is not None and estimate.phases["embed"].calls == estimate.embeddings["requests"]
    with FakeOpenAI(responder=_responder) as server:
        _, llm = _run(spec, tmp_path / "run", server)
        counted = server.stats.snapshot()["by_endpoint"]
        texts = len(server.embedded_texts)
    assert counted == {CHAT: estimate.calls - estimate.embeddings["requests"],
                       "POST /v1/embeddings": estimate.embeddings["requests"]}
    assert texts <= estimate.embeddings["texts"] <= texts * 1.1  # each text once; the estimate is an upper one
    assert llm["embeddings"]["requests"] == estimate.phases["embed"].calls


def test_a_gold_override_is_planned_by_the_same_planner(tmp_path: Path) -> None:
    spec = _spec(tmp_path / "project")
    other = tmp_path / "other_gold.jsonl"
    other.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                             for t, lab in (("good soup", "pos"), ("cold tea", "neg"), ("good soup", "pos"))))
    with FakeOpenAI(responder=_responder) as server:
        _, llm = _run(spec, tmp_path / "run", server, "--gold", str(other))
    assert llm["prompted_baseline"]["calls_planned"] == 3
    assert llm["prompted_baseline"]["requests"] == 2  # the repeated item is asked once


def test_plan_json_is_identical_across_compiles(tmp_path: Path) -> None:
    spec = _spec(tmp_path / "project", FINETUNE)
    first, second = _compiled(spec), _compiled(spec)
    assert first.files["plan.json"] == second.files["plan.json"]
    calls = json.loads(first.files["plan.json"])["calls"]
    assert [c["id"] for c in calls] == [c.id for c in first.calls.calls]
    assert all(dataclasses.is_dataclass(c) for c in first.calls.calls)


def test_the_plan_holds_each_distinct_message_once(tmp_path: Path) -> None:
    # every generation call sends the same system message: one object, so a compiled task that crosses to
    # another process (the model process compiles it) pickles that text once, not once per call
    calls = _compiled(_spec(tmp_path / "project")).calls.calls
    texts = [message["content"] for call in calls for message in call.messages]
    assert len(calls) > 1 and len({id(text) for text in texts}) == len(set(texts)) < len(texts)


def test_a_task_compiled_without_its_call_plan_is_not_run_with_a_provider(tmp_path: Path) -> None:
    from taskc.compiler.diagnostics import TaskcError
    from taskc.runtime.options import EndpointOptions, PathOptions, PresentationOptions, RunOptions
    from taskc.runtime.pipeline import run

    spec = _spec(tmp_path / "project")
    result = compile_task(spec, plan_data=False)
    assert result.compiled is not None and not result.compiled.calls.complete
    assert {call.phase for call in result.compiled.calls.calls} == {"generate"}
    with FakeOpenAI(responder=_responder) as server:
        with pytest.raises(TaskcError, match="without its call plan"):
            run(result.compiled, RunOptions(PathOptions(tmp_path / "run"), EndpointOptions(base_url=server.base_url),
                                            presentation=PresentationOptions(quiet=True)))
        assert server.stats.snapshot()["total"] == 0  # refused before any call
