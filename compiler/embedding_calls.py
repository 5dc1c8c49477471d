"""Emitter: the embeddings student's `/v1/embeddings` requests, as `LLMCall`s of the plan.

With finetune.provider: embeddings, a run embeds the pool items and their field
views (the training set), the gold items (to score the student) and the examples
generation returns with their field views. The first two are known at compile
time; the generated examples are not, but which generation call returns them is.
So the plan lists:

- `embed/pool/NNNN`, `embed/gold/NNNN`: requests of `inputs_per_request` texts
  each, in file order, every text once (a gold text that is a pool text is
  embedded with the pool), keyed by the texts they send;
- `embed/examples/NNNN`: one request for the examples of one or more consecutive
  generation calls (as many as fit in `inputs_per_request` texts at their
  largest: `per_call` examples, each with its field views), keyed by those
  calls' cache keys. A generation call whose answer is cached returns the same
  examples, so its request is needed again only when the call is.

`texts` is how many a request sends at most: the run embeds every text once, by
its content, so a text it already has a vector for (the run's cache, or an
earlier request of the run) is not sent again and a request left with no text is
not sent at all. An edit of a pool or gold file re-keys the requests from the
first changed line on (`taskc diff` counts them), while the run still sends only
the texts it has no vector for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import ir
from .configs import DEFAULT_EMBEDDING_MODEL, EMBEDDING_TOKENS_PER_TEXT
from .hashing import canonical_json, sha256_hex
from .item_text import embedded_text, field_view_values, most_field_views
from .llm_call import EMBED, LLMCall, PlanItem
from .plan import GenerationJob
from .pricing import CHARS_PER_TOKEN

POOL_PART, GOLD_PART, EXAMPLES_PART = "pool", "gold", "examples"
SAMPLE_ITEMS = 2000  # items read for the size of a generated example's text


def embedding_model(task: ir.TaskIR) -> str:
    return task.finetune.base_model or DEFAULT_EMBEDDING_MODEL


def embedding_calls(task: ir.TaskIR, pool: Sequence[PlanItem] | None, gold: Sequence[PlanItem] | None,
                    jobs: Sequence[GenerationJob]) -> list[LLMCall]:
    """Every embeddings request of a run (none unless finetune.provider is embeddings)."""
    if task.finetune.provider != "embeddings":
        return []
    pool_texts = item_texts(task, pool or (), with_views=True)
    calls = inputs_calls(task, POOL_PART, pool_texts)
    calls += gold_embedding_calls(task, gold or (), pool_texts)
    calls += examples_calls(task, jobs, tokens_per_text(task, [*(pool or ()), *(gold or ())]))
    return calls


def gold_embedding_calls(task: ir.TaskIR, gold: Sequence[PlanItem], embedded: Iterable[str]) -> list[LLMCall]:
    """The gold items' requests, leaving out the texts ``embedded`` already (the pool's)."""
    if task.finetune.provider != "embeddings":
        return []
    known = set(embedded)
    return inputs_calls(task, GOLD_PART, [text for text in item_texts(task, gold, with_views=False)
                                          if text not in known])


def item_texts(task: ir.TaskIR, items: Sequence[PlanItem], *, with_views: bool) -> list[str]:
    """The texts of the items (and their field views), each once, in file order."""
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(embedded_text(task, item.values))
        if with_views:
            for view in field_view_values(task, item.values):
                seen.setdefault(embedded_text(task, view))
    return list(seen)


def inputs_calls(task: ir.TaskIR, part: str, texts: Sequence[str]) -> list[LLMCall]:
    model, per = embedding_model(task), task.finetune.inputs_per_request
    calls = []
    for number, start in enumerate(range(0, len(texts), per), 1):
        inputs = tuple(texts[start:start + per])
        hashed = canonical_json(list(inputs))
        calls.append(_call(f"{EMBED}/{part}/{number:04d}", model,
                           sha256_hex(canonical_json(["embedding", model, list(inputs)])), sha256_hex(hashed),
                           len(inputs), max(1, -(-sum(len(text) for text in inputs) // CHARS_PER_TOKEN)),
                           inputs=inputs))
    return calls


def examples_calls(task: ir.TaskIR, jobs: Sequence[GenerationJob], per_text: int) -> list[LLMCall]:
    """The requests for the generated examples: consecutive generation calls grouped while their examples'
    texts fit in one request at their largest; a call whose texts need more is split into parts."""
    model, per = embedding_model(task), task.finetune.inputs_per_request
    texts_per_example = 1 + most_field_views(task)
    groups: list[tuple[list[GenerationJob], int, int]] = []  # (calls, part, texts at most)
    current: list[GenerationJob] = []
    size = 0
    for job in jobs:
        most = job.examples * texts_per_example
        if most > per:
            if current:
                groups.append((current, 0, size))
                current, size = [], 0
            groups += [([job], part, min(per, most - part * per)) for part in range(-(-most // per))]
        elif size + most > per:
            groups.append((current, 0, size))
            current, size = [job], most
        else:
            current.append(job)
            size += most
    if current:
        groups.append((current, 0, size))
    calls = []
    for number, (members, part, texts) in enumerate(groups, 1):
        named: list[Any] = [[job.cache_key for job in members], part, per]
        calls.append(_call(f"{EMBED}/{EXAMPLES_PART}/{number:04d}", model,
                           sha256_hex(canonical_json(["embedding", model, named])),
                           sha256_hex(canonical_json([[job.id for job in members], part, per])), texts,
                           texts * per_text, examples_of=tuple(job.id for job in members), part=part))
    return calls


def _call(call_id: str, model: str, cache_key: str, hashed: str, texts: int, tokens: int, *,
          inputs: tuple[str, ...] = (), examples_of: tuple[str, ...] = (), part: int = 0) -> LLMCall:
    return LLMCall(id=call_id, phase=EMBED, model=model, cache_key=cache_key, messages_sha256=hashed, sampling={},
                   seed=None, input_tokens=tokens, output_tokens=0, texts=texts, examples_of=examples_of,
                   part=part, inputs=inputs)


def tokens_per_text(task: ir.TaskIR, items: Sequence[PlanItem]) -> int:
    """The tokens of one embedded text, measured on the task's own items (a generated example should
    look like them); EMBEDDING_TOKENS_PER_TEXT without data."""
    sample = items[:SAMPLE_ITEMS]
    if not sample:
        return EMBEDDING_TOKENS_PER_TEXT
    chars = sum(len(embedded_text(task, item.values)) for item in sample)
    return max(1, -(-chars // (len(sample) * CHARS_PER_TOKEN)))


__all__ = ["embedding_calls", "embedding_model", "gold_embedding_calls", "item_texts", "tokens_per_text"]
