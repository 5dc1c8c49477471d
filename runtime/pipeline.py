"""The whole of `taskc run`: the stages of the runtime in order, from a compiled task to a judged model.

Generation (with a provider) → labeling functions on the pool → label model
(→ the LLM labels what the rules leave open, with a provider) → the local model
→ evaluation of every predictor on the gold set → the pass criterion → the
expert's report. Each stage lives in its own module (`inputs`, `labeling` and
`label_model`, `llm_phases`, `training_set`, `training`, `evaluate`, `outputs`);
this one only wires them and decides what runs, with the options the CLI built
(`options`). Everything that needs an LLM is imported inside the
branch that uses it, so the offline path (no key, no network) never depends on
the provider code. One `Budget` spans every LLM phase of a run, so --max-calls
and --max-cost bound the run, not each phase; a phase whose every call failed
at the provider (no connection, HTTP errors) stops the run with ProviderFailure
instead of letting later phases retry the same dead endpoint (`llm_phases`). Every file is
written atomically into the run directory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskc.compiler import CompiledTask, TaskcError, TaskIR, counted

from . import expert_answers, expert_loop, label_model, labeling, model_process
from .datafiles import DataRecord
from .evaluate import PREDICTORS, PredictorScores, evaluate_criterion, score_predictor
from .features import item_batch
from .gold_split import DEV
from .inputs import gold_halves, read_inputs
from .options import HOW_TO_ENABLE_LLM, Notice, RunOptions, provider_settings
from .outputs import write_outputs
from .predictor import Predictors
from .progress import GENERATION, GOLD_SCORING, POOL_LABELING, REPORT, TRAINING, make_reporter
from .result import GoldItem, PoolItem, RunResult
from .students import EmbeddingStudent
from .training import llm_data_effect, train_local_model, train_student
from .training_set import gold_in_training, gold_keys, training_examples, without_gold

if TYPE_CHECKING:
    from .provider import Budget

# the predictors that learn from the expert's answers: all but the rules and the prompted LLM
TRAINED_PREDICTORS = tuple(name for name in PREDICTORS if name not in ("labeling_functions", "llm"))
LLM_STEPS = ("generation", "LLM labeling of uncovered/conflicting pool items", "prompted-LLM baseline",
             "fine-tuning")


def run(compiled: CompiledTask, options: RunOptions, notice: Notice = lambda message: None) -> RunResult:
    """Run the loop; raise DataFileError for unusable pool/gold files (before anything is written)."""
    task = compiled.ir
    notes: list[str] = []
    paths = options.paths
    pool_records, gold_records, gold_display = read_inputs(task, paths, notes)
    answers = expert_loop.read_task_answers(task, paths.answers, notes)
    real_gold = len(gold_records)
    if answers is not None:  # the answers are extra dev gold: after the split, so the test half stays as it was
        gold_records = gold_records + expert_answers.dev_gold_records(task, answers, gold_records)
    trainer = model_process.trainer()  # the local model's, fitted in a process of its own where that pays
    settings = provider_settings(options.endpoint)
    skipped: tuple[str, ...] = () if settings is not None else LLM_STEPS
    if settings is not None and not compiled.calls.complete:
        raise TaskcError("the task was compiled without its call plan (compile_task(plan_data=False)), so the "
                         "run cannot make the calls that depend on the pool and gold set; compile it with "
                         "plan_data=True")
    if settings is None:
        notice(f"no LLM provider configured: skipped {', '.join(LLM_STEPS)}; to enable them, {HOW_TO_ENABLE_LLM}")
    elif not options.finetune.enabled:
        skipped = ("fine-tuning (pass --finetune)",)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    llm: dict[str, Any] = {}
    reporter = make_reporter(quiet=options.presentation.quiet, json_progress=options.presentation.json_progress)
    max_cost = options.budget.max_cost
    if settings is not None and max_cost is not None:
        from .budget_bound import overshoot_bound

        bound = overshoot_bound(compiled, max_cost, settings.concurrency, model=settings.model,
                                batch=options.endpoint.batch, finetune=options.finetune.enabled)
        if bound is not None:  # said before the first call: how far past --max-cost the run can go
            notice(bound.line())
            llm["budget"] = {"max_cost": max_cost, "overshoot_bound_usd": round(bound.bound_usd, 6),
                             "in_flight": bound.in_flight, "largest_call_usd": round(bound.largest_call_usd, 6)}

    generated: list[dict[str, Any]] = []
    budget: Budget | None = None
    if settings is not None:
        from .llm_phases import generate
        from .provider import Budget

        # One budget for the whole run: --max-calls / --max-cost bound generation, pool labeling and
        # evaluation together, at the task's own prices where it gives them.
        budget = Budget(max_cost, options.budget.max_calls, prices=dict(task.generate.prices))
        budget.adjustments.announce = notice  # a server's refusal of part of a request, as the run adapts to it
        reporter.phase_start(GENERATION, counted(len(compiled.plan), "planned call"))
        generated = generate(compiled, options, settings, budget, llm, notes, reporter)
        reporter.phase_done(GENERATION, f"{counted(len(generated), 'example')} accepted")

    functions = labeling.labeling_functions(task)
    voter = labeling.RuleVoter(task, functions)
    gold_batch = item_batch(task, functions, [r.values for r in gold_records], voter)
    halves = gold_halves(task, gold_records[:real_gold]) + (DEV,) * (len(gold_records) - real_gold)
    gold = [GoldItem(r.values, r.label or "", r.line, labeling.fired_rules(functions, gold_batch.votes[i]),
                     halves[i]) for i, r in enumerate(gold_records)]

    pool: list[PoolItem] = []
    rules_pool: list[PoolItem] = []
    analysis = None
    fitted: label_model.LabelModelResult | None = None
    if pool_records:
        reporter.phase_start(POOL_LABELING, counted(len(pool_records), "item"))
        matrix = voter.votes(labeling.rule_environments(task, pool_records))
        # rule accuracies are what the expert edits rules by: counted on the dev half only
        dev = [i for i, g in enumerate(gold) if g.half == DEV]
        dev_matrix = labeling.VoteMatrix(gold_batch.votes[dev], (), ())
        analysis = labeling.analyse(functions, matrix, task, dev_matrix if dev else None,
                                    [task.class_names.index(gold[i].label) for i in dev] if dev else None)
        fitted = label_model.fit_dawid_skene(matrix.votes, len(task.class_names))
        pool = _pool_items(task, functions, pool_records, matrix, fitted)
        rules_pool = pool  # as the rules labeled it: what a run without the LLM would train on
        if settings is not None and budget is not None:
            from .llm_phases import label_pool

            pool = label_pool(compiled, options, settings, budget, pool, llm, notes, reporter)
        if answers is not None:
            pool = expert_loop.answered_pool(task, pool, answers)
            rules_pool = expert_loop.answered_pool(task, rules_pool, answers)
        reporter.phase_done(POOL_LABELING, f"{sum(p.label is not None for p in pool)} of {len(pool)} labeled")
    elif task.pool is None:
        notes.append("the task names no pool, so nothing was labeled by the rules")

    answered = expert_loop.answers_outside_pool(task, pool, answers)
    held_out = gold_keys(task, gold[:real_gold])  # what the gold set scores is not trained on
    examples, left_out = without_gold(task, training_examples(task, generated, pool, fitted, answered), held_out)
    if left_out:
        notes.append(f"{counted(left_out, 'training example')} had the input of a gold item and "
                     f"{'was' if left_out == 1 else 'were'} left out of training (a generated copy of a gold "
                     "item, or a gold item that is also in the pool), so the gold set scores the models on "
                     "items they did not learn")
    reporter.phase_start(TRAINING, counted(len(examples), "example"))
    # the rules' votes on the training inputs, worked out once for the local model and the student
    training_batch = item_batch(task, functions, [e.values for e in examples], voter)
    local = train_local_model(task, functions, training_batch, examples, paths.run_dir / "model", notes, trainer)
    student = train_student(task, functions, training_batch, examples, paths.run_dir, options.presentation.quiet,
                            settings, budget, notes, notice, reporter,
                            _planned_embeddings(compiled, options, gold, generated), options.endpoint.batch)
    predictors = Predictors(task, functions, fitted, local, student)
    reporter.phase_done(TRAINING, "local model" + (" and student" if student is not None else ""))
    predictions: dict[str, list[str | None]] = {}
    cited: list[tuple[str, ...]] | None = None
    effect = None
    if gold:
        reporter.phase_start(GOLD_SCORING, counted(len(gold), "item"))
        predictions = {name: predictors.labels(gold_batch, name) for name in predictors.available}
        if settings is not None and budget is not None:
            from .llm_phases import llm_predictors

            scored, cited = llm_predictors(compiled, options, settings, budget, gold, llm, notes, reporter)
            predictions.update(scored)
            # what the LLM's data did: the local model trained again without it, on the same dev items
            effect = llm_data_effect(task, functions, voter, fitted, rules_pool, answered, examples, gold, gold_batch,
                                     predictions, held_out, trainer)
        reporter.phase_done(GOLD_SCORING, counted(len(predictions), "predictor"))
    else:
        notes.append("no gold set (add eval.gold to the task or pass --gold FILE), so nothing was evaluated")
    if isinstance(student, EmbeddingStudent):
        llm["embeddings"] = student.embed.to_json()  # type: ignore[attr-defined]  # pool, views and gold
    if budget is not None and budget.usage_estimated:
        notes.append(f"{counted(budget.usage_estimated, 'LLM answer')} came without "
                     "token usage, or with a side of it missing or 0 (the server does not count it): those tokens "
                     "and their cost were estimated from the length, 4 characters a token, so the costs shown and "
                     "--max-cost hold only that closely")
    if budget is not None:
        notes.extend(budget.adjustments.notes())
    if budget is not None and budget.exhausted:
        from .llm_phases import budget_note

        notes.append(budget_note(options.budget))
    metrics = _score(task, gold, predictions)
    leaked = gold_in_training(task, gold[:real_gold], examples)
    if leaked:
        notes.append(f"{counted(leaked, 'gold item')} also appear{'s' if leaked == 1 else ''} in "
                     "the training data as the expert's answers (same input); the trained models' scores on "
                     "them are optimistic")
    answered_dev = len(gold) - real_gold
    if answered_dev and any(name in predictions for name in TRAINED_PREDICTORS):
        notes.append(f"{counted(answered_dev, 'dev gold item')} {'is an' if answered_dev == 1 else 'are'} expert "
                     f"answer{'s' if answered_dev != 1 else ''} the models also trained on (weight "
                     f"{expert_answers.EXPERT_WEIGHT:g}): the trained predictors' dev scores are optimistic there, the "
                     "rules' are not; the test half, which judges the criterion, holds none of them")

    result = RunResult(task=task, run_dir=paths.run_dir, functions=functions, analysis=analysis, pool=pool,
                       gold_display=gold_display, gold=gold, predictions=predictions, metrics=metrics,
                       criterion=evaluate_criterion(task, metrics) if gold else None, skipped_llm_steps=skipped,
                       training=dict(sorted(Counter(e.source for e in examples).items())), examples=tuple(examples),
                       notes=notes, llm=llm, estimate_usd=compiled.estimate.cost_usd,
                       predictors=predictors, answers=answers, llm_cited=cited if "llm" in predictions else None,
                       llm_data_effect=effect)
    if settings is not None:
        from .llm_labeling import analyse_llm

        result.llm_function = analyse_llm([(f.rationale_id, f.class_name) for f in functions], pool, gold,
                                          result.dev_indices, predictions.get("llm"), result.llm_cited)
    reporter.phase_start(REPORT)
    write_outputs(result)
    reporter.phase_done(REPORT, str(result.files["report_html"]))
    return result


# -- the pool --------------------------------------------------------------------------------------

def _pool_items(task: TaskIR, functions: Sequence[labeling.LabelingFunction], records: Sequence[DataRecord],
                matrix: labeling.VoteMatrix, fitted: label_model.LabelModelResult) -> list[PoolItem]:
    classes = task.class_names
    majority = label_model.label_names(label_model.majority_vote(matrix.votes, len(classes)), classes)
    modelled = label_model.label_names(fitted.labels, classes)
    items = []
    for i, record in enumerate(records):
        label = modelled[i]
        confidence = float(fitted.probabilities[i].max()) if label is not None else None
        items.append(PoolItem(values=record.values, line=record.line,
                              votes=labeling.fired_rules(functions, matrix.votes[i]),
                              majority=majority[i], label_model=label, confidence=confidence, label=label,
                              source="label_model" if label is not None else None))
    return items


def _planned_embeddings(compiled: CompiledTask, options: RunOptions, gold: Sequence[GoldItem],
                        generated: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The texts of the plan's embeddings requests (none unless finetune.provider is embeddings)."""
    if compiled.ir.finetune.provider != "embeddings":
        return []
    from .embeddings import planned_texts, run_embedding_calls

    override = [(g.line, g.values) for g in gold] if options.paths.gold is not None else None
    return planned_texts(compiled.ir, run_embedding_calls(compiled, override), generated)


def _score(task: TaskIR, gold: Sequence[GoldItem],
           predictions: Mapping[str, list[str | None]]) -> dict[str, PredictorScores]:
    if not gold:
        return {}
    truth = [g.label for g in gold]
    halves = [g.half for g in gold]
    ordered = sorted(predictions, key=lambda name: PREDICTORS.index(name))
    return {name: score_predictor(truth, predictions[name], task.class_names, halves) for name in ordered}


__all__ = ["LLM_STEPS", "run"]
