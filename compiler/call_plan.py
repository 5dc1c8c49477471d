"""Emitter: every LLM call a run makes, as one `LLMCall` shape, and what they cost together.

The generation plan (`plan.build_plan`) fixes the generation calls; this module
adds the calls that depend on data, which the compiler knows as well as the
runtime does: the pool items the rules leave open (no rule fires, or the rules
that fire name two classes) are classified by the LLM, every gold item is
scored by the prompted LLM, and with `taskc run --finetune` (finetune.provider:
openai) by the fine-tuned model too. The pool and gold files are read here
(leniently: the run's own reader reports a bad line, located, before any call),
the rules are evaluated with the compiler's evaluator, and each call gets its
messages and cache key, so the runtime executes exactly these calls and
`taskc compile` / `taskc diff` count and price them all, with the embeddings
student's requests (`embedding_calls`).

A call's cache key hashes its model, messages, sampling, seed and response
schema, and nothing else: an edit reaches exactly the calls whose prompt it
changes. The classification prompt holds every rationale (and the response
schema lists their ids), so an edit of any rationale's text reaches every
classification call; a rule edit changes which pool items are open.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import ir
from .embedding_calls import embedding_calls, embedding_model
from .expr_eval import ExpressionEvaluationError
from .generation_calls import job_messages
from .hashing import call_cache_key, canonical_json, sha256_hex
from .llm_call import (
    EMBED,
    GENERATE,
    LABEL_POOL,
    PHASE_TITLES,
    PHASES,
    SCORE_FINETUNED,
    SCORE_GOLD,
    CallPlan,
    LLMCall,
    PlanItem,
)
from .paths import open_regular_file
from .plan import GenerationJob
from .pricing import (
    CHARS_PER_TOKEN,
    TOKENS_PER_EXAMPLE_FIELD,
    CostEstimate,
    PriceTable,
    builtin_prices,
    call_cost,
    training_price,
)
from .prompts import RenderedPrompt
from .response_formats import label_only_format

CLASSIFICATION_SAMPLING: dict[str, Any] = {"temperature": 0.0, "max_tokens": 200}  # 0 keeps reruns comparable
FINETUNED_MODEL = "<the fine-tuned model>"  # its name is known once the job has succeeded
DEFAULT_EPOCHS = 3  # what "auto" epochs come to on a small dataset; estimates only
BATCH_PRICE_FACTOR = 0.5  # the Batch API bills half the online price
_MAX_PLAN_LINE_BYTES = 1 << 20  # as the run's reader: a longer line is an error there, skipped here


# -- reading the data the plan depends on ----------------------------------------------------------

def read_plan_items(task: ir.TaskIR, relative: str, *, labeled: bool, limit: int | None = None
                    ) -> tuple[PlanItem, ...] | None:
    """The items of a pool or gold file, or None when it cannot be read (the run reports why, located).

    Lenient where the run is strict: a line that is no JSON object is skipped here and is an error of the
    run, before it makes any call; on a file the run accepts, both see the same items on the same lines."""
    try:
        stream = open_regular_file(task.data_path(relative))
    except (KeyError, OSError):  # KeyError: lowering did not resolve it (it reported why)
        return None
    items: list[PlanItem] = []
    names = [f.name for f in task.fields]
    with stream:
        for number, raw in enumerate(iter(lambda: stream.readline(_MAX_PLAN_LINE_BYTES + 1), b""), 1):
            if limit is not None and len(items) >= limit:
                break
            try:
                text = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
                value = json.loads(text.removeprefix("\ufeff") if number == 1 else text) if text.strip() else None
            except (UnicodeDecodeError, ValueError, RecursionError):
                continue
            if not isinstance(value, dict):
                continue
            values = {name: value[name] for name in names if value.get(name) is not None}
            label = value.get("label") if labeled and isinstance(value.get("label"), str) else None
            try:  # a lone surrogate ("\ud800" in the JSON) is an error of the run's reader: skipped here
                json.dumps([values, label], ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                continue
            items.append(PlanItem(number, values, label))
    return tuple(items)


def open_pool_items(task: ir.TaskIR, items: Sequence[PlanItem]) -> list[PlanItem]:
    """The pool items the LLM labels: no rule fires on them, or the rules that fire name two classes."""
    lexicons = task.lexicon_words()
    rules = [(r.class_name, r.rule.evaluator(lexicons)) for r in task.rationales
             if r.rule is not None and r.rule.node is not None]
    key = _rule_key(task)
    memo: dict[Any, bool] = {}
    chosen = []
    for item in items:
        env = {f.name: item.values.get(f.name) for f in task.fields}
        memo_key = None
        if key is not None:
            try:
                memo_key = key(env)
            except (TypeError, ValueError, KeyError, ExpressionEvaluationError):
                memo_key = None
        is_open = memo.get(memo_key) if memo_key is not None else None
        if is_open is None:
            is_open = _open(rules, env)
            if memo_key is not None and len(memo) < 1 << 16:
                memo[memo_key] = is_open
        if is_open:
            chosen.append(item)
    return chosen


def _rule_key(task: ir.TaskIR) -> Callable[[Mapping[str, Any]], Any] | None:
    from .rule_key import rule_key

    nodes = [r.rule.node for r in task.rationales if r.rule is not None and r.rule.node is not None]
    if not nodes:
        return None
    return rule_key(nodes, {f.name: f.type for f in task.fields}, task.lexicon_words())


def _open(rules: Sequence[tuple[str, Callable[[Mapping[str, Any]], Any]]], env: Mapping[str, Any]) -> bool:
    voted: set[str] = set()
    for class_name, holds in rules:
        try:
            if holds(env):
                voted.add(class_name)
        except ExpressionEvaluationError:
            continue  # a rule that fails on an item abstains on it, as in the run
    return len(voted) != 1


# -- the calls ---------------------------------------------------------------------------------------

def estimate_input_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    return sum(len(m.get("content") or "") for m in messages) // CHARS_PER_TOKEN


def classification_output_tokens(task: ir.TaskIR) -> int:
    """A classification answer: the label and the one rationale a typical answer cites."""
    label = max(task.class_names, key=len)
    cited = [max((r.id for r in task.rationales), key=len)] if task.rationales else []
    return -(-len(canonical_json({"label": label, "rationales": cited})) // CHARS_PER_TOKEN)


def classification_call(task: ir.TaskIR, phase: str, item: PlanItem, messages: list[dict[str, str]],
                        response_format: dict[str, Any], model: str | None = None) -> LLMCall:
    """The call that classifies one item; ``model`` replaces the task's (taskc run --model)."""
    model = model or task.generate.model
    seed = task.generate.seed
    sampling = dict(CLASSIFICATION_SAMPLING)
    return LLMCall(id=f"{phase}/{item.line:06d}", phase=phase, model=model,
                   cache_key=call_cache_key(model, messages, sampling, seed, response_format),
                   messages_sha256=sha256_hex(canonical_json(messages)), sampling=sampling, seed=seed,
                   input_tokens=estimate_input_tokens(messages), output_tokens=classification_output_tokens(task),
                   line=item.line, messages=tuple(messages), response_format=response_format)


