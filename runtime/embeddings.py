"""Runtime stage: text embeddings from any OpenAI-compatible `/v1/embeddings` endpoint.

Used by the `embeddings` student (finetune.provider: embeddings) when `taskc run`
trains it and when `taskc predict` applies it. Texts are sent in batches (the
endpoint's `input` array, `finetune.inputs_per_request` at a time) through the
same client and call runner as completions, so the run's concurrency, rate
limits, retries and budget hold for them too. With a cache (in `taskc run`: the
run's cache file), each vector is stored under a hash of model and text as soon
as its request returns: a killed run resumes where it stopped and a rerun sends
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler import ExitStatus, TaskcError, sha256_hex
from .cache import ResponseCache
from .call_runner import run_online
from .provider import Budget, CallStats, LLMClient, ProviderSettings

EMPTY_TEXT = "(empty)"  # endpoints refuse an empty input; an item with no text is embedded as this


class EmbeddingError(TaskcError):
    """The endpoint did not give the vectors (after retries), or gave unusable ones."""

    exit_status = ExitStatus.RUNTIME_FAILURE


def embedding_key(model: str, text: str) -> str:
    return sha256_hex(f"embedding\0{model}\0{text}")


class Embedder:
    """texts -> (n, d) float32 vectors, L2-normalised, through one endpoint and model."""

    def __init__(self, settings: ProviderSettings, model: str, *, per_request: int = 64,
                 cache_path: Path | None = None, budget: Budget | None = None,
                 progress: Callable[[int, int], None] = lambda done, total: None) -> None:
        self.settings, self.model, self.per_request = settings, model, per_request
        self.cache_path, self.budget, self.progress = cache_path, budget, progress
        self.stats = CallStats()
        self.dimensions: int | None = None
        self.vectors_cached = 0  # vectors read from the cache instead of asked for
        self._memory: dict[str, bytes] = {}  # without a cache file: this process's vectors only (bounded)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        prepared = [text if text.strip() else EMPTY_TEXT for text in texts]
        keys = [embedding_key(self.model, text) for text in prepared]
        found = self._vectors(sorted(set(keys)), dict(zip(keys, prepared, strict=True)))
        vectors = np.stack([np.frombuffer(found[key], dtype=np.float32) for key in keys]) if keys \
            else np.zeros((0, self.dimensions or 0), dtype=np.float32)
        if keys:
            self.dimensions = int(vectors.shape[1])
        return vectors

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "dimensions": self.dimensions, "inputs_per_request": self.per_request,
                "vectors_cached": self.vectors_cached, **self.stats.to_json()}

    def _vectors(self, keys: list[str], texts: dict[str, str]) -> dict[str, bytes]:
        if self.cache_path is None:
            found = {key: self._memory[key] for key in keys if key in self._memory}
            missing = [key for key in keys if key not in found]
            if missing:
                found |= self._fetch(missing, texts, None)
                if len(self._memory) > 200_000:
                    self._memory.clear()
                self._memory.update(found)
            return found
        with ResponseCache(self.cache_path) as cache:
            found = cache.vectors(keys)
            self.vectors_cached += len(found)
            missing = [key for key in keys if key not in found]
            if missing:
                found |= self._fetch(missing, texts, cache)
            return found

    def _fetch(self, keys: list[str], texts: dict[str, str], cache: ResponseCache | None) -> dict[str, bytes]:
        batches = [keys[start:start + self.per_request] for start in range(0, len(keys), self.per_request)]
        found: dict[str, bytes] = {}
        done = 0

        async def one(client: LLMClient, batch: list[str]) -> None:
            nonlocal done
            vectors, failure = await client.embed([texts[key] for key in batch], self.model)
            if vectors is None:
                if failure is not None and failure.stopped_by_budget:
                    raise EmbeddingError("the run's budget (--max-calls / --max-cost) ran out while embedding; "
                                         "run again with a larger budget: the vectors fetched so far are kept")
                why = failure.message if failure is not None else "no vectors"
                raise EmbeddingError(f"the embeddings endpoint failed ({why}); check the endpoint and "
                                     f"finetune.base_model '{self.model}', then run again: the vectors fetched so "
                                     "far are kept")
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
            done += len(batch)
            self.progress(done, len(keys))

        run_online(batches, one, settings=self.settings, cache=cache, budget=self.budget, stats=self.stats)
        return found


def _normalised(vector: list[float]) -> bytes:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return (array / norm if norm > 0 else array).astype(np.float32).tobytes()


__all__ = ["EMPTY_TEXT", "Embedder", "EmbeddingError", "embedding_key"]
