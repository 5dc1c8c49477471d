"""The embeddings student's requests are calls of the plan (issue #13 item 2, issue #14 item 1).

With `finetune.provider: embeddings`, plan.json lists every `/v1/embeddings`
request a run sends: `embed/pool/*` and `embed/gold/*` with the texts known at
compile time (pool items and their field views, gold items, each text once),
and `embed/examples/*` for the examples of named generation calls. Each test
compiles a two-field task, runs it against the fake server and holds the run's
requests to the plan's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, default_content
from fake_openai.server import SchemaInstance, follow_asked_class
from taskc.compiler import EMBED, builtin_prices, embedded_text, field_view_values, largest_call_cost
from taskc.compiler.driver import CompiledTask, compile_task
from test_run_provider_faults import _fast_provider  # noqa: F401 - the autouse fixture: short retries and polls
from test_runtime_fixtures import write_jsonl

from taskc.cli.main import main

EMBEDDINGS = "POST /v1/embeddings"
PER_CALL = 3

SPEC = """\
taskc: 1
task:
  name: dishes
  description: Is a dish keto?
input:
  dish: {type: string, description: The dish's name.}
  ingredients: {type: "list[string]", description: What goes in it.}
classes:
  keto: {description: Low in carbohydrate.}
  not_keto: {description: Not low in carbohydrate.}
rationales:
  - id: starch
    class: not_keto
    text: Bread, pasta and rice are starch.
    rule: any(ingredients, i -> matches(lower(i), "\\\\b(bread|pasta|rice)\\\\b"))
  - id: fat
    class: keto
    text: Eggs and cheese are keto.
    rule: any(ingredients, i -> matches(lower(i), "\\\\b(eggs?|cheese)\\\\b"))
pool:
  path: data/pool.jsonl
generate:
  model: gpt-4o-mini
  per_call: PER_CALL
  per_rationale: 6
  per_class: 3
  near_misses: 0
finetune:
  provider: embeddings
  inputs_per_request: PER_REQUEST
eval:
  gold: data/gold.jsonl
  pass: accuracy >= 0.5
  split: {test_fraction: 0}
"""

POOL = [{"dish": "Omelette", "ingredients": ["eggs", "cheese"]}, {"dish": "Risotto", "ingredients": ["rice"]},
        {"dish": "Toast", "ingredients": ["bread", "butter"]}, {"dish": "Salad", "ingredients": []},
        {"dish": "Steak", "ingredients": ["beef", "salt"]}]
GOLD = [{"dish": "Frittata", "ingredients": ["eggs", "spinach"], "label": "keto"},
        {"dish": "Omelette", "ingredients": ["eggs", "cheese"], "label": "keto"},  # a pool text: embedded once
        {"dish": "Lasagne", "ingredients": ["pasta", "beef"], "label": "not_keto"}]


def _responder(body: dict) -> dict | str:
    """Generation calls get as many examples as they ask for, in their cell's class; the rest the default."""
    schema = body["response_format"]["json_schema"] if "response_format" in body else None
    if schema is None or schema["name"] != "generated_examples":
        return default_content(body)
    wanted = copy.deepcopy(schema["schema"])
    wanted["properties"]["examples"] |= {"minItems": PER_CALL, "maxItems": PER_CALL}
    seed = hashlib.sha256(json.dumps([body["messages"], body.get("seed")]).encode()).digest()
    return follow_asked_class(body, json.dumps(SchemaInstance(wanted, random.Random(seed)).value(wanted)))


def _project(root: Path, per_request: int = 8) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "dishes.task.yaml"
    spec.write_text(SPEC.replace("PER_CALL", str(PER_CALL)).replace("PER_REQUEST", str(per_request)),
                    encoding="utf-8")
    write_jsonl(root / "data" / "pool.jsonl", POOL)
    write_jsonl(root / "data" / "gold.jsonl", GOLD)
    return spec


def _compiled(spec: Path) -> CompiledTask:
    result = compile_task(spec)
    assert result.compiled is not None, [d.message for d in result.diagnostics]
    return result.compiled


def _run(spec: Path, run_dir: Path, server: FakeOpenAI, *options: str) -> dict[str, Any]:
    assert main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, "-q", *options]) in (0, 1)
    return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["llm"]


def _embedding_requests(server: FakeOpenAI) -> list[tuple[str, ...]]:
    return [tuple(body["input"]) for _, path, _, body in server.requests if path.endswith("/embeddings")]


