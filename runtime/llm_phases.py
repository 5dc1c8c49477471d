"""Runtime stage: the phases of a run that call the LLM, each over the compiler's call plan.

Generation of examples from the plan; the LLM labeling of the pool items the rules leave open; the
prompted LLM on the gold set and, with --finetune, the fine-tuned model. Every phase spends from the
run's one `Budget`, and a phase whose every call failed at the provider stops the run with
ProviderFailure: later phases would only spend minutes retrying the same dead provider. Nothing here
is imported on an offline run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskc.compiler import CompiledTask, ExitStatus, TaskcError

from .datafiles import DataFileError
from .options import BudgetOptions, RunOptions, generation_options
from .progress import GOLD_SCORING, POOL_LABELING, ProgressReporter
from .result import GoldItem, PoolItem

if TYPE_CHECKING:
    from taskc.compiler import LLMCall

    from .classify import ClassificationCall
    from .provider import Budget, CallFailure, ProviderSettings


class ProviderFailure(TaskcError):
    """The provider answered none of the calls: a run without them would hide the problem."""

    exit_status = ExitStatus.RUNTIME_FAILURE

    ADVICE = ("Check --base-url / OPENAI_BASE_URL, the key and the model; answered calls are cached, so the "
              "same command resumes once the provider works.")

    @classmethod
    def advice(cls, first: CallFailure | None, settings: ProviderSettings) -> str:
        """What to do, after the first failure: requests that timed out may only need longer."""
        from .provider import ErrorKind

        if first is not None and first.kind is ErrorKind.TIMEOUT:
            return (f"Each request may take {settings.timeout:g} s (--request-timeout): a slow server or model "
                    "needs a longer one, or fewer calls at once (--concurrency). " + cls.ADVICE)
        return cls.ADVICE


def budget_note(budget: BudgetOptions) -> str:
    """The run's note when its budget ran out."""
    limits = " and ".join(text for text in (
        None if budget.max_calls is None else f"--max-calls {budget.max_calls}",
        None if budget.max_cost is None else f"--max-cost {budget.max_cost:g}") if text)
    return (f"the run's budget ({limits or 'max calls / max cost'}) ran out, so some LLM calls were not made and "
            "the steps after it saw less data; answered calls are cached: rerun with a larger budget to finish")


def generate(compiled: CompiledTask, options: RunOptions, settings: ProviderSettings, budget: Budget,
             llm: dict[str, Any], notes: list[str], reporter: ProgressReporter) -> list[dict[str, Any]]:
    """Run the generation plan; return the accepted examples (input fields, "label", "id", provenance)."""
    from .generation import run_generation

    run_dir = options.paths.run_dir
    summary = run_generation(compiled, run_dir, settings, generation_options(options), budget=budget,
                             reporter=reporter)
    llm["generation"] = summary.to_json()
    answered = summary.calls_made + summary.calls_cached
    if summary.calls_failed and not answered and not summary.stopped_by_budget:
        first = summary.failures[0][1] if summary.failures else None
        raise ProviderFailure(
            f"the LLM provider failed all {summary.calls_failed} generation calls "
            f"({'no error recorded' if first is None else f'first error: {first.message}'}).\n"
            f"{ProviderFailure.advice(first, settings)}")
    examples = list(summary.examples)
    if not examples:
        notes.append("generation produced no usable examples")
    return examples


def _classify_phase(what: str, shown_as: tuple[str, str], settings: ProviderSettings, options: RunOptions,
                    budget: Budget, calls: Sequence[ClassificationCall], classes: Sequence[str],
                    reporter: ProgressReporter, rationale_ids: Sequence[str] = ()
                    ) -> tuple[list[str | None], dict, list[tuple[str, ...]]]:
    """Make the calls of ``what`` (the "pool labeling"), their progress shown as the run's phase and step
    ``shown_as`` (see ProgressState); raise ProviderFailure when the provider answered none of them.
    Returns the labels, the call stats and, per call, the rationales the answer cited."""
    from .classify import run_calls
    from .llm_labeling import cited_rationales

    outcome = run_calls(calls, settings, budget, options.paths.run_dir, batch=options.endpoint.batch,
                        reporter=reporter, phase=shown_as[0], step=shown_as[1])
    failed = [r for r in outcome.results if not r.ok and not r.stopped_by_budget]
    if failed and len(failed) == len(outcome.results) and all(r.kind is not None and r.kind.unreachable
                                                              for r in failed):
        # Later phases would only spend minutes retrying the same dead provider: stop here.
        raise ProviderFailure(
            f"the LLM provider failed {'the one call' if len(failed) == 1 else f'all {len(failed)} calls'} of the "
            f"{what} (first error: {failed[0].error}).\n"
            f"{ProviderFailure.advice(failed[0].failure, settings)}")
    labels = [str(a.get("label")) if a and a.get("label") in classes else None for a in outcome.answers]
    stats = outcome.stats.to_json() | {"calls_planned": len(calls), "batch": options.endpoint.batch,
                                       "skipped_by_budget": outcome.skipped_by_budget}
    return labels, stats, [cited_rationales(a, rationale_ids) for a in outcome.answers]


