"""Emitter: the generation plan, the fine-tuning and eval configs, and the cost estimate.

The plan is a flat list of `GenerationJob`s: one per call, each with everything
that affects the call (model, sampling, seed, messages through its prompt, the
JSON Schema the answer must follow) and a cache key hashing exactly that, so
the runtime can cache, resume and never pay twice for the same call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from . import ir
from .expr_nodes import to_sexpr
from .prompts import RenderedPrompt

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text; estimates only
TOKENS_PER_EXAMPLE_FIELD = 20


@dataclass(frozen=True)
class GenerationJob:
    id: str
    target_class: str
    rationale: str | None
    mode: str  # rationale | near_miss | class
    prompt: str  # output-relative prompt path
    prompt_sha256: str
    model: str
    temperature: float
    top_p: float | None
    max_tokens: int | None
    seed: int
    examples: int
    response_format: dict[str, Any]
    cache_key: str

    kind = "generate"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "class": self.target_class, "rationale": self.rationale,
            "mode": self.mode, "prompt": self.prompt, "prompt_sha256": self.prompt_sha256,
            "model": self.model, "sampling": self.sampling(), "seed": self.seed, "examples": self.examples,
            "response_format": self.response_format, "cache_key": self.cache_key,
        }

    def sampling(self) -> dict[str, Any]:
        values: dict[str, Any] = {"temperature": self.temperature}
        if self.top_p is not None:
            values["top_p"] = self.top_p
        if self.max_tokens is not None:
            values["max_tokens"] = self.max_tokens
        return values


@dataclass(frozen=True)
class GenerationCell:
    target_class: str
    rationale: ir.Rationale | None
    mode: str
    examples: int

    @property
    def prompt_path(self) -> str:
        if self.rationale is None:
            return f"prompts/generate/{self.target_class}/_class.md"
        return f"prompts/generate/{self.target_class}/{self.rationale.id}.md"


def generation_cells(task: ir.TaskIR) -> list[GenerationCell]:
    """The (class, rationale) cells of the generation matrix that have something to generate."""
    cells: list[GenerationCell] = []
    settings = task.generate
    for task_class in task.classes:
        for rationale in task.rationales:
            own = rationale.class_name == task_class.name
            count = settings.per_rationale if own else settings.near_misses
            if count > 0:
                cells.append(GenerationCell(task_class.name, rationale, "rationale" if own else "near_miss", count))
        if settings.per_class > 0:
            cells.append(GenerationCell(task_class.name, None, "class", settings.per_class))
    return cells


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_hex(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def call_cache_key(model: str, messages: list[dict[str, str]], sampling: dict[str, Any], seed: int,
                   response_format: dict[str, Any]) -> str:
    """The key under which a call's response is cached: a hash of everything that affects the call."""
    payload = {"model": model, "messages": messages, "sampling": sampling, "seed": seed,
               "response_format": response_format, "v": 1}
    return sha256_hex(canonical_json(payload))


def derive_seed(base: int, job_id: str) -> int:
    """A stable per-job seed: the same base seed and job id give the same seed on every machine."""
    return (base * 1_000_003 + zlib.crc32(job_id.encode("utf-8"))) % 2**31


def build_plan(task: ir.TaskIR, prompts: dict[str, RenderedPrompt], response_format: dict[str, Any]
               ) -> list[GenerationJob]:
    settings = task.generate
    jobs: list[GenerationJob] = []
    for cell in generation_cells(task):
        prompt = prompts[cell.prompt_path]
        messages = prompt.as_chat()
        prompt_sha256 = sha256_hex(prompt.to_markdown())
        calls = math.ceil(cell.examples / settings.per_call)
        for index in range(calls):
            job_id = f"gen/{cell.target_class}/{cell.rationale.id if cell.rationale else '_class'}/{index:03d}"
            seed = derive_seed(settings.seed, job_id)
            job = GenerationJob(
                id=job_id, target_class=cell.target_class, rationale=cell.rationale.id if cell.rationale else None,
                mode=cell.mode, prompt=cell.prompt_path, prompt_sha256=prompt_sha256,
                model=settings.model, temperature=settings.temperature, top_p=settings.top_p,
                max_tokens=settings.max_tokens, seed=seed, examples=settings.per_call,
                response_format=response_format, cache_key="")
            key = call_cache_key(job.model, messages, job.sampling(), seed, response_format)
            jobs.append(dataclasses.replace(job, cache_key=key))
    return jobs


