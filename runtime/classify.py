"""Runtime stage: make the plan's classification calls (pool labeling, gold scoring), online or batched.

The compiler plans these calls (`compiler.call_plan`): which pool items are open,
each call's messages and cache key. This module only executes them: it resolves
a planned call for the model the run uses (`--model` changes the model and so the
key; the fine-tuned model's name is known only once its job has succeeded), makes
each distinct call once (two items with the same input share one answer), through
`call_runner` or, with `--batch`, through the Batch API at half price, and reads
every answer back from the run's response cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..compiler import LLMCall, call_cache_key
from .cache import ResponseCache
from .call_runner import run_online
from .datasets import CACHE_FILE
from .progress import ProgressReporter, ProgressState, batched
from .provider import Budget, CallResult, CallStats, LLMClient, ProviderSettings


@dataclass(frozen=True)
class ClassificationCall:
    """A planned classification call as it will be sent."""

    planned: LLMCall
    model: str
    cache_key: str

    @property
    def messages(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.planned.messages]

    @property
    def response_format(self) -> dict[str, Any]:
        return self.planned.response_format

    def request_body(self) -> dict[str, Any]:
        """The chat-completions request body (the Batch API's input line)."""
        return {"model": self.model, "messages": self.messages, "response_format": self.response_format,
                **self.planned.sampling, "seed": self.planned.seed}


def resolve(calls: Sequence[LLMCall], model: str | None = None) -> list[ClassificationCall]:
    """The calls for ``model`` (None: as planned). A call without a key (the fine-tuned model's) needs one."""
    resolved = []
    for call in calls:
        chosen = model or call.model
        key = call.cache_key if chosen == call.model and call.cache_key else call_cache_key(
            chosen, [dict(m) for m in call.messages], call.sampling, call.seed, call.response_format)
        resolved.append(ClassificationCall(call, chosen, key))
    return resolved


@dataclass
class PhaseOutcome:
    answers: list[dict[str, Any] | None]  # one per call, in order: the answer's content, or None
    results: list[CallResult]  # one per distinct call made online (empty for a batched phase)
    stats: CallStats
    skipped_by_budget: int = 0  # distinct calls not made because the budget ran out (online or batched)


def run_calls(calls: Sequence[ClassificationCall], settings: ProviderSettings, budget: Budget, run_dir: Path,
              *, batch: bool = False, reporter: ProgressReporter | None = None,
              phase: str = "classification", step: str = "") -> PhaseOutcome:
    """Make every call (each distinct cache key once) and return the answers in the calls' order; progress
    goes to ``reporter`` under ``phase`` and ``step`` (see ProgressState)."""
    distinct = list({call.cache_key: call for call in calls}.values())
    stats = CallStats()
    shown = reporter or ProgressReporter()
    with ResponseCache(Path(run_dir) / CACHE_FILE) as cache:
        results: list[CallResult] = []
        if batch:
            from .batch import batch_outcome_state, run_batch_generation  # imported only for a batched run

            failures = run_batch_generation(distinct, cache, settings, budget, stats, shown, phase=phase,
                                            step=batched(step))
            ended = batch_outcome_state(len(distinct), failures, stats, phase, batched(step))
            final = replace(ended, accepted=ended.done - ended.failed, rejected=0)  # answered, as online
            shown.finish(final)
            skipped = final.skipped
        else:
            results = _online(distinct, cache, settings, budget, stats, shown, phase, step)
            skipped = sum(result.stopped_by_budget for result in results)
        answers = []
        for call in calls:
            record = cache.get(call.cache_key)
            answers.append(record.get("content") if record is not None else None)
    return PhaseOutcome(answers, results, stats, skipped)


def _online(calls: Sequence[ClassificationCall], cache: ResponseCache, settings: ProviderSettings,
            budget: Budget, stats: CallStats, reporter: ProgressReporter, phase: str, step: str
            ) -> list[CallResult]:
    counts = {"done": 0, "ok": 0, "failed": 0, "skipped": 0}
    reporter.start(len(calls), phase, step)

    def state() -> ProgressState:
        return ProgressState(counts["done"], len(calls), counts["ok"], 0, counts["failed"], stats.input_tokens,
                             stats.output_tokens, stats.cost_usd, phase, counts["skipped"], step)

    async def send(client: LLMClient, call: ClassificationCall) -> CallResult:
        return await client.complete_json(
            messages=call.messages, model=call.model, response_format=call.response_format,
            sampling=dict(call.planned.sampling), seed=call.planned.seed, cache_key=call.cache_key)

    def shown(call: ClassificationCall, result: CallResult) -> None:
        counts["done"] += 1
        counts["ok" if result.ok else "skipped" if result.stopped_by_budget else "failed"] += 1
        reporter.update(state())

    try:
        return run_online(calls, send, settings=settings, cache=cache, budget=budget, stats=stats,
                          on_result=shown)
    finally:
        reporter.finish(state())


__all__ = ["ClassificationCall", "PhaseOutcome", "resolve", "run_calls"]