def finetuned_call(task: ir.TaskIR, item: PlanItem, messages: list[dict[str, str]], base_model: str) -> LLMCall:
    """The fine-tuned model's answer on one gold item; its cache key is made once the model has a name."""
    seed = task.generate.seed
    return LLMCall(id=f"{SCORE_FINETUNED}/{item.line:06d}", phase=SCORE_FINETUNED, model=FINETUNED_MODEL,
                   cache_key=None, messages_sha256=sha256_hex(canonical_json(messages)),
                   sampling=dict(CLASSIFICATION_SAMPLING), seed=seed, priced_as=base_model,
                   input_tokens=estimate_input_tokens(messages),
                   output_tokens=-(-len(canonical_json({"label": max(task.class_names, key=len)})) // CHARS_PER_TOKEN),
                   line=item.line, when="--finetune", messages=tuple(messages),
                   response_format=label_only_format(task.class_names))


SAMPLE_ITEMS = 2000  # of the pool and gold set, for the size of an example


def example_output_tokens(task: ir.TaskIR, items: Sequence[PlanItem]) -> int:
    """The tokens of one generated example: as many as the task's own items take as JSON (a generated
    example should look like them), with a label; without data, TOKENS_PER_EXAMPLE_FIELD per field."""
    if not items:
        return TOKENS_PER_EXAMPLE_FIELD * (len(task.fields) + 1)
    sample = items[:SAMPLE_ITEMS]
    label = max(task.class_names, key=len)
    chars = sum(len(json.dumps({**{f.name: item.values[f.name] for f in task.fields if f.name in item.values},
                                "label": label}, ensure_ascii=False)) for item in sample)
    return max(1, -(-chars // (len(sample) * CHARS_PER_TOKEN)))


def generation_calls(task: ir.TaskIR, jobs: Sequence[GenerationJob], prompts: Mapping[str, RenderedPrompt],
                     per_example: int | None = None) -> list[LLMCall]:
    per_example = per_example or TOKENS_PER_EXAMPLE_FIELD * (len(task.fields) + 1)
    calls = []
    for job, messages in zip(jobs, job_messages(jobs, prompts), strict=True):  # each call's own messages
        calls.append(LLMCall(
            id=job.id, phase=GENERATE, model=job.model, cache_key=job.cache_key,
            messages_sha256=sha256_hex(canonical_json(messages)), sampling=job.sampling(), seed=job.seed,
            input_tokens=estimate_input_tokens(messages) + len(canonical_json(job.response_format)) // CHARS_PER_TOKEN,
            output_tokens=job.examples * per_example, messages=tuple(messages), response_format=job.response_format))
    return calls


def build_call_plan(task: ir.TaskIR, jobs: Sequence[GenerationJob], prompts: Mapping[str, RenderedPrompt],
                    classification_messages: Callable[[dict[str, Any]], list[dict[str, str]]],
                    training_messages: Callable[[dict[str, Any], str], list[dict[str, str]]],
                    classification_format: dict[str, Any], *, read_data: bool = True) -> CallPlan:
    problems: list[str] = []
    pool = gold = None
    if not read_data:
        return CallPlan(tuple(generation_calls(task, jobs, prompts)), None, None, complete=False)
    if task.pool is not None:
        pool = read_plan_items(task, task.pool.path, labeled=False, limit=task.pool.limit)
        if pool is None:
            problems.append(f"{task.pool.path} could not be read, so pool labeling is not planned")
    if task.eval is not None:
        gold = read_plan_items(task, task.eval.gold, labeled=True)
        if gold is None:
            problems.append(f"{task.eval.gold} could not be read, so gold scoring is not planned")
    calls = generation_calls(task, jobs, prompts, example_output_tokens(task, [*(gold or ()), *(pool or ())]))
    if pool is not None:
        calls += [classification_call(task, LABEL_POOL, item, classification_messages(item.values),
                                      classification_format) for item in open_pool_items(task, pool)]
    base_model = None
    if task.finetune.provider == "openai":
        base_model = task.finetune.base_model or task.generate.model
    if gold is not None:
        calls += gold_calls(task, gold, classification_messages, training_messages, classification_format,
                            base_model)
    calls += embedding_calls(task, pool, gold, jobs)
    return CallPlan(tuple(calls), None if pool is None else len(pool), None if gold is None else len(gold),
                    base_model, tuple(problems))


def gold_calls(task: ir.TaskIR, gold: Sequence[PlanItem],
               classification_messages: Callable[[dict[str, Any]], list[dict[str, str]]],
               training_messages: Callable[[dict[str, Any], str], list[dict[str, str]]],
               classification_format: dict[str, Any], base_model: str | None,
               model: str | None = None) -> list[LLMCall]:
    """The prompted LLM on every gold item, and (finetune.provider: openai) the fine-tuned model."""
    calls = [classification_call(task, SCORE_GOLD, item, classification_messages(item.values),
                                 classification_format, model) for item in gold]
    if base_model is not None:
        calls += [finetuned_call(task, item, training_messages(item.values, item.label or "")[:2], base_model)
                  for item in gold]
    return calls


@dataclass(frozen=True)
class PhaseEstimate:
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6)}


def unique_calls(calls: Sequence[LLMCall]) -> list[LLMCall]:
    """The calls that reach the provider: a second call with the same cache key is answered by the cache."""
    seen: set[str] = set()
    kept = []
    for call in calls:
        key = call.cache_key or call.id
        if key not in seen:
            seen.add(key)
            kept.append(call)
    return kept


def phase_estimate(calls: Sequence[LLMCall], prices: PriceTable) -> PhaseEstimate:
    cost: float | None = 0.0
    for call in calls:
        one = call.cost(prices)
        cost = None if one is None or cost is None else cost + one
    return PhaseEstimate(len(calls), sum(c.input_tokens for c in calls), sum(c.output_tokens for c in calls), cost)


def finetune_training_estimate(task: ir.TaskIR, examples: int, system_message: str) -> dict[str, Any] | None:
    """The hosted fine-tune's training tokens (train.jsonl × epochs) and their price; None without one."""
    if task.finetune.provider != "openai":
        return None
    model = task.finetune.base_model or task.generate.model
    epochs = task.finetune.epochs or DEFAULT_EPOCHS
    train = math.floor(examples * (1 - task.finetune.validation_split))
    per_example = (3 + 3 * 4 + -(-len(system_message) // CHARS_PER_TOKEN)
                   + TOKENS_PER_EXAMPLE_FIELD * len(task.fields) + 2)
    tokens = train * per_example * epochs
    price = training_price(model)
    return {"model": model, "examples": train, "epochs": epochs, "epochs_given": task.finetune.epochs is not None,
            "training_tokens": tokens, "usd_per_1m_training_tokens": price,
            "cost_usd": None if price is None else round(tokens * price / 1_000_000, 6)}


def embeddings_summary(task: ir.TaskIR, calls: Sequence[LLMCall], prices: PriceTable) -> dict[str, Any] | None:
    """The embeddings student's requests together: texts at most, requests, tokens and their price."""
    if task.finetune.provider != "embeddings":
        return None
    planned = phase_estimate(calls, prices)
    cost = None if planned.cost_usd is None else round(planned.cost_usd, 6)
    return {"model": embedding_model(task), "texts": sum(call.texts for call in calls), "requests": planned.calls,
            "tokens": planned.input_tokens, "cost_usd": cost,
            "note": "at most: every text once (pool items and their field views, the gold set, the generated "
                    "examples and their field views), cached by content"}


__all__ = ["BATCH_PRICE_FACTOR", "CLASSIFICATION_SAMPLING", "CallPlan", "EMBED", "FINETUNED_MODEL", "GENERATE",
           "LABEL_POOL", "LLMCall", "PHASES", "PHASE_TITLES", "PhaseEstimate", "PlanItem", "SCORE_FINETUNED",
           "SCORE_GOLD", "build_call_plan", "classification_call", "embeddings_summary", "estimate_run",
           "finetune_training_estimate", "gold_calls", "largest_call_cost", "open_pool_items",
           "phase_estimate", "read_plan_items", "unique_calls"]


# -- the estimate of a whole run ------------------------------------------------------------------

def estimate_run(task: ir.TaskIR, plan: CallPlan, examples: int, system_message: str,
                 prices: PriceTable | None = None) -> CostEstimate:
    """Every call a run makes with a provider (the fine-tuned model's, which need --finetune, apart),
    online and through the Batch API, plus the fine-tune's training and the embeddings student."""
    table = {**builtin_prices(), **dict(task.generate.prices), **(prices or {})}
    always = unique_calls([call for call in plan.calls if call.when is None])
    phases = {name: phase_estimate([c for c in always if c.phase == name], table)
              for name in PHASES if any(c.phase == name for c in always)}
    total = phase_estimate(always, table)
    finetune = None
    if plan.finetune_base_model is not None:
        scored = phase_estimate(list(plan.phase(SCORE_FINETUNED)), table)
        finetune = {"when": "--finetune", "scoring": scored.to_json(),
                    "training": finetune_training_estimate(task, examples, system_message)}
    embedded = [call for call in always if call.phase == EMBED]
    embeddings = embeddings_summary(task, embedded, table)
    batch_cost = None if total.cost_usd is None else total.cost_usd * BATCH_PRICE_FACTOR  # every phase batched
    return CostEstimate(
        calls=total.calls, examples=examples, input_tokens=total.input_tokens, output_tokens=total.output_tokens,
        cost_usd=total.cost_usd, model=task.generate.model, phases=phases, batch_cost_usd=batch_cost,
        finetune=finetune, embeddings=embeddings, largest_call_usd=largest_call_cost(plan.calls, table))


def largest_call_cost(calls: Sequence[LLMCall], prices: PriceTable, model: str | None = None) -> float | None:
    """The price of the dearest call, its output counted at max_tokens where it has one (an upper bound);
    None when a call's model has no price. ``model`` replaces every chat call's (taskc run --model); an
    embeddings request keeps its embedding model."""
    largest = 0.0
    for call in calls:
        output = int(call.sampling.get("max_tokens") or call.output_tokens)
        own = call.priced_as or call.model
        chosen = own if call.phase == EMBED or model is None else model
        cost = call_cost(prices, chosen, call.input_tokens, max(output, call.output_tokens))
        if cost is None:
            return None
        largest = max(largest, cost)
    return largest
