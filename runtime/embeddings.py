"""Runtime stage: text embeddings from any OpenAI-compatible `/v1/embeddings` endpoint.

Used by the `embeddings` student (finetune.provider: embeddings) when `taskc run`
trains it and when `taskc predict` applies it. Texts are sent in batches (the
endpoint's `input` array, `finetune.inputs_per_request` at a time) through the
same client and call runner as completions, so the run's concurrency, rate
limits, retries and budget hold for them too. With a cache (in `taskc run`: the
run's cache file), each vector is stored under a hash of model and text as soon
as its request returns: a killed run resumes where it stopped and a rerun sends
nothing.

In `taskc run` the requests are the plan's (`taskc.compiler.embedding_calls`):
`planned_texts` gives the texts of each planned request, the generated examples'
read from what generation accepted, and `Embedder.prefetch` sends each request
with the texts of it that have no vector yet, so a run sends at most the planned
requests. A text outside the plan (an expert's answer that is no pool item) is
embedded when it is asked for, in requests of its own, counted as unplanned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler import (
    EMBED,
    EMPTY_TEXT,
    POOL_PART,
    CompiledTask,
    ExitStatus,
    LLMCall,
    PlanItem,
    TaskcError,
    TaskIR,
    embedded_text,
    field_view_values,
    gold_embedding_calls,
    sha256_hex,
)
from .cache import ResponseCache
from .call_runner import run_online
from .progress import TRAINING, ProgressReporter, ProgressState, batched
from .provider import Budget, CallStats, LLMClient, ProviderSettings

# How the progress names these requests: the planned ones are sent before the student is fitted (see
# training.py), so under training; a text no planned request held is embedded when the student meets it,
# under the phase then under way (gold scoring, say).
EMBEDDING_PHASE, EMBEDDING_STEP = TRAINING, "embeddings"
BATCHED_STEP = batched(EMBEDDING_STEP)
BUDGET_RAN_OUT = ("the run's budget (--max-calls / --max-cost) ran out while embedding; run again with a larger "
                  "budget: the vectors fetched so far are kept")


class EmbeddingError(TaskcError):
    """The endpoint did not give the vectors (after retries), or gave unusable ones."""

    exit_status = ExitStatus.RUNTIME_FAILURE


def embedding_key(model: str, text: str) -> str:
    return sha256_hex(f"embedding\0{model}\0{text}")


class Embedder:
    """texts -> (n, d) float32 vectors, L2-normalised, through one endpoint and model."""

    def __init__(self, settings: ProviderSettings, model: str, *, per_request: int = 64,
                 cache_path: Path | None = None, budget: Budget | None = None,
                 reporter: ProgressReporter | None = None, batch: bool = False) -> None:
        self.settings, self.model, self.per_request, self.batch = settings, model, per_request, batch
        self.cache_path, self.budget, self.reporter = cache_path, budget, reporter or ProgressReporter()
        self.stats = CallStats()
        self.dimensions: int | None = None
        self.vectors_cached = 0  # texts whose vector came from the cache, not from this embedder's requests
        self._accounted: set[str] = set()  # keys fetched here or counted as cached: each text counted once
        self.calls_planned = 0  # the plan's requests (sent, or not needed: every text's vector known)
        self.unplanned_requests = 0  # requests for texts no planned request held
        self._memory: dict[str, bytes] = {}  # without a cache file: this process's vectors only (bounded)

    def prefetch(self, planned: Sequence[Sequence[str]]) -> None:
        """Send the planned requests, in order, each with its texts that have no vector yet (from the cache or
        an earlier request); a request left with none is not sent."""
        self.calls_planned += len(planned)
        groups = [[embedding_key(self.model, _prepared(text)) for text in texts] for texts in planned]
        texts = {key: _prepared(text) for group, given in zip(groups, planned, strict=True)
                 for key, text in zip(group, given, strict=True)}
        self._vectors(sorted(texts), texts, groups)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        prepared = [_prepared(text) for text in texts]
        keys = [embedding_key(self.model, text) for text in prepared]
        found = self._vectors(sorted(set(keys)), dict(zip(keys, prepared, strict=True)), None)
        vectors = np.stack([np.frombuffer(found[key], dtype=np.float32) for key in keys]) if keys \
            else np.zeros((0, self.dimensions or 0), dtype=np.float32)
        if keys:
            self.dimensions = int(vectors.shape[1])
        return vectors

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "dimensions": self.dimensions, "inputs_per_request": self.per_request,
                "vectors_cached": self.vectors_cached, "calls_planned": self.calls_planned,
                "unplanned_requests": self.unplanned_requests,
                **self.stats.to_json()}

    def _vectors(self, keys: list[str], texts: dict[str, str], planned: list[list[str]] | None
                 ) -> dict[str, bytes]:
        """The vectors of ``keys``: known ones looked up, the others asked for in the ``planned`` requests
        (without a plan: in requests of per_request texts)."""
        if self.cache_path is None:
            found = {key: self._memory[key] for key in keys if key in self._memory}
            batches = self._batches(keys, found, planned)
            if batches:
                found |= self._fetch(batches, texts, None)
                if len(self._memory) > 200_000:
                    self._memory.clear()
                self._memory.update(found)
            return found
        with ResponseCache(self.cache_path) as cache:
            found = cache.vectors(keys)
            self.vectors_cached += sum(key not in self._accounted for key in found)
            self._accounted.update(found)
            batches = self._batches(keys, found, planned)
            if batches:
                fetched = self._fetch(batches, texts, cache)
                self._accounted.update(fetched)
                found |= fetched
            return found

    def _batches(self, keys: list[str], found: Mapping[str, bytes], planned: list[list[str]] | None
                 ) -> list[list[str]]:
        if planned is None:
            missing = [key for key in keys if key not in found]
            batches = [missing[start:start + self.per_request] for start in range(0, len(missing), self.per_request)]
            self.unplanned_requests += len(batches)
            return batches
        taken = set(found)
        batches = []
        for group in planned:
            batch = [key for key in dict.fromkeys(group) if key not in taken]
            taken.update(batch)
            if batch:
                batches.append(batch)
        return batches

    def _fetch(self, batches: list[list[str]], texts: dict[str, str], cache: ResponseCache | None
               ) -> dict[str, bytes]:
        if self.batch and cache is not None:
            return self._fetch_in_a_batch(batches, texts, cache)
        found: dict[str, bytes] = {}
        done = 0
        phase = self.reporter.current_phase or EMBEDDING_PHASE
        self.reporter.start(len(batches), phase, EMBEDDING_STEP)

        def state() -> ProgressState:
            return ProgressState(done, len(batches), None, None, self.stats.calls_failed, self.stats.input_tokens,
                                 0, self.stats.cost_usd, phase, step=EMBEDDING_STEP)

        async def one(client: LLMClient, batch: list[str]) -> None:
            nonlocal done
            vectors, failure = await client.embed([texts[key] for key in batch], self.model)
            if vectors is None:
                if failure is not None and failure.stopped_by_budget:
                    raise EmbeddingError(BUDGET_RAN_OUT)
                raise self._failed("the embeddings endpoint failed", failure.message if failure else "no vectors")
            rows = [_normalised(vector) for vector in vectors]
            if self.dimensions is None:
                self.dimensions = len(vectors[0])
            if any(len(vector) != self.dimensions for vector in vectors):
                raise EmbeddingError(f"the endpoint returned vectors of {len(vectors[0])} numbers after "
                                     f"{self.dimensions}: is the model '{self.model}' the one this run used?")
            pairs = list(zip(batch, rows, strict=True))
            if cache is not None:
                cache.put_vectors(pairs)  # kept at once: a killed run does not ask for them again
            found.update(pairs)
            done += 1
            self.reporter.update(state())

        try:
            run_online(batches, one, settings=self.settings, cache=cache, budget=self.budget, stats=self.stats)
        finally:
            self.reporter.finish(state())
        return found

    def _failed(self, what: str, why: str) -> EmbeddingError:
        return EmbeddingError(f"{what} ({why}); check the endpoint, finetune.base_model '{self.model}' and "
                              f"finetune.inputs_per_request ({self.per_request} texts a request; some servers take "
                              "fewer), then run again: the vectors fetched so far are kept")

    def _fetch_in_a_batch(self, batches: list[list[str]], texts: dict[str, str], cache: ResponseCache
                          ) -> dict[str, bytes]:
        """The same requests through the Batch API (--batch): half the price, each vector cached as it is read."""
        from .batch import EmbeddingRequest, batch_outcome_state, run_batch_embeddings

        requests = [EmbeddingRequest(tuple(batch), tuple(texts[key] for key in batch), self.model)
                    for batch in batches]
        phase = self.reporter.current_phase or EMBEDDING_PHASE
        failures = run_batch_embeddings(requests, cache, self.settings, self.budget or Budget(), self.stats,
                                        self.reporter, _normalised, phase=phase, step=BATCHED_STEP)
        self.reporter.finish(batch_outcome_state(len(requests), failures, self.stats, phase, BATCHED_STEP))
        if failures:
            if all(failure.stopped_by_budget for failure in failures.values()):
                raise EmbeddingError(BUDGET_RAN_OUT)
            raise self._failed("the Batch API did not give the vectors",
                               next(failure.message for failure in failures.values() if not failure.stopped_by_budget))
        found = cache.vectors([key for batch in batches for key in batch])
        sizes = {len(vector) // 4 for vector in found.values()}  # float32: four bytes a number
        if self.dimensions is not None:
            sizes.add(self.dimensions)
        if len(sizes) > 1:
            raise EmbeddingError(f"the endpoint returned vectors of {sorted(sizes)} numbers: is the model "
                                 f"'{self.model}' the one this run used?")
        self.dimensions = self.dimensions or next(iter(sizes), None)
        return found


def run_embedding_calls(compiled: CompiledTask, gold: Sequence[tuple[int, Mapping[str, Any]]] | None
                        ) -> tuple[LLMCall, ...]:
    """The plan's embeddings requests for this run; with ``gold`` (``--gold FILE``: its lines and values), the
    gold set's requests planned again for that file, by the compiler's own planner."""
    calls = compiled.calls.phase(EMBED)
    if gold is None:
        return calls
    pool = [call for call in calls if call.id.startswith(f"{EMBED}/{POOL_PART}/")]
    examples = [call for call in calls if call.examples_of]
    items = [PlanItem(line, dict(values)) for line, values in gold]
    replanned = gold_embedding_calls(compiled.ir, items, [text for call in pool for text in call.inputs])
    return (*pool, *replanned, *examples)


def planned_texts(task: TaskIR, calls: Sequence[LLMCall], generated: Sequence[Mapping[str, Any]]
                  ) -> list[list[str]]:
    """The texts of each planned embeddings request: its inputs, or the texts of the examples generation
    accepted from the calls it embeds (each example, then its field views), its slice of them."""
    of_call: dict[str, list[str]] = {}
    for example in generated:
        provenance = example.get("provenance")
        job = provenance.get("job") if isinstance(provenance, Mapping) else None
        if isinstance(job, str):
            values = {name: example[name] for name in task.field_names if name in example}
            texts = of_call.setdefault(job, [])
            texts.append(embedded_text(task, values))
            texts += [embedded_text(task, view) for view in field_view_values(task, values)]
    per = task.finetune.inputs_per_request
    planned = []
    for call in calls:
        if call.examples_of:
            texts = [text for job in call.examples_of for text in of_call.get(job, ())]
            planned.append(texts[call.part * per:(call.part + 1) * per])
        else:
            planned.append(list(call.inputs))
    return planned


def _prepared(text: str) -> str:
    return text if text.strip() else EMPTY_TEXT


def _normalised(vector: list[float]) -> bytes:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return (array / norm if norm > 0 else array).astype(np.float32).tobytes()


__all__ = ["Embedder", "EmbeddingError", "embedding_key", "planned_texts", "run_embedding_calls"]