# -- response schemas (OpenAI structured outputs) -------------------------------------------------

def _field_schema(f: ir.InputField) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {
        "string": {"type": "string"}, "integer": {"type": "integer"}, "number": {"type": "number"},
        "boolean": {"type": "boolean"}, "list[string]": {"type": "array", "items": {"type": "string"}},
        "enum": {"type": "string", "enum": list(f.values)},
    }
    base = by_type[f.type]
    if f.description:
        base = {**base, "description": f.description}
    if f.optional:
        base = {**base, "type": [base["type"], "null"]}
    return base


def generation_response_format(task: ir.TaskIR) -> dict[str, Any]:
    properties = {f.name: _field_schema(f) for f in task.fields}
    properties["label"] = {"type": "string", "enum": list(task.class_names)}
    example = {"type": "object", "properties": properties, "required": list(properties),
               "additionalProperties": False}
    schema = {"type": "object", "properties": {"examples": {"type": "array", "items": example}},
              "required": ["examples"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "generated_examples", "strict": True, "schema": schema}}


def classification_response_format(task: ir.TaskIR) -> dict[str, Any]:
    schema = {"type": "object", "properties": {
        "label": {"type": "string", "enum": list(task.class_names)},
        "rationales": {"type": "array", "items": {"type": "string", "enum": [r.id for r in task.rationales]}},
    }, "required": ["label", "rationales"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "classification", "strict": True, "schema": schema}}


# -- configs ----------------------------------------------------------------------------------------

def default_system_message(task: ir.TaskIR) -> str:
    return f"Classify the input for task '{task.name}' as one of: {', '.join(task.class_names)}."


DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
EMBEDDING_TOKENS_PER_TEXT = 40  # a dish with its ingredient lines; estimates only


def student_config(task: ir.TaskIR) -> dict[str, Any]:
    """finetune.json of a student that trains anywhere: what it is, and (embeddings) what it costs."""
    settings = task.finetune
    if settings.provider == "embeddings":
        model = settings.base_model or DEFAULT_EMBEDDING_MODEL
        table = {**builtin_prices(), **dict(task.generate.prices)}
        price = price_for(table, model)
        per_thousand = None if price is None else round(1000 * EMBEDDING_TOKENS_PER_TEXT * price[0] / 1_000_000, 6)
        return {"provider": "embeddings", "model": model, "inputs_per_request": settings.inputs_per_request,
                "features": ["text embedding", "lexicon mentions", "rule votes"],
                "head": "class-balanced logistic regression",
                "texts": "every training example once (pool items, their field views, generated examples), "
                         "the gold items, and in taskc predict every new input; cached by content in the run",
                "estimate": {"estimate": True, "usd_per_1m_input_tokens": None if price is None else price[0],
                             "tokens_per_text": EMBEDDING_TOKENS_PER_TEXT, "usd_per_1000_texts": per_thousand},
                "classes": list(task.class_names)}
    return {"provider": "transformers", "model": settings.base_model, "epochs": settings.epochs or 3,
            "batch_size": settings.batch_size or 16, "learning_rate": settings.learning_rate or 5e-5,
            "max_length": settings.max_length or 128, "validation_split": settings.validation_split,
            "input": "the fields' text joined by ' | '", "classes": list(task.class_names)}


