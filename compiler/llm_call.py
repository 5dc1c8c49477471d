"""Emitter contract: one LLM call of a run (`LLMCall`), the plan of them all (`CallPlan`) and their phases.

Every request a run sends to the provider is one `LLMCall`: a chat completion
(generation, pool labeling, gold scoring, the fine-tuned model's scoring) or an
embeddings request (the embeddings student's vectors). `call_plan` builds them,
`driver` writes them to plan.json, and the runtime executes exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .pricing import PriceTable, call_cost

GENERATE, LABEL_POOL, SCORE_GOLD, SCORE_FINETUNED = "generate", "label_pool", "score_gold", "score_finetuned"
EMBED = "embed"  # the embeddings student's /v1/embeddings requests
PHASES = (GENERATE, LABEL_POOL, SCORE_GOLD, SCORE_FINETUNED, EMBED)
PHASE_TITLES = {GENERATE: "generation", LABEL_POOL: "pool labeling", SCORE_GOLD: "gold scoring",
                SCORE_FINETUNED: "fine-tuned scoring", EMBED: "embeddings"}


@dataclass(frozen=True)
class PlanItem:
    """A pool or gold item as the plan sees it: its line in the file and its field values."""

    line: int
    values: dict[str, Any]
    label: str | None = None


@dataclass(frozen=True)
class LLMCall:
    """One call of a run: what it is for, what it sends (through its cache key) and what it should cost.

    A chat call sends ``messages``. An embeddings request (phase EMBED) sends up to ``texts`` texts: the
    ``inputs`` known at compile time (pool and gold items, their field views), or the texts of the
    examples that the generation calls ``examples_of`` return (with their field views), slice ``part``
    of them, ``inputs_per_request`` texts a slice."""

    id: str
    phase: str
    model: str
    cache_key: str | None  # None for the fine-tuned model's calls: its name is not known before the job ends
    messages_sha256: str  # of the messages (embeddings: of the inputs, or of what names them)
    sampling: dict[str, Any]
    seed: int | None  # None: an embeddings request (it has no seed)
    input_tokens: int
    output_tokens: int
    line: int | None = None  # the pool or gold line it classifies
    when: str | None = None  # a condition on the run ("--finetune"); None: every run with a provider
    priced_as: str | None = None  # the model its price is read for, when ``model`` names none yet
    texts: int = 0  # embeddings: how many texts it sends at most
    examples_of: tuple[str, ...] = ()  # embeddings: the generation calls whose examples it embeds
    part: int = 0  # embeddings: which slice of those examples' texts
    messages: tuple[dict[str, str], ...] = field(default=(), repr=False, compare=False)  # not emitted
    response_format: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # not emitted
    inputs: tuple[str, ...] = field(default=(), repr=False, compare=False)  # embeddings; not emitted

    def to_json(self, prices: PriceTable) -> dict[str, Any]:
        cost = self.cost(prices)
        record: dict[str, Any] = {
            "id": self.id, "phase": self.phase, "model": self.model, "cache_key": self.cache_key,
            "messages_sha256": self.messages_sha256, "sampling": self.sampling, "seed": self.seed,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost_usd": None if cost is None else round(cost, 8)}
        if self.line is not None:
            record["line"] = self.line
        if self.when is not None:
            record["when"] = self.when
        if self.priced_as is not None:
            record["priced_as"] = self.priced_as
        if self.phase == EMBED:
            record["texts"] = self.texts
            if self.examples_of:
                record["examples_of"] = list(self.examples_of)
                record["part"] = self.part
        return record

    def cost(self, prices: PriceTable, factor: float = 1.0) -> float | None:
        return call_cost(prices, self.priced_as or self.model, self.input_tokens, self.output_tokens, factor)


@dataclass(frozen=True)
class CallPlan:
    """Every call of a run, in phase order, and why a phase could not be planned."""

    calls: tuple[LLMCall, ...]
    pool_items: int | None  # None: no pool, or it could not be read at compile time
    gold_items: int | None
    finetune_base_model: str | None = None  # set when finetune.provider is openai
    problems: tuple[str, ...] = ()  # why a phase could not be planned (a data file not readable)
    complete: bool = True  # False: compiled with plan_data=False, so only the generation calls are planned

    def phase(self, name: str) -> tuple[LLMCall, ...]:
        return tuple(call for call in self.calls if call.phase == name)


__all__ = ["EMBED", "GENERATE", "LABEL_POOL", "PHASES", "PHASE_TITLES", "SCORE_FINETUNED", "SCORE_GOLD",
           "CallPlan", "LLMCall", "PlanItem"]
