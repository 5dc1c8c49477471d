"""Runtime stage: execute a compiled generation plan and turn the answers into a dataset.

This is the façade of the generation runtime. `run_generation` resolves each
plan job into a call (the --model override changes the model and therefore the
cache key), runs the calls online (`call_runner`) or through the Batch API,
and then assembles the dataset from the response cache in plan order:
validation (`validate`), labeling-function votes, deduplication (`dedupe`) and
the run-directory files (`datasets`). Because the dataset is rebuilt from the
cache every time, a run that was killed and restarted neither loses nor
duplicates an example, and a rerun of an unchanged plan makes no network call.
The API key is never written: only answers, usage and request ids are stored,
each scrubbed of it where it entered (provider.scrub_in_place). A rejected
example is kept in rejected.jsonl only up to `MAX_REJECTED_EXAMPLE_CHARS` of
its JSON: it is there to be read, and an answer need not be small.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler import GENERATE, CompiledTask, GenerationJob, call_cache_key
from .cache import ResponseCache
from .call_runner import failures_by_key, run_online
from .datasets import CACHE_FILE, EXAMPLES_FILE, STATS_FILE, read_jsonl, write_dataset, write_json
from .dedupe import Deduplicator
from .progress import ProgressReporter, ProgressState, batched, make_reporter
from .provider import (
    Budget,
    CallFailure,
    CallResult,
    CallStats,
    LLMClient,
    ProviderSettings,
    provider_settings_from_env,
)
from .validate import ExampleValidator

MAX_REJECTED_EXAMPLE_CHARS = 4096  # of an example's JSON, kept in rejected.jsonl


@dataclass(frozen=True)
class GenerationOptions:
    """How one generation run behaves. Request limits (concurrency, rpm, tpm) live in ProviderSettings."""

    max_cost: float | None = None
    max_calls: int | None = None
    batch: bool = False
    quiet: bool = False
    json_progress: bool = False


@dataclass(frozen=True)
class GenerationSummary:
    calls_total: int
    calls_made: int
    calls_cached: int
    calls_failed: int
    retries: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    accepted: int
    rejected: int
    duplicates: int
    stopped_by_budget: bool
    paths: dict[str, Path] = field(default_factory=dict)
    calls_skipped: int = 0  # calls not made because the budget ran out; a rerun makes them
    rejects_by_reason: dict[str, int] = field(default_factory=dict)  # "label:off_target", "empty:dish", ...
    by_cell: dict[str, dict[str, int]] = field(default_factory=dict)  # see Dataset.by_cell
    rule_disagreements: dict[str, int] = field(default_factory=dict)  # rationale id -> accepted examples
    response_format_fallback: str | None = None  # what a server that refused the planned format was asked for
    dropped_parameters: tuple[str, ...] = ()  # sampling parameters the server refused, left out of its calls
    # (job id, why not) of the failed calls, not those the budget stopped, by job id as stats.json lists them;
    # not in to_json
    failures: tuple[tuple[str, CallFailure], ...] = ()
    # the accepted examples as examples.jsonl holds them (input fields, "label", "id", provenance), in plan
    # order, for the run's next stage to use without reading the file back; not in to_json
    examples: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(dataclasses.replace(self, failures=(), examples=()))  # no copy of those
        del values["failures"], values["examples"]
        values["paths"] = {role: str(path) for role, path in self.paths.items()}
        values["cost_usd"] = round(self.cost_usd, 6)
        if self.response_format_fallback is None:
            del values["response_format_fallback"]
        if not self.dropped_parameters:
            del values["dropped_parameters"]
        return values


@dataclass(frozen=True)
class PlannedCall:
    """A plan job as it will be sent: the effective model, its messages and its cache key."""

    job: GenerationJob
    model: str
    messages: list[dict[str, str]]
    cache_key: str

    @property
    def response_format(self) -> dict[str, Any]:
        return self.job.response_format

    def request_body(self) -> dict[str, Any]:
        """The chat-completions request body (used by the Batch API path)."""
        return {"model": self.model, "messages": self.messages, "response_format": self.job.response_format,
                **self.job.sampling(), "seed": self.job.seed}


def planned_calls(compiled: CompiledTask, model_override: str | None = None) -> list[PlannedCall]:
    """The generation calls of the compiled call plan (plan.json) as they will be sent: each call's own
    messages, with its job (for the examples' provenance), under --model's name and cache key when that
    overrides the task's model."""
    calls = []
    for job, call in zip(compiled.plan, compiled.calls.phase(GENERATE), strict=True):
        assert call.id == job.id, (call.id, job.id)  # one plan, in one order
        messages = [dict(message) for message in call.messages]
        model = model_override or job.model
        key = job.cache_key if model == job.model else call_cache_key(
            model, messages, job.sampling(), job.seed, job.response_format)
        calls.append(PlannedCall(job, model, messages, key))
    return calls


def examples_shape_problem(content: dict[str, Any]) -> str | None:
    """The structural check every generation answer must pass (on top of its JSON Schema)."""
    examples = content.get("examples")
    if not isinstance(examples, list):
        return "answer has no 'examples' list"
    if not examples:
        return "answer has an empty 'examples' list"
    if not all(isinstance(e, dict) for e in examples):
        return "an item of 'examples' is not an object"
    return None


def run_generation(compiled: CompiledTask, run_dir: Path, settings: ProviderSettings,
                   options: GenerationOptions, *, reporter: ProgressReporter | None = None,
                   budget: Budget | None = None) -> GenerationSummary:
    """Run the plan (resuming from the cache in ``run_dir``) and write the dataset files.

    ``budget`` is the run's shared spending guard when generation is one phase of `taskc run`; without it
    the options' max_cost / max_calls make one for generation alone.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    calls = planned_calls(compiled, settings.model)
    reporter = reporter or make_reporter(quiet=options.quiet, json_progress=options.json_progress)
    stats = CallStats()
    if budget is None:
        # The Batch API's half price is applied where its answers are charged (batch.py).
        budget = Budget(options.max_cost, options.max_calls, prices=dict(compiled.ir.generate.prices))
    validator = ExampleValidator(compiled.ir)
    started = time.monotonic()
    with ResponseCache(run_dir / CACHE_FILE) as cache:
        if options.batch:
            from .batch import run_batch_generation  # imported only for a batched run

            failures = run_batch_generation(calls, cache, settings, budget, stats, reporter,
                                            validate=examples_shape_problem)
        else:
            failures = _generate_online(calls, cache, settings, budget, stats, validator, reporter)
        call_seconds = time.monotonic() - started
        dataset = assemble_dataset(compiled, calls, cache, validator)
        stopped = budget.exhausted and any(failure.stopped_by_budget for failure in failures.values())
        skipped = sum(failure.stopped_by_budget for failure in failures.values())
        failed = _failed_calls(calls, failures)
        paths = write_dataset(run_dir, dataset.accepted, dataset.rejected, compiled.training_messages,
                              compiled.ir.field_names, float(compiled.finetune.validation_split))
        summary = GenerationSummary(
            calls_total=len(calls), calls_made=stats.calls_made, calls_cached=stats.calls_cached,
            calls_failed=len(failures) - skipped, retries=stats.retries, input_tokens=stats.input_tokens,
            output_tokens=stats.output_tokens, cost_usd=stats.cost_usd, accepted=len(dataset.accepted),
            rejected=dataset.rejected_count, duplicates=dataset.duplicate_count, stopped_by_budget=stopped,
            paths={**paths, "stats": run_dir / STATS_FILE, "cache": run_dir / CACHE_FILE}, calls_skipped=skipped,
            rejects_by_reason=dict(sorted(dataset.rejects_by_reason.items())),
            by_cell={cell: dict(sorted(counts.items())) for cell, counts in sorted(dataset.by_cell.items())},
            rule_disagreements=dict(sorted(dataset.rule_disagreements.items())), failures=failed,
            response_format_fallback=stats.response_format_fallback,
            dropped_parameters=tuple(sorted(stats.dropped_parameters)),
            examples=tuple(dataset.accepted))
        write_json(run_dir / STATS_FILE, _stats_json(summary, stats, dataset,
                                                     (call_seconds, time.monotonic() - started), options))
    reporter.finish(ProgressState(len(calls) - skipped, len(calls), summary.accepted, summary.rejected,
                                  summary.calls_failed, stats.input_tokens, stats.output_tokens, stats.cost_usd,
                                  skipped=skipped, step=batched("") if options.batch else ""))
    return summary


def load_generated_examples(run_dir: Path) -> list[dict[str, Any]]:
    """The accepted examples of a run (input fields, "label", "id", provenance), in plan order."""
    path = Path(run_dir) / EXAMPLES_FILE
    return read_jsonl(path) if path.exists() else []


# -- online calls ---------------------------------------------------------------------------------

def _generate_online(calls: Sequence[PlannedCall], cache: ResponseCache, settings: ProviderSettings,
                     budget: Budget, stats: CallStats, validator: ExampleValidator,
                     reporter: ProgressReporter) -> dict[str, CallFailure]:
    """Make every call not yet cached; return {cache key: why not} for the calls that did not succeed."""
    tally = _Tally(len(calls))
    reporter.start(len(calls))
    showing = type(reporter) is not ProgressReporter  # the silent reporter needs no running counts

    async def send(client: LLMClient, call: PlannedCall) -> CallResult:
        return await client.complete_json(
            messages=call.messages, model=call.model, response_format=call.job.response_format,
            sampling=call.job.sampling(), seed=call.job.seed, cache_key=call.cache_key,
            validate=examples_shape_problem)

    def shown(call: PlannedCall, result: CallResult) -> None:
        tally.add(result, validator, call.job.target_class)
        reporter.update(tally.state(stats))

    results = run_online(calls, send, settings=settings, cache=cache, budget=budget, stats=stats,
                         on_result=shown if showing else None)
    return failures_by_key([call.cache_key for call in calls], results)


class _Tally:
    """Running counts for the progress display (validation only; duplicates are known at the end)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.accepted, self.rejected, self.skipped = total, 0, 0, 0, 0

    def add(self, result: CallResult, validator: ExampleValidator, target: str) -> None:
        self.done += 1
        if not result.ok:
            self.skipped += result.stopped_by_budget
            return
        for example in (result.content or {}).get("examples", []):
            if validator.check(example, target) is None:
                self.accepted += 1
            else:
                self.rejected += 1

    def state(self, stats: CallStats) -> ProgressState:
        return ProgressState(self.done, self.total, self.accepted, self.rejected, stats.calls_failed,
                             stats.input_tokens, stats.output_tokens, stats.cost_usd, skipped=self.skipped)


# -- assembling the dataset -----------------------------------------------------------------------

@dataclass
class Dataset:
    accepted: list[dict[str, Any]]
    rejected: list[dict[str, Any]]  # validation rejections and duplicates, each with its reason
    rejects_by_reason: Counter[str]
    duplicates_by_kind: Counter[str]
    rule_agreement: Counter[str]
    # per generation cell ("class/rationale", "class/_class"): accepted, duplicates, and each reject reason
    by_cell: dict[str, Counter[str]] = field(default_factory=dict)
    # rationale id -> accepted examples on which its rule fired for a class other than the generated label
    rule_disagreements: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_count(self) -> int:
        return sum(self.rejects_by_reason.values())

    @property
    def duplicate_count(self) -> int:
        return sum(self.duplicates_by_kind.values())


def assemble_dataset(compiled: CompiledTask, calls: Sequence[PlannedCall], cache: ResponseCache,
                     validator: ExampleValidator | None = None) -> Dataset:
    """Validate and dedupe every cached answer of the plan, in plan order (so the result is deterministic)."""
    validator = validator or ExampleValidator(compiled.ir)
    deduper = Deduplicator(compiled.ir.generate.dedupe, compiled.ir.field_names)
    dataset = Dataset([], [], Counter(), Counter(), Counter(), {}, Counter())
    kept_ids: list[str] = []  # example id of every example offered to the deduper, in order
    for call in calls:
        record = cache.get(call.cache_key)
        if record is None:
            continue
        cell = dataset.by_cell.setdefault(cell_name(call.job), Counter())
        for index, example in enumerate(record["content"].get("examples", [])):
            example_id = f"{call.job.id}#{index}"
            provenance = _provenance(call, record)
            rejection = validator.check(example, call.job.target_class)
            if rejection is not None:
                dataset.rejects_by_reason[rejection.reason] += 1
                cell[rejection.reason] += 1
                dataset.rejected.append({"id": example_id, "reason": rejection.to_json(),
                                         **_kept_example(example), "provenance": provenance})
                continue
            inputs = validator.inputs(example)
            duplicate = deduper.add(inputs)
            kept_ids.append(example_id)
            if duplicate is not None:
                dataset.duplicates_by_kind[duplicate.kind] += 1
                cell["duplicate"] += 1
                dataset.rejected.append({
                    "id": example_id,
                    "reason": {"check": "duplicate", "id": duplicate.kind, "value": None,
                               "message": f"{duplicate.kind} duplicate of {kept_ids[duplicate.original]}"
                                          f" (similarity {duplicate.similarity:.2f})"},
                    "duplicate_of": kept_ids[duplicate.original], **_kept_example(example),
                    "provenance": provenance})
                continue
            label = example["label"]
            votes = validator.votes(example, label)
            dataset.rule_agreement["no_rule" if votes.agrees is None else
                                   "agree" if votes.agrees else "disagree"] += 1
            cell["accepted"] += 1
            against = [r for r, voted in zip(votes.fired, votes.classes, strict=True) if voted != label]
            dataset.rule_disagreements.update(against)
            cell["rule_disagrees"] += bool(against)
            dataset.accepted.append({"id": example_id, **inputs, "label": label, "provenance": provenance,
                                     "rules": votes.to_json()})
    return dataset


def cell_name(job: GenerationJob) -> str:
    """How stats.json and the report name a generation cell: its class and rationale (or _class)."""
    return f"{job.target_class}/{job.rationale or '_class'}"


def _kept_example(example: Any) -> dict[str, Any]:
    """How rejected.jsonl keeps an example: whole, or the start of its JSON and a note when it is long."""
    text = json.dumps(example, ensure_ascii=False)
    if len(text) <= MAX_REJECTED_EXAMPLE_CHARS:
        return {"example": example}
    return {"example": text[:MAX_REJECTED_EXAMPLE_CHARS],
            "example_truncated": f"the example is {len(text)} characters of JSON; only the first "
                                 f"{MAX_REJECTED_EXAMPLE_CHARS} are kept here (the whole answer is in the cache)"}


def _provenance(call: PlannedCall, record: dict[str, Any]) -> dict[str, Any]:
    job = call.job
    return {"job": job.id, "target_class": job.target_class, "rationale": job.rationale, "mode": job.mode,
            "model": record.get("model") or call.model, "prompt": job.prompt, "prompt_sha256": job.prompt_sha256,
            "request_id": record.get("request_id"), "cache_key": call.cache_key, "seed": job.seed}


def _failed_calls(calls: Sequence[PlannedCall], failures: dict[str, CallFailure]
                  ) -> tuple[tuple[str, CallFailure], ...]:
    """(job id, why not) of the calls that failed, not counting those the budget stopped, by job id."""
    job_of = {call.cache_key: call.job.id for call in calls}
    return tuple((job_of[key], failure) for key, failure in sorted(failures.items(), key=lambda item: job_of[item[0]])
                 if not failure.stopped_by_budget)


def _stats_json(summary: GenerationSummary, stats: CallStats, dataset: Dataset, seconds: tuple[float, float],
                options: GenerationOptions) -> dict[str, Any]:
    return {
        "calls": {"total": summary.calls_total, "made": summary.calls_made, "cached": summary.calls_cached,
                  "failed": summary.calls_failed, "skipped_by_budget": summary.calls_skipped,
                  "requests": stats.requests, "retries": stats.retries},
        "errors": dict(sorted(stats.errors.items())),
        "tokens": {"input": stats.input_tokens, "output": stats.output_tokens},
        "cost_usd": round(stats.cost_usd, 6),
        "unpriced_models": sorted(stats.unpriced_models),
        **({"usage_estimated": stats.usage_estimated} if stats.usage_estimated else {}),
        **({"response_format_fallback": stats.response_format_fallback} if stats.response_format_fallback else {}),
        **({"dropped_parameters": sorted(stats.dropped_parameters)} if stats.dropped_parameters else {}),
        "examples": {"accepted": summary.accepted, "rejected": summary.rejected,
                     "duplicates": summary.duplicates},
        "rejects_by_reason": dict(sorted(dataset.rejects_by_reason.items())),
        "duplicates": dict(sorted(dataset.duplicates_by_kind.items())),
        "rule_agreement": dict(sorted(dataset.rule_agreement.items())),
        "rule_disagreements": dict(sorted(dataset.rule_disagreements.items())),
        "by_cell": {cell: dict(sorted(counts.items())) for cell, counts in sorted(dataset.by_cell.items())},
        "failed_calls": [{"job": job, "error": failure.message} for job, failure in summary.failures],
        "stopped_by_budget": summary.stopped_by_budget,
        "limits": {"max_cost": options.max_cost, "max_calls": options.max_calls, "batch": options.batch},
        "seconds": {"calls": round(seconds[0], 3), "total": round(seconds[1], 3)},
        "max_in_flight": stats.max_in_flight,
    }


__all__ = ["GenerationOptions", "GenerationSummary", "PlannedCall", "ProviderSettings", "assemble_dataset",
           "load_generated_examples", "planned_calls", "provider_settings_from_env", "run_generation"]