@dataclass(frozen=True)
class FinetuneConfig:
    """What the task says of its student, typed: the runtime reads these fields, and `to_json` renders
    finetune.json from them (the emitted file is never read back)."""

    provider: str  # openai | local | embeddings | transformers
    system_message: str  # the system message of every training example (train.jsonl, `taskc export`)
    validation_split: float
    input_fields: tuple[str, ...]  # the user message: the input as JSON, these fields in this order
    classes: tuple[str, ...]
    job: Mapping[str, Any] | None = None  # the hosted fine-tuning job (openai, local); None for the others
    student: Mapping[str, Any] | None = None  # a student that trains anywhere: its settings and price

    def to_json(self) -> dict[str, Any]:
        """finetune.json."""
        document: dict[str, Any] = {
            "provider": self.provider,
            "validation_split": self.validation_split,
            "system_message": self.system_message,
            "message_layout": [
                {"role": "system", "content": "system_message"},
                {"role": "user", "content": "the input as JSON, fields in declaration order: "
                                            + ", ".join(self.input_fields)},
                {"role": "assistant", "content": "the class name"},
            ],
            "classes": list(self.classes),
        }
        if self.job is not None:
            document["job"] = _plain(self.job)
        return document | _plain(self.student or {})


@dataclass(frozen=True)
class EvalConfig:
    """The task's evaluation, typed; `to_json` renders eval.json."""

    classes: tuple[str, ...]
    gold: str | None = None
    metrics: tuple[str, ...] = ()
    primary: str | None = None
    test_fraction: float | None = None
    split_seed: int | None = None
    criterion_source: str | None = None
    criterion_sexpr: str | None = None
    declared: bool = False  # the task has an eval section

    def to_json(self) -> dict[str, Any]:
        """eval.json."""
        if not self.declared:
            return {"gold": None, "metrics": [], "criterion": None, "classes": list(self.classes)}
        return {"gold": self.gold, "metrics": list(self.metrics), "primary": self.primary,
                "split": {"test_fraction": self.test_fraction, "seed": self.split_seed},
                "criterion": {"source": self.criterion_source, "compiled": self.criterion_sexpr},
                "classes": list(self.classes)}