def test_plan_json_lists_the_pool_and_gold_texts_each_once_and_the_examples_by_their_generation_calls(
        tmp_path: Path) -> None:
    compiled = _compiled(_project(tmp_path, per_request=8))
    task = compiled.ir
    calls = compiled.calls.phase(EMBED)
    pool = [c for c in calls if c.id.startswith("embed/pool/")]
    gold = [c for c in calls if c.id.startswith("embed/gold/")]
    examples = [c for c in calls if c.id.startswith("embed/examples/")]
    pool_texts = [t for c in pool for t in c.inputs]
    wanted: dict[str, None] = {}
    for item in POOL:  # each item, then its field views (an item with two filled text fields has two)
        wanted.setdefault(embedded_text(task, item))
        for view in field_view_values(task, item):
            wanted.setdefault(embedded_text(task, view))
    assert pool_texts == list(wanted) and len(pool_texts) == 5 + 2 * 4
    assert [len(c.inputs) for c in pool] == [8, 5]  # inputs_per_request texts a request
    assert [t for c in gold for t in c.inputs] == ["Frittata | eggs | spinach", "Lasagne | pasta | beef"]
    # three examples a generation call, each with two field views: 9 texts, so a request holds no more
    # than 8 of them and every generation call is split into two parts
    generation = compiled.calls.phase("generate")
    assert [(c.examples_of, c.part, c.texts) for c in examples] == [
        ((g.id,), part, texts) for g in generation for part, texts in ((0, 8), (1, 1))]
    plan = json.loads(compiled.files["plan.json"])
    listed = [c for c in plan["calls"] if c["phase"] == "embed"]
    assert [c["id"] for c in listed] == [c.id for c in calls]
    assert listed[-1]["examples_of"] == [generation[-1].id] and listed[-1]["part"] == 1
    assert all(c["seed"] is None and c["tokens"]["output"] == 0 and c["cost_usd"] > 0 for c in listed)
    assert compiled.estimate.phases["embed"].calls == len(calls) == compiled.estimate.embeddings["requests"]


def test_examples_of_several_generation_calls_share_a_request_when_their_texts_fit(tmp_path: Path) -> None:
    compiled = _compiled(_project(tmp_path, per_request=20))
    examples = [c for c in compiled.calls.phase(EMBED) if c.examples_of]
    generation = [g.id for g in compiled.calls.phase("generate")]
    assert all(len(c.examples_of) == 2 and c.texts == 18 for c in examples[:-1])  # 2 × 9 texts fit in 20
    assert [job for c in examples for job in c.examples_of] == generation


def test_a_run_sends_the_planned_requests_and_a_rerun_none(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project", per_request=8)
    compiled = _compiled(spec)
    planned = compiled.calls.phase(EMBED)
    with FakeOpenAI(responder=_responder) as server:
        llm = _run(spec, tmp_path / "run", server)
        sent = _embedding_requests(server)
        again = _run(spec, tmp_path / "run", server)
        assert _embedding_requests(server) == sent  # the rerun read every vector from the run's cache
    known = {tuple(c.inputs) for c in planned if c.inputs}
    assert known <= set(sent)  # the pool's and the gold set's requests, exactly as planned
    assert len(sent) == server.stats.snapshot()["by_endpoint"][EMBEDDINGS] <= len(planned)
    assert len(sent) >= len(known) + len(compiled.calls.phase("generate"))  # a part 0 for every call's examples
    assert len({t for r in sent for t in r}) == sum(map(len, sent))  # each text once
    assert llm["embeddings"]["requests"] == len(sent) and llm["embeddings"]["unplanned_requests"] == 0
    assert llm["embeddings"]["calls_planned"] == len(planned)
    assert again["embeddings"]["requests"] == 0
    # a fresh run fetched every vector itself; the rerun found each text's vector in the cache, counted once
    assert llm["embeddings"]["vectors_cached"] == 0
    assert again["embeddings"]["vectors_cached"] == len({t for r in sent for t in r})
    # what the examples' requests sent are the accepted examples' texts, each with its field views
    accepted = [json.loads(line) for line in (tmp_path / "run" / "examples.jsonl").read_text().splitlines()]
    task = compiled.ir
    texts = {embedded_text(task, v) for e in accepted for v in (e, *field_view_values(task, e))}
    assert {t for r in sent for t in r} == {t for c in planned for t in c.inputs} | texts


def test_a_rationale_edit_reaches_the_embeddings_of_its_generation_calls_only(tmp_path: Path, capsys: Any) -> None:
    spec = _project(tmp_path / "project", per_request=8)
    old = tmp_path / "old.task.yaml"
    old.write_text(spec.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "data").mkdir()
    for name in ("pool.jsonl", "gold.jsonl"):  # the old version's data, where its relative paths lead
        (tmp_path / "data" / name).write_bytes((spec.parent / "data" / name).read_bytes())
    spec.write_text(spec.read_text(encoding="utf-8").replace("Eggs and cheese are keto.",
                                                             "Eggs and cheese are fat, so keto."), encoding="utf-8")
    capsys.readouterr()
    assert main(["diff", str(old), str(spec), "--format", "json"]) == 1
    delta = json.loads(capsys.readouterr().out)["plan"]
    old_calls, new_calls = _compiled(old).calls, _compiled(spec).calls
    changed = {g.id for g in new_calls.phase("generate")} - {
        g.id for g, h in zip(new_calls.phase("generate"), old_calls.phase("generate"), strict=True)
        if g.cache_key == h.cache_key}
    reached = [c for c in new_calls.phase(EMBED) if set(c.examples_of) & changed]
    assert changed and reached and delta["new_by_phase"]["embed"] == len(reached)  # the pool's and gold's: kept
    assert Counter(c.id.split("/")[1] for c in reached) == {"examples": len(reached)}


def test_a_model_override_prices_the_chat_calls_only(tmp_path: Path) -> None:
    calls = _compiled(_project(tmp_path)).calls.phase(EMBED)
    prices = builtin_prices()
    assert largest_call_cost(calls, prices, "a-model-with-no-price") == largest_call_cost(calls, prices) > 0


def test_a_gold_override_plans_its_own_requests(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project", per_request=8)
    other = tmp_path / "other_gold.jsonl"
    write_jsonl(other, [{"dish": "Porridge", "ingredients": ["oats", "milk"], "label": "not_keto"},
                        {"dish": "Toast", "ingredients": ["bread", "butter"], "label": "not_keto"}])  # a pool text
    with FakeOpenAI(responder=_responder) as server:
        llm = _run(spec, tmp_path / "run", server, "--gold", str(other))
        sent = _embedding_requests(server)
    assert ("Porridge | oats | milk",) in sent and llm["embeddings"]["unplanned_requests"] == 0
    assert not any("Frittata | eggs | spinach" in r for r in sent)  # the task's own gold set is not embedded


def test_the_embeddings_requests_show_their_progress_as_a_phase_of_calls(tmp_path: Path, capsys: Any) -> None:
    spec = _project(tmp_path / "project", per_request=8)
    with FakeOpenAI(responder=_responder) as server:
        assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url,
                     "--format", "json"]) in (0, 3)
        sent = len(_embedding_requests(server))
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    done = [e for e in events if e["event"] == "done" and (e["phase"], e["step"]) == ("training", "embeddings")]
    assert len(done) == 1 and done[0]["done"] == done[0]["total"] == sent
    assert done[0]["accepted"] is None and done[0]["input_tokens"] > 0  # vectors are not examples to accept