def label_pool(compiled: CompiledTask, options: RunOptions, settings: ProviderSettings, budget: Budget,
               pool: list[PoolItem], llm: dict[str, Any],
               notes: list[str], reporter: ProgressReporter) -> list[PoolItem]:
    """Ask the LLM about the pool items the rules leave unlabeled or in conflict, as the plan lists them."""
    from taskc.compiler import LABEL_POOL

    from .classify import resolve

    planned = compiled.calls.phase(LABEL_POOL)
    if not planned:
        return pool
    open_items = _planned_items(planned, [item.line for item in pool], "pool")
    calls = resolve(planned, settings.model)
    labels, stats, cited = _classify_phase("pool labeling", (POOL_LABELING, ""), settings, options, budget, calls,
                                           compiled.ir.class_names, reporter, [r.id for r in compiled.ir.rationales])
    llm["pool_labeling"] = stats | {"items": len(open_items), "labeled": sum(lab is not None for lab in labels)}
    unlabeled = sum(lab is None for lab in labels)
    if unlabeled:
        skipped = stats["skipped_by_budget"]
        why = f" ({skipped} of them not asked: the budget ran out)" if skipped else ""
        notes.append(f"the LLM could not label {unlabeled} of {len(open_items)} open pool items{why}; they stay as "
                     "the rules left them")
    updated = list(pool)
    for i, label, because in zip(open_items, labels, cited, strict=True):
        if label is not None:
            updated[i] = dataclasses.replace(pool[i], confidence=None, label=label, source="llm", cited=because)
    return updated


def llm_predictors(compiled: CompiledTask, options: RunOptions, settings: ProviderSettings, budget: Budget,
                   gold: Sequence[GoldItem], llm: dict[str, Any], notes: list[str], reporter: ProgressReporter
                   ) -> tuple[dict[str, list[str | None]], list[tuple[str, ...]]]:
    """The prompted LLM on the gold set, and the fine-tuned model when --finetune made one; with the
    rationales the prompted LLM cited for each gold item."""
    from taskc.compiler import SCORE_FINETUNED, SCORE_GOLD, PlanItem, gold_calls

    from .classify import resolve

    classes = compiled.ir.class_names
    predictions: dict[str, list[str | None]] = {}
    plan = compiled.calls.calls
    if options.paths.gold is not None:  # --gold: this file's calls, planned by the compiler's own planner
        plan = tuple(gold_calls(compiled.ir, [PlanItem(g.line, g.values, g.label) for g in gold],
                                compiled.classification_messages, compiled.training_messages,
                                compiled.classification_format, compiled.calls.finetune_base_model))
    planned = [call for call in plan if call.phase == SCORE_GOLD]
    lines = [g.line for g in gold]
    indices = _planned_items(planned, lines, "gold set")
    labels, llm["prompted_baseline"], cited_per_call = _classify_phase(
        "prompted baseline", (GOLD_SCORING, "prompted LLM"), settings, options, budget,
        resolve(planned, settings.model), classes, reporter,
        [r.id for r in compiled.ir.rationales])
    predictions["llm"] = _per_item(len(gold), indices, labels)
    cited: list[tuple[str, ...]] = [()] * len(gold)
    for index, because in zip(indices, cited_per_call, strict=True):
        cited[index] = because
    _drop_if_silent(predictions, "llm", notes)
    if options.finetune.enabled and compiled.ir.finetune.provider == "local":
        notes.append("finetune.provider is 'local': the local model is the fine-tuned model; nothing was uploaded")
    elif options.finetune.enabled and compiled.ir.finetune.provider == "openai":
        from .finetune import finetune_wait, run_finetune

        wait = finetune_wait(options.finetune.max_wait, settings)
        outcome = run_finetune(compiled, options.paths.run_dir, settings, timeout=wait)
        llm["finetune"] = outcome
        model = outcome.get("fine_tuned_model")
        if not model and outcome.get("timed_out"):
            notes.append(f"the fine-tuning job {outcome.get('job_id')} was still {outcome.get('status')} after "
                         f"{wait:g} s (--finetune-max-wait), so the fine-tuned model is not scored; the job keeps "
                         "running at the provider: run the same command again to pick it up (no second job is "
                         "started)")
            return predictions, cited
        if not model:
            notes.append(f"fine-tuning produced no model to evaluate: {outcome.get('error') or outcome.get('status')}")
            return predictions, cited
        tuned = dataclasses.replace(settings, model=str(model))
        # the fine-tuned model saw (system, user) → assistant label in training: the plan asks it the same way
        planned = [call for call in plan if call.phase == SCORE_FINETUNED]
        indices = _planned_items(planned, lines, "gold set")
        labels, llm["finetuned_eval"], _ = _classify_phase(
            "fine-tuned model's evaluation", (GOLD_SCORING, "fine-tuned model"), tuned, options, budget,
            resolve(planned, str(model)), classes, reporter)
        predictions["finetuned"] = _per_item(len(gold), indices, labels)
        _drop_if_silent(predictions, "finetuned", notes)
    return predictions, cited


def _drop_if_silent(predictions: dict[str, list[str | None]], name: str, notes: list[str]) -> None:
    """A predictor that labeled no gold item (budget spent, every answer unusable) has no scores to report."""
    if predictions.get(name) and all(label is None for label in predictions[name]):
        from .report import predictor_title

        del predictions[name]
        notes.append(f"the {predictor_title(name)} labeled no gold item (see llm in metrics.json), so it is not scored")


def _planned_items(planned: Sequence[LLMCall], lines: Sequence[int], what: str) -> list[int]:
    """The index of the item each planned call classifies (matched by its line in the file)."""
    index_of = {line: i for i, line in enumerate(lines)}
    missing = [call.line for call in planned if call.line not in index_of]
    if missing:
        raise DataFileError(f"the {what} changed since it was compiled (no item on line {missing[0]}); "
                            "run the same command again")
    return [index_of[call.line] for call in planned if call.line is not None]


def _per_item(count: int, indices: Sequence[int], labels: Sequence[str | None]) -> list[str | None]:
    values: list[str | None] = [None] * count
    for index, label in zip(indices, labels, strict=True):
        values[index] = label
    return values


__all__ = ["budget_note", "generate", "label_pool", "llm_predictors"]