def _plain(value: Any) -> Any:
    """A JSON-ready copy (mappings as dicts, tuples as lists), so the config's own values are never shared."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def finetune_config(task: ir.TaskIR) -> FinetuneConfig:
    """The student (finetune.json), and the chat layout of the training files (train.jsonl, `taskc export`)."""
    settings = task.finetune
    anywhere = settings.provider in ("embeddings", "transformers")  # no hosted job: it trains in `taskc run`
    return FinetuneConfig(
        provider=settings.provider, system_message=settings.system_message or default_system_message(task),
        validation_split=settings.validation_split, input_fields=tuple(task.field_names),
        classes=tuple(task.class_names), job=None if anywhere else _hosted_job(task),
        student=student_config(task) if anywhere else None)


def _hosted_job(task: ir.TaskIR) -> dict[str, Any]:
    settings = task.finetune
    hyperparameters = {key: value for key, value in (
        ("n_epochs", settings.epochs), ("batch_size", settings.batch_size),
        ("learning_rate_multiplier", settings.learning_rate_multiplier)) if value is not None}
    return {"model": settings.base_model or task.generate.model,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
            "seed": task.generate.seed, "suffix": settings.suffix or task.name[:18]}


def eval_config(task: ir.TaskIR) -> EvalConfig:
    if task.eval is None:
        return EvalConfig(classes=tuple(task.class_names))
    criterion = task.eval.criterion
    return EvalConfig(classes=tuple(task.class_names), gold=task.eval.gold, metrics=tuple(task.eval.metrics),
                      primary=task.eval.primary, test_fraction=task.eval.test_fraction,
                      split_seed=task.eval.split_seed, criterion_source=" ".join(criterion.source.split()),
                      criterion_sexpr=to_sexpr(criterion.node) if criterion.node else None, declared=True)


# -- estimates -------------------------------------------------------------------------------------

PriceTable = dict[str, tuple[float, float]]  # model -> (USD per 1M input tokens, per 1M output tokens)


def parse_price_table(raw: Any) -> PriceTable:
    """Read ``{"model": {"input": USD, "output": USD}}``; keys starting with '_' are comments.

    Raises ValueError with a readable reason on anything else (negative, infinite, missing)."""
    if not isinstance(raw, dict):
        raise ValueError('a price table is a mapping {"model": {"input": USD, "output": USD}}')
    table: PriceTable = {}
    for model, price in raw.items():
        if str(model).startswith("_"):
            continue
        try:
            pair = (float(price["input"]), float(price["output"]))
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"'{model}' needs numeric 'input' and 'output' prices") from None
        if not all(math.isfinite(p) and p >= 0 for p in pair):
            raise ValueError(f"'{model}' has a negative or infinite price")
        table[str(model)] = pair
    return table


def price_for(table: PriceTable, model: str) -> tuple[float, float] | None:
    """The price of ``model``; dated snapshots, fine-tuned models and provider-prefixed names (a router's
    ``openai/gpt-4o-mini``) are priced as their base model, unless the table prices the name itself."""
    if model in table:
        return table[model]
    base = model.split(":")[1] if model.startswith("ft:") and ":" in model[3:] else model
    for name in dict.fromkeys((base, base.rsplit("/", 1)[-1])):
        price = table.get(name) or table.get(re.sub(r"-\d{4}-\d{2}-\d{2}$", "", name))
        if price is not None:
            return price
    return None


@lru_cache(maxsize=1)
def builtin_prices() -> PriceTable:
    raw = json.loads(resources.files("taskc.compiler").joinpath("prices.json").read_text(encoding="utf-8"))
    return parse_price_table(raw)


@dataclass(frozen=True)
class CostEstimate:
    calls: int
    examples: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    model: str
    # Set by `call_plan.estimate_run` (every call of a run, not generation only):
    phases: dict[str, Any] = dataclasses.field(default_factory=dict)  # phase -> PhaseEstimate
    batch_cost_usd: float | None = None  # the same calls through the Batch API (--batch)
    finetune: dict[str, Any] | None = None  # with --finetune: the fine-tuned model's calls and training
    embeddings: dict[str, Any] | None = None  # the embeddings student's texts and requests (estimated)
    largest_call_usd: float | None = None  # the dearest single call, at its max_tokens where it has one

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"estimate": True, "calls": self.calls, "examples": self.examples,
                  "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                  "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 4), "model": self.model}
        if self.phases:
            record |= {"phases": {name: phase.to_json() for name, phase in self.phases.items()},
                       "batch_cost_usd": None if self.batch_cost_usd is None else round(self.batch_cost_usd, 4),
                       "largest_call_usd": None if self.largest_call_usd is None else round(self.largest_call_usd, 6),
                       "finetune": self.finetune, "embeddings": self.embeddings}
        return record


def estimate_cost(task: ir.TaskIR, jobs: list[GenerationJob], prompts: dict[str, RenderedPrompt],
                  prices: PriceTable | None = None) -> CostEstimate:
    table = {**builtin_prices(), **dict(task.generate.prices), **(prices or {})}
    input_tokens = output_tokens = 0
    per_example = TOKENS_PER_EXAMPLE_FIELD * (len(task.fields) + 1)
    for job in jobs:
        text = sum(len(m.content) for m in prompts[job.prompt].messages)
        input_tokens += text // CHARS_PER_TOKEN + len(canonical_json(job.response_format)) // CHARS_PER_TOKEN
        output_tokens += job.examples * per_example
    price = price_for(table, task.generate.model)
    cost = None if price is None else (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
    return CostEstimate(len(jobs), sum(j.examples for j in jobs), input_tokens, output_tokens, cost,
                        task.generate.model)