def test_with_batch_the_embeddings_requests_go_through_the_batch_api_at_half_price(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project", per_request=8)
    with FakeOpenAI(responder=_responder) as server:
        llm = _run(spec, tmp_path / "run", server, "--batch")
        online = server.stats.snapshot()["by_endpoint"].get(EMBEDDINGS, 0)
        batches = [b for b in server.batches.values() if b["endpoint"] == "/v1/embeddings"]
        lines = [json.loads(line) for b in batches for line in server.file_data[b["input_file_id"]].splitlines()]
        again = _run(spec, tmp_path / "run", server, "--batch")
        after = [b for b in server.batches.values() if b["endpoint"] == "/v1/embeddings"]
    assert online == 0 and len(batches) == 1  # no online request: one batch of the planned requests
    planned = _compiled(spec).calls.phase(EMBED)
    known = {tuple(c.inputs) for c in planned if c.inputs}
    assert known <= {tuple(line["body"]["input"]) for line in lines} and len(lines) <= len(planned)
    assert all(line["url"] == "/v1/embeddings" for line in lines)
    embeddings = llm["embeddings"]
    assert embeddings["requests"] == len(lines) and embeddings["unplanned_requests"] == 0
    per_token = builtin_prices()["text-embedding-3-small"][0] / 1_000_000
    assert embeddings["cost_usd"] == pytest.approx(embeddings["input_tokens"] * per_token * 0.5, abs=5e-7)  # rounded
    assert embeddings["cost_usd"] > 0 and "finetuned" in json.loads(
        (tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))["predictors"]
    assert after == batches and again["embeddings"]["requests"] == 0  # the rerun found every vector cached


def test_a_text_outside_the_plan_is_embedded_under_the_phase_under_way(tmp_path: Path) -> None:
    import io

    from taskc.runtime.embeddings import Embedder
    from taskc.runtime.progress import GOLD_SCORING, JsonProgress
    from taskc.runtime.provider import ProviderSettings

    shown = io.StringIO()
    reporter = JsonProgress(shown, interval=0)
    with FakeOpenAI(responder=_responder) as server:
        embed = Embedder(ProviderSettings(base_url=server.base_url, api_key="sk-test", max_retries=0),
                         "text-embedding-3-small", per_request=2, reporter=reporter)
        reporter.phase_start(GOLD_SCORING, "3 items")
        vectors = embed(["Frittata", "Porridge", "Pancakes"])
        reporter.phase_done(GOLD_SCORING)
    events = [json.loads(line) for line in shown.getvalue().splitlines()]
    calls = [(e["event"], e["phase"], e["step"]) for e in events if e["event"] in ("progress", "done")]
    assert vectors.shape[0] == 3 and embed.unplanned_requests == 2
    assert calls and set(calls) <= {("progress", "gold scoring", "embeddings"), ("done", "gold scoring", "embeddings")}
