"""Emitter helper: price tables and the cost estimate of the generation plan.

Prices are USD per 1M tokens, read from the built-in `prices.json`, the task's
`generate.prices` and `--prices`; `price_for` finds a model's price under its
dated, fine-tuned or provider-prefixed names. `estimate_cost` prices the
generation jobs; `call_plan.estimate_run` extends it to every call of a run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from . import ir
from .hashing import canonical_json

if TYPE_CHECKING:
    from .plan import GenerationJob
    from .prompts import RenderedPrompt

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text; estimates only
TOKENS_PER_EXAMPLE_FIELD = 20


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


def estimate_cost(task: ir.TaskIR, jobs: Sequence[GenerationJob], prompts: Mapping[str, RenderedPrompt],
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


def call_cost(prices: PriceTable, model: str, input_tokens: int, output_tokens: int,
              factor: float = 1.0) -> float | None:
    price = price_for(prices, model)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000 * factor


@lru_cache(maxsize=1)
def training_prices() -> dict[str, float]:
    """USD per 1M training tokens of the models prices.json gives a "training" price."""
    raw = json.loads(resources.files("taskc.compiler").joinpath("prices.json").read_text(encoding="utf-8"))
    return {name: float(entry["training"]) for name, entry in raw.items()
            if not name.startswith("_") and isinstance(entry, dict) and "training" in entry}


def training_price(model: str) -> float | None:
    table = training_prices()
    found = price_for({name: (price, 0.0) for name, price in table.items()}, model)
    return None if found is None else found[0]
