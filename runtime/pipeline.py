"""The whole of `taskc run`: the stages of the runtime in order, from a compiled task to a judged model.

Generation (with a provider) → labeling functions on the pool → label model
(→ the LLM labels what the rules leave open, with a provider) → the local model
→ evaluation of every predictor on the gold set → the pass criterion → the
expert's report. Each stage lives in its own module; this one only wires them
and decides what runs. Everything that needs an LLM is imported inside the
branch that uses it, so the offline path (no key, no network) never depends on
the provider code. One `Budget` spans every LLM phase of a run, so --max-calls
and --max-cost bound the run, not each phase; a phase whose every call failed
at the provider (no connection, HTTP errors) stops the run with ProviderFailure
instead of letting later phases retry the same dead endpoint. Every file is
written atomically into the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from taskc.compiler import (
    DEFAULT_EMBEDDING_MODEL,
    CompiledTask,
    ExitStatus,
    TaskcError,
    TaskIR,
)

from . import expert_answers, expert_loop, history, label_model, labeling, local_model
from .datafiles import DataFile, DataFileError, DataRecord, read_gold, read_pool, write_text_atomic
from .datasets import write_json, write_jsonl
from .evaluate import PREDICTORS, CriterionResult, PredictorScores, evaluate_criterion, score_predictor
from .features import ItemBatch, item_batch, item_text, spec_hash
from .gold_split import DEV, split_gold
from .predictor import Predictors
from .progress import ProgressReporter, make_reporter
from .students import EmbeddingStudent, Student, StudentError, TransformerAdapter

if TYPE_CHECKING:
    from taskc.compiler import LLMCall

    from .classify import ClassificationCall
    from .expert_answers import Answers
    from .expert_loop import ExpertLoop
    from .history import SinceLastRun
    from .llm_labeling import LLMAsFunction
    from .provider import Budget, ProviderSettings
    from .report import DataShift, Findings

LLM_STEPS = ("generation", "LLM labeling of uncovered/conflicting pool items", "prompted-LLM baseline",
             "fine-tuning")
HOW_TO_ENABLE_LLM = "set OPENAI_API_KEY, or OPENAI_BASE_URL / --base-url for a local server"


@dataclass(frozen=True)
class RunOptions:
    run_dir: Path
    gold: Path | None = None  # --gold: overrides eval.gold; any path (it is the user's own file)
    base_url: str | None = None
    model: str | None = None
    concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_cost: float | None = None
    max_calls: int | None = None
    deadline: float | None = None  # --deadline: seconds after which no LLM request starts; the run ends, exit 4
    finetune: bool = False
    finetune_max_wait: float | None = None  # --finetune-max-wait: seconds to wait for a fine-tuning job
    batch: bool = False
    quiet: bool = False
    json_progress: bool = False
    allow_outside: bool = False  # --allow-outside-paths: the task's data files may live outside its directory
    answers: Path | None = None  # --answers: the expert's answers to `taskc ask`; overrides pool.answers


@dataclass(frozen=True)
class PoolItem:
    """A pool input with the rules' votes and the training label it ended up with (and from where)."""

    values: dict[str, Any]
    line: int
    votes: dict[str, str]  # rationale id -> class, for the rationales that fired
    majority: str | None
    label_model: str | None
    confidence: float | None  # label model posterior of its label
    label: str | None
    source: str | None  # label_model | majority | llm | expert | None (unlabeled)
    cited: tuple[str, ...] = ()  # with source "llm": the rationales the LLM said decided its label

    def to_json(self, task: TaskIR) -> dict[str, Any]:
        ordered = {f.name: self.values[f.name] for f in task.fields if f.name in self.values}
        return ordered | {"label": self.label, "label_source": self.source,
                          "confidence": None if self.confidence is None else round(self.confidence, 4),
                          "votes": self.votes, "majority": self.majority, "label_model": self.label_model,
                          "line": self.line} | ({"llm_rationales": list(self.cited)} if self.source == "llm" else {})


@dataclass(frozen=True)
class GoldItem:
    values: dict[str, Any]
    label: str
    line: int
    votes: dict[str, str]  # rationale id -> class, for the rationales that fired on it
    half: str = DEV  # dev (shown to the expert) or test (numbers only; judges the criterion)


@dataclass
class RunResult:
    task: TaskIR
    run_dir: Path
    functions: tuple[labeling.LabelingFunction, ...]
    analysis: labeling.LFAnalysis | None  # None without a pool
    pool: list[PoolItem]
    gold_display: str | None
    gold: list[GoldItem]
    predictions: dict[str, list[str | None]]  # predictor -> one prediction per gold item
    metrics: dict[str, PredictorScores]  # predictor -> its scores on all gold items, dev and test
    criterion: CriterionResult | None
    skipped_llm_steps: tuple[str, ...]
    training: dict[str, int]  # training examples by label source
    examples: tuple[local_model.TrainingExample, ...] = ()  # the students' training set (training_set.jsonl)
    notes: list[str] = field(default_factory=list)  # what did not run, and why
    llm: dict[str, Any] = field(default_factory=dict)  # generation / call summaries when a provider ran
    files: dict[str, Path] = field(default_factory=dict)
    findings: Findings | None = None  # the error analysis behind the report, set when the outputs are written
    predictors: Predictors | None = None  # the offline predictors, as saved in model/
    shift: DataShift | None = None  # how the gold set differs from the pool, set with the findings
    estimate_usd: float | None = None  # the plan's estimated cost (taskc compile's ESTIMATE)
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier runs' records, and this one's last
    since: SinceLastRun | None = None  # how this run differs from the one before (None: the first run)
    spec_changes: list[str] | None = None  # the task's changes since the run before, one line each
    answers: Answers | None = None  # the expert's answers to `taskc ask` this run used
    expert: ExpertLoop | None = None  # questions, suggestions and authors (`expert_loop`), set with the findings
    llm_cited: list[tuple[str, ...]] | None = None  # per gold item: the rationales the prompted LLM cited
    llm_function: LLMAsFunction | None = None  # the LLM as a labeling function beside the rules

    @property
    def primary(self) -> str:
        return self.task.eval.primary if self.task.eval else "rules_then_model"

    @property
    def dev_indices(self) -> tuple[int, ...]:
        """The gold items the expert may see (the test half contributes numbers only)."""
        return tuple(i for i, g in enumerate(self.gold) if g.half == DEV)

    def summary_json(self) -> dict[str, Any]:
        return {
            "task": self.task.name, "run_dir": str(self.run_dir),
            "passed": None if self.criterion is None else self.criterion.passed,
            "criterion": None if self.criterion is None else self.criterion.to_json(),
            "metrics": {name: m.to_json() for name, m in self.metrics.items()},
            "gold": self.gold_display, "gold_items": len(self.gold),
            "pool": {"items": len(self.pool), "labeled": sum(p.label is not None for p in self.pool),
                     "by_source": dict(Counter(p.source for p in self.pool if p.source))},
            "training": self.training, "skipped_llm_steps": list(self.skipped_llm_steps), "notes": self.notes,
            "llm": self.llm, "files": {name: str(path) for name, path in self.files.items()},
        }


Notice = Callable[[str], None]


def run(compiled: CompiledTask, options: RunOptions, notice: Notice = lambda message: None) -> RunResult:
    """Run the loop; raise DataFileError for unusable pool/gold files (before anything is written)."""
    task = compiled.ir
    notes: list[str] = []
    pool_records, gold_records, gold_display = _read_inputs(task, options, notes)
    answers = expert_loop.read_task_answers(task, options.answers, notes)
    real_gold = len(gold_records)
    if answers is not None:  # the answers are extra dev gold: after the split, so the test half stays as it was
        gold_records = gold_records + expert_answers.dev_gold_records(task, answers, gold_records)
    settings = _provider_settings(options)
    skipped: tuple[str, ...] = () if settings is not None else LLM_STEPS
    if settings is not None and not compiled.calls.complete:
        raise TaskcError("the task was compiled without its call plan (compile_task(plan_data=False)), so the "
                         "run cannot make the calls that depend on the pool and gold set; compile it with "
                         "plan_data=True")
    if settings is None:
        notice(f"no LLM provider configured: skipped {', '.join(LLM_STEPS)}; to enable them, {HOW_TO_ENABLE_LLM}")
    elif not options.finetune:
        skipped = ("fine-tuning (pass --finetune)",)
    options.run_dir.mkdir(parents=True, exist_ok=True)
    llm: dict[str, Any] = {}
    reporter = make_reporter(quiet=options.quiet, json_progress=options.json_progress)
    if settings is not None and options.max_cost is not None:
        from .budget_bound import overshoot_bound

        bound = overshoot_bound(compiled, options.max_cost, settings.concurrency, model=settings.model,
                                batch=options.batch, finetune=options.finetune)
        if bound is not None:  # said before the first call: how far past --max-cost the run can go
            notice(bound.line())
            llm["budget"] = {"max_cost": options.max_cost, "overshoot_bound_usd": round(bound.bound_usd, 6),
                             "in_flight": bound.in_flight, "largest_call_usd": round(bound.largest_call_usd, 6)}

    generated: list[dict[str, Any]] = []
    budget: Budget | None = None
    if settings is not None:
        from .provider import Budget

        # One budget for the whole run: --max-calls / --max-cost bound generation, pool labeling and
        # evaluation together, at the task's own prices where it gives them.
        budget = Budget(options.max_cost, options.max_calls, prices=dict(task.generate.prices))
        reporter.phase_start("generation", f"{len(compiled.plan)} planned calls")
        generated = _generate(compiled, options, settings, budget, llm, notes, reporter)
        reporter.phase_done("generation", f"{len(generated)} examples accepted")

    functions = labeling.labeling_functions(task)
    voter = labeling.RuleVoter(task, functions)
    gold_batch = item_batch(task, functions, [r.values for r in gold_records], voter)
    halves = _gold_halves(task, gold_records[:real_gold]) + (DEV,) * (len(gold_records) - real_gold)
    gold = [GoldItem(r.values, r.label or "", r.line, labeling.fired_rules(functions, gold_batch.votes[i]),
                     halves[i]) for i, r in enumerate(gold_records)]

    pool: list[PoolItem] = []
    analysis = None
    fitted: label_model.LabelModelResult | None = None
    if pool_records:
        reporter.phase_start("pool labeling", f"{len(pool_records)} items")
        matrix = voter.votes(labeling.rule_environments(task, pool_records))
        # rule accuracies are what the expert edits rules by: counted on the dev half only
        dev = [i for i, g in enumerate(gold) if g.half == DEV]
        dev_matrix = labeling.VoteMatrix(gold_batch.votes[dev], (), ())
        analysis = labeling.analyse(functions, matrix, task, dev_matrix if dev else None,
                                    [task.class_names.index(gold[i].label) for i in dev] if dev else None)
        fitted = label_model.fit_dawid_skene(matrix.votes, len(task.class_names))
        pool = _pool_items(task, functions, pool_records, matrix, fitted)
        if settings is not None and budget is not None:
            pool = _llm_label_pool(compiled, options, settings, budget, pool, llm, notes, reporter)
        if answers is not None:
            pool = expert_loop.answered_pool(task, pool, answers)
        reporter.phase_done("pool labeling", f"{sum(p.label is not None for p in pool)} of {len(pool)} labeled")
    elif task.pool is None:
        notes.append("the task names no pool, so nothing was labeled by the rules")

    examples = _training_examples(task, generated, pool, fitted, expert_loop.answers_outside_pool(task, pool, answers))
    reporter.phase_start("training", f"{len(examples)} examples")
    # the rules' votes on the training inputs, worked out once for the local model and the student
    training_batch = item_batch(task, functions, [e.values for e in examples], voter)
    local = _train_local_model(task, functions, training_batch, examples, options.run_dir / "model", notes)
    student = _train_student(task, functions, training_batch, examples, options, settings, budget, notes, notice)
    predictors = Predictors(task, functions, fitted, local, student)
    reporter.phase_done("training", "local model" + (" and student" if student is not None else ""))
    predictions: dict[str, list[str | None]] = {}
    cited: list[tuple[str, ...]] | None = None
    if gold:
        reporter.phase_start("gold scoring", f"{len(gold)} items")
        predictions = {name: predictors.labels(gold_batch, name) for name in predictors.available}
        if settings is not None and budget is not None:
            scored, cited = _llm_predictors(compiled, options, settings, budget, gold, llm, notes, reporter)
            predictions.update(scored)
        reporter.phase_done("gold scoring", f"{len(predictions)} predictors")
    else:
        notes.append("no gold set (add eval.gold to the task or pass --gold FILE), so nothing was evaluated")
    if isinstance(student, EmbeddingStudent):
        llm["embeddings"] = student.embed.to_json()  # type: ignore[attr-defined]  # pool, views and gold
    if budget is not None and budget.exhausted:
        notes.append(_budget_note(options))
    metrics = _score(task, gold, predictions)
    leaked = _gold_in_training(task, gold[:real_gold], examples)
    if leaked:
        notes.append(f"{leaked} gold item{'s' if leaked != 1 else ''} also appear{'s' if leaked == 1 else ''} in "
                     f"the training data (same input); the local model's scores on them are optimistic")

    result = RunResult(task=task, run_dir=options.run_dir, functions=functions, analysis=analysis, pool=pool,
                       gold_display=gold_display, gold=gold, predictions=predictions, metrics=metrics,
                       criterion=evaluate_criterion(task, metrics) if gold else None, skipped_llm_steps=skipped,
                       training=dict(sorted(Counter(e.source for e in examples).items())), examples=tuple(examples),
                       notes=notes, llm=llm, estimate_usd=compiled.estimate.cost_usd,
                       predictors=predictors, answers=answers, llm_cited=cited if "llm" in predictions else None)
    if settings is not None:
        from .llm_labeling import analyse_llm

        result.llm_function = analyse_llm([(f.rationale_id, f.class_name) for f in functions], pool, gold,
                                          result.dev_indices, predictions.get("llm"), result.llm_cited)
    reporter.phase_start("report")
    _write_outputs(result)
    reporter.phase_done("report", str(result.files["report_html"]))
    return result


# -- inputs ----------------------------------------------------------------------------------------

def _read_inputs(task: TaskIR, options: RunOptions,
                 notes: list[str]) -> tuple[list[DataRecord], list[DataRecord], str | None]:
    project = Path(task.project_dir)
    pool: list[DataRecord] = []
    if task.pool is not None:
        pool_file = read_pool(task.data_path(task.pool.path), task,
                              display=_display(project, task.pool.path), limit=task.pool.limit)
        pool = list(pool_file.records)
        _note_warnings(pool_file, notes)
    if options.gold is not None:
        display = str(options.gold)
        gold_file = read_gold(options.gold, task, display=display)
    elif task.eval is not None:
        display = _display(project, task.eval.gold)
        gold_file = read_gold(task.data_path(task.eval.gold), task, display=display)
    else:
        return pool, [], None
    _note_warnings(gold_file, notes)
    return pool, list(gold_file.records), display


def _note_warnings(data: DataFile, notes: list[str]) -> None:
    if data.warnings:
        more = f" (and {len(data.warnings) - 3} more)" if len(data.warnings) > 3 else ""
        notes.append("; ".join(data.warnings[:3]) + more)


def _display(project: Path, relative: str) -> str:
    """How to name a project file in messages: relative to the working directory when possible."""
    target = (project / relative).resolve()
    try:
        return str(target.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(target)


def _provider_settings(options: RunOptions) -> ProviderSettings | None:
    # checked here first so that a run without any LLM configuration never imports the provider code
    if not (options.base_url or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        return None
    from .provider import RunDeadline, provider_settings_from_env

    return provider_settings_from_env(base_url=options.base_url, model=options.model,
                                      concurrency=options.concurrency, rpm=options.rpm, tpm=options.tpm,
                                      run_deadline=None if options.deadline is None
                                      else RunDeadline.after(options.deadline))


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


UNCOVERED_WEIGHT = 0.5  # at most: scaled down further by how unsure the rules' silence is
FIELD_VIEW_WEIGHT = 0.5


def _training_examples(task: TaskIR, generated: Sequence[Mapping[str, Any]], pool: Sequence[PoolItem],
                       fitted: label_model.LabelModelResult | None,
                       answered: Sequence[DataRecord] = ()) -> list[local_model.TrainingExample]:
    """What the local model learns from, each example weighted by how sure its label is.

    - generated examples (weight 1) and pool items the LLM labelled (1);
    - pool items the rules labelled, weighted by the label model's confidence (a coin-flip label
      should teach little);
    - the expert's answers to `taskc ask` (pool items relabelled, and ``answered`` items outside the
      pool), weighted EXPERT_WEIGHT: above any rule;
    - pool items no rule fired on, labelled by what the rules' silence says (the label model's
      posterior given that every rule abstained; see `label_model.posterior`), weighted at most
      UNCOVERED_WEIGHT and less the nearer that posterior is to a coin flip. Without them the model
      never sees the kind of item the cascade hands it;
    - a *field view* of each labelled example with two or more filled text fields: the same item
      with one text field alone (the others empty), same label, half the weight. The label belongs
      to the dish, not to the way it is written down: a menu shows only the name, and what the
      ingredients taught about a label then reaches the name.
    """
    examples = [local_model.TrainingExample({f: g[f] for f in task.field_names if f in g}, str(g["label"]),
                                            "generated") for g in generated if g.get("label") in task.class_names]
    uncovered = [item for item in pool if item.label is None]
    silence = _silence_label(task, fitted) if uncovered and fitted is not None else None
    for item in pool:
        if item.label is not None and item.source is not None:
            # the label model's confidence weighs its labels: a coin-flip label should teach little
            weight = item.confidence if item.source == "label_model" and item.confidence is not None else 1.0
            weight = expert_answers.EXPERT_WEIGHT if item.source == expert_answers.SOURCE else weight
            examples.append(local_model.TrainingExample(item.values, item.label, item.source, weight))
        elif silence is not None and silence[1] > 0:
            examples.append(local_model.TrainingExample(item.values, silence[0], "rules' silence", silence[1]))
    examples += [local_model.TrainingExample(dict(r.values), str(r.label), expert_answers.SOURCE,
                                             expert_answers.EXPERT_WEIGHT) for r in answered]
    return examples + [view for example in examples for view in _field_views(task, example)]


def _silence_label(task: TaskIR, fitted: label_model.LabelModelResult) -> tuple[str, float]:
    """The label and weight the rules' silence gives an item on which every rule abstained."""
    n_classes = len(task.class_names)
    silent = np.full((1, fitted.confusion.shape[0]), labeling.ABSTAIN, dtype=np.int64)
    posterior = label_model.posterior(fitted, silent)[0]
    best = int(posterior.argmax())
    sureness = (float(posterior[best]) - 1 / n_classes) / (1 - 1 / n_classes)
    return task.class_names[best], UNCOVERED_WEIGHT * sureness


def _field_views(task: TaskIR, example: local_model.TrainingExample) -> list[local_model.TrainingExample]:
    text_fields = [f for f in task.fields if f.type in ("string", "list[string]")]
    filled = [f for f in text_fields if example.values.get(f.name)]
    if len(filled) < 2:
        return []
    views = []
    for kept in filled:
        values = dict(example.values)
        for other in text_fields:
            if other.name != kept.name and other.name in values:
                values[other.name] = "" if other.type == "string" else []
        views.append(local_model.TrainingExample(values, example.label, f"{example.source}, {kept.name} only",
                                                 example.weight * FIELD_VIEW_WEIGHT))
    return views


def _train_local_model(task: TaskIR, functions: Sequence[labeling.LabelingFunction], batch: ItemBatch,
                       examples: Sequence[local_model.TrainingExample], model_dir: Path,
                       notes: list[str]) -> local_model.LocalModel | None:
    try:
        model = local_model.train(task, functions, batch, examples)
    except local_model.LocalModelError as exc:
        notes.append(str(exc))
        # a model left by an earlier run must not pass for this run's
        for name in (local_model.MODEL_FILE, local_model.METADATA_FILE):
            (model_dir / name).unlink(missing_ok=True)
        return None
    model.save(model_dir, model.describe(examples, spec_hash(task)))
    return model


def _train_student(task: TaskIR, functions: Sequence[labeling.LabelingFunction], batch: ItemBatch,
                   examples: Sequence[local_model.TrainingExample], options: RunOptions,
                   settings: ProviderSettings | None, budget: Budget | None,
                   notes: list[str], notice: Notice) -> Student | None:
    """The finetune.provider student (embeddings or transformers), trained on the local model's examples.

    An endpoint that fails while embedding raises EmbeddingError (exit 4; the vectors fetched so far are
    cached, so the same command resumes); a missing optional dependency or endpoint is a note."""
    provider = task.finetune.provider
    if provider not in ("embeddings", "transformers"):
        return None
    if len({e.label for e in examples}) < 2:
        notes.append(f"the {provider} student was not trained: the training data has fewer than two classes")
        return None
    labels, weights = [e.label for e in examples], [e.weight for e in examples]
    if provider == "embeddings":
        if settings is None:
            notes.append("finetune.provider is 'embeddings', but no endpoint is configured, so the student was not "
                         f"trained; to train it, {HOW_TO_ENABLE_LLM}")
            return None
        from .datasets import CACHE_FILE
        from .embeddings import Embedder

        model = task.finetune.base_model or DEFAULT_EMBEDDING_MODEL
        embedder = Embedder(settings, model, per_request=task.finetune.inputs_per_request,
                            cache_path=options.run_dir / CACHE_FILE, budget=budget,
                            progress=_embedding_progress(notice, options.quiet))
        return EmbeddingStudent(task, functions, embedder, model).fit(batch, labels, weights)
    from .transformer_student import (
        TransformerSettings,
        TransformerStudent,
        TransformerStudentError,
        missing_dependencies,
    )

    missing = missing_dependencies()
    if missing:
        notes.append(f"finetune.provider is 'transformers', but {missing}; the student was not trained")
        notice(notes[-1])
        return None
    given = task.finetune
    hyper = {key: value for key, value in (("epochs", given.epochs), ("batch_size", given.batch_size),
                                            ("learning_rate", given.learning_rate),
                                            ("max_length", given.max_length)) if value is not None}
    trainer = TransformerStudent(task.class_names, TransformerSettings(
        model=str(given.base_model), validation_split=given.validation_split, seed=task.generate.seed or 0,
        **hyper))
    try:
        trainer.fit([item_text(task, e.values) for e in examples], labels, weights,
                    progress=None if options.quiet else notice)
    except TransformerStudentError as exc:
        raise StudentError(f"the transformers student could not be trained: {exc}") from None
    return TransformerAdapter(task, trainer)


def _embedding_progress(notice: Notice, quiet: bool) -> Callable[[int, int], None]:
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if not quiet and (done == total or now - last[0] > 2.0):
            last[0] = now
            notice(f"embedding: {done}/{total} texts")
    return report


def _gold_halves(task: TaskIR, records: Sequence[DataRecord]) -> tuple[str, ...]:
    if task.eval is None or not records:
        return tuple(DEV for _ in records)
    return split_gold([r.label or "" for r in records], [item_text(task, r.values) for r in records],
                      task.eval.test_fraction, task.eval.split_seed)


def _score(task: TaskIR, gold: Sequence[GoldItem],
           predictions: Mapping[str, list[str | None]]) -> dict[str, PredictorScores]:
    if not gold:
        return {}
    truth = [g.label for g in gold]
    halves = [g.half for g in gold]
    ordered = sorted(predictions, key=lambda name: PREDICTORS.index(name))
    return {name: score_predictor(truth, predictions[name], task.class_names, halves) for name in ordered}


def _gold_in_training(task: TaskIR, gold: Sequence[GoldItem],
                      examples: Sequence[local_model.TrainingExample]) -> int:
    seen = {item_text(task, e.values).lower() for e in examples}
    return sum(item_text(task, g.values).lower() in seen for g in gold)


# -- with a provider -------------------------------------------------------------------------------

def _budget_note(options: RunOptions) -> str:
    limits = " and ".join(text for text in (
        None if options.max_calls is None else f"--max-calls {options.max_calls}",
        None if options.max_cost is None else f"--max-cost {options.max_cost:g}") if text)
    return (f"the run's budget ({limits or 'max calls / max cost'}) ran out, so some LLM calls were not made and "
            "the steps after it saw less data; answered calls are cached: rerun with a larger budget to finish")


def _generate(compiled: CompiledTask, options: RunOptions, settings: ProviderSettings, budget: Budget,
              llm: dict[str, Any], notes: list[str], reporter: ProgressReporter) -> list[dict[str, Any]]:
    from .generation import GenerationOptions, load_generated_examples, run_generation

    # scikit-learn (for training, after the calls) is imported while the calls wait on the network
    threading.Thread(target=local_model.warm_up, name="taskc-warm-up", daemon=True).start()
    summary = run_generation(compiled, options.run_dir, settings, GenerationOptions(
        max_cost=options.max_cost,
        max_calls=options.max_calls, batch=options.batch, quiet=options.quiet,
        json_progress=options.json_progress), budget=budget, reporter=reporter)
    llm["generation"] = summary.to_json()
    answered = summary.calls_made + summary.calls_cached
    if summary.calls_failed and not answered and not summary.stopped_by_budget:
        raise ProviderFailure(
            f"the LLM provider failed all {summary.calls_failed} generation calls "
            f"({_first_failure(options.run_dir)}).\n{ProviderFailure.ADVICE}")
    examples = load_generated_examples(options.run_dir)
    if not examples:
        notes.append("generation produced no usable examples")
    return examples


class ProviderFailure(TaskcError):
    """The provider answered none of the calls: a run without them would hide the problem."""

    exit_status = ExitStatus.RUNTIME_FAILURE

    ADVICE = ("Check --base-url / OPENAI_BASE_URL, the key and the model; answered calls are cached, so the "
              "same command resumes once the provider works.")


def _first_failure(run_dir: Path) -> str:
    from .datasets import STATS_FILE

    try:
        failed = json.loads((run_dir / STATS_FILE).read_text(encoding="utf-8")).get("failed_calls") or []
        return f"first error: {failed[0]['error']}" if failed else "no error recorded"
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return "see stats.json"


def _classify_phase(phase: str, settings: ProviderSettings, options: RunOptions, budget: Budget,
                    calls: Sequence[ClassificationCall], classes: Sequence[str], reporter: ProgressReporter,
                    rationale_ids: Sequence[str] = ()) -> tuple[list[str | None], dict, list[tuple[str, ...]]]:
    """Make the phase's planned calls; raise ProviderFailure when the provider answered none of them.
    Returns the labels, the call stats and, per call, the rationales the answer cited."""
    from .classify import run_calls
    from .llm_labeling import cited_rationales

    outcome = run_calls(calls, settings, budget, options.run_dir, batch=options.batch, reporter=reporter,
                        phase=phase)
    failed = [r for r in outcome.results if not r.ok and not r.stopped_by_budget]
    if failed and len(failed) == len(outcome.results) and all(_unreachable(r.error) for r in failed):
        # Later phases would only spend minutes retrying the same dead provider: stop here.
        raise ProviderFailure(
            f"the LLM provider failed {'the one call' if len(failed) == 1 else f'all {len(failed)} calls'} of the "
            f"{phase} (first error: {failed[0].error}).\n"
            f"{ProviderFailure.ADVICE}")
    labels = [str(a.get("label")) if a and a.get("label") in classes else None for a in outcome.answers]
    stats = outcome.stats.to_json() | {"calls_planned": len(calls), "batch": options.batch}
    return labels, stats, [cited_rationales(a, rationale_ids) for a in outcome.answers]


def _unreachable(error: str | None) -> bool:
    """A failure of the provider itself (no connection, timeouts, HTTP errors such as a bad key or model),
    as opposed to unusable answers, which say something about the model and belong in the report."""
    text = error or ""
    return text.startswith(("connection failed", "timed out")) or re.match(r"\d{3} ", text) is not None


def _llm_label_pool(compiled: CompiledTask, options: RunOptions, settings: ProviderSettings, budget: Budget,
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
    labels, stats, cited = _classify_phase("pool labeling", settings, options, budget, calls,
                                           compiled.ir.class_names, reporter, [r.id for r in compiled.ir.rationales])
    llm["pool_labeling"] = stats | {"items": len(open_items), "labeled": sum(lab is not None for lab in labels)}
    failed = sum(lab is None for lab in labels)
    if failed:
        notes.append(f"the LLM could not label {failed} of {len(open_items)} open pool items; they stay as the "
                     f"rules left them")
    updated = list(pool)
    for i, label, because in zip(open_items, labels, cited, strict=True):
        if label is not None:
            updated[i] = dataclasses.replace(pool[i], confidence=None, label=label, source="llm", cited=because)
    return updated


def _llm_predictors(compiled: CompiledTask, options: RunOptions, settings: ProviderSettings, budget: Budget,
                    gold: Sequence[GoldItem], llm: dict[str, Any], notes: list[str], reporter: ProgressReporter
                    ) -> tuple[dict[str, list[str | None]], list[tuple[str, ...]]]:
    """The prompted LLM on the gold set, and the fine-tuned model when --finetune made one; with the
    rationales the prompted LLM cited for each gold item."""
    from taskc.compiler import SCORE_FINETUNED, SCORE_GOLD, PlanItem, gold_calls

    from .classify import resolve

    classes = compiled.ir.class_names
    predictions: dict[str, list[str | None]] = {}
    plan = compiled.calls.calls
    if options.gold is not None:  # --gold: this file's calls, planned by the compiler's own planner
        plan = tuple(gold_calls(compiled.ir, [PlanItem(g.line, g.values, g.label) for g in gold],
                                compiled.classification_messages, compiled.training_messages,
                                compiled.classification_format, compiled.calls.finetune_base_model))
    planned = [call for call in plan if call.phase == SCORE_GOLD]
    lines = [g.line for g in gold]
    indices = _planned_items(planned, lines, "gold set")
    labels, llm["prompted_baseline"], cited_per_call = _classify_phase(
        "prompted baseline", settings, options, budget, resolve(planned, settings.model), classes, reporter,
        [r.id for r in compiled.ir.rationales])
    predictions["llm"] = _per_item(len(gold), indices, labels)
    cited: list[tuple[str, ...]] = [()] * len(gold)
    for index, because in zip(indices, cited_per_call, strict=True):
        cited[index] = because
    _drop_if_silent(predictions, "llm", notes)
    if options.finetune and compiled.ir.finetune.provider == "local":
        notes.append("finetune.provider is 'local': the local model is the fine-tuned model; nothing was uploaded")
    elif options.finetune and compiled.ir.finetune.provider == "openai":
        from .finetune import finetune_wait, run_finetune

        wait = finetune_wait(options.finetune_max_wait, settings)
        outcome = run_finetune(compiled, options.run_dir, settings, timeout=wait)
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
            "fine-tuned model's evaluation", tuned, options, budget, resolve(planned, str(model)), classes, reporter)
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


# -- outputs ---------------------------------------------------------------------------------------

TRAINING_SET_FILE = "training_set.jsonl"


def _training_row(task: TaskIR, example: local_model.TrainingExample) -> dict[str, Any]:
    """One line of training_set.jsonl: what every student trains on (`taskc export` reads it)."""
    return {"input": {name: example.values.get(name) for name in task.field_names if name in example.values},
            "label": example.label, "source": example.source, "weight": round(float(example.weight), 6)}


def _write_outputs(result: RunResult) -> None:
    from taskc import __version__

    from . import report

    run_dir = result.run_dir
    task = result.task
    write_jsonl(run_dir / "labeled_pool.jsonl", (item.to_json(task) for item in result.pool))
    result.files["labeled_pool"] = run_dir / "labeled_pool.jsonl"
    write_jsonl(run_dir / TRAINING_SET_FILE, (_training_row(task, e) for e in result.examples))
    result.files["training_set"] = run_dir / TRAINING_SET_FILE
    if result.predictors is not None:
        result.predictors.save(run_dir / "model", primary=result.primary,
                               spec_path=Path(task.project_dir) / Path(task.source).name, taskc_version=__version__)
        result.files["model"] = run_dir / "model"
    result.files["metrics"] = run_dir / "metrics.json"
    result.files["report_md"] = run_dir / "report.md"
    result.files["report_html"] = run_dir / "report.html"
    findings = result.findings = report.analyse_errors(result)
    result.expert = expert_loop.analyse(result)
    expert_loop.write_files(result)
    result.shift = report.data_shift(result)
    record = _history_record(result, __version__)
    metrics = {
        "task": task.name, "gold": result.gold_display, "gold_items": len(result.gold),
        "gold_split": {"dev": len(result.dev_indices), "test": len(result.gold) - len(result.dev_indices),
                       "test_fraction": task.eval.test_fraction if task.eval else None,
                       "seed": task.eval.split_seed if task.eval else None},
        "primary": result.primary, "criterion": None if result.criterion is None else result.criterion.to_json(),
        "predictors": {name: m.to_json() for name, m in result.metrics.items()},
        "labeling_functions": None if result.analysis is None else result.analysis.to_json(),
        "expert_loop": result.expert.to_json() if result.expert is not None else None,
        "local_model": report.model_facts(result),
        "student": report.student_facts(result),
        "data_shift": result.shift.to_json() if result.shift is not None else None,
        "training": result.training, "notes": result.notes, "llm": result.llm,
        "llm_labeling_function": None if result.llm_function is None else result.llm_function.to_json(),
        "note": ("every predictor is scored over all gold items of a split, abstentions counted as errors; "
                 "coverage is the share it labeled; *_ci are 95% bootstrap intervals; null means n/a (the "
                 "predictor labeled nothing); the criterion is judged on the test half"),
    }
    write_json(result.files["metrics"], metrics)
    write_text_atomic(result.files["report_md"], report.render_markdown(result, findings))
    write_text_atomic(result.files["report_html"], report.render_html(result, findings))
    history.append_record(run_dir, record)  # last: a run recorded is a run whose outputs are all written
    result.files["history"] = run_dir / history.HISTORY_FILE


def _history_record(result: RunResult, taskc_version: str) -> dict[str, Any]:
    """This run's history record (with a copy of its task file), and what changed since the run before."""
    task, run_dir = result.task, result.run_dir
    earlier = history.read_history(run_dir)
    number = history.next_number(earlier)
    spec = Path(task.project_dir) / Path(task.source).name
    small_files = [lexicon.file for lexicon in task.lexicons if lexicon.file] + list(task.generate.templates.values())
    try:
        snapshot = history.snapshot_spec(run_dir, number, spec, small_files)
    except OSError:
        snapshot = None
    primary = result.predictions.get(result.primary, [])
    rationales = {} if result.analysis is None else {
        f.rationale_id: {"coverage": f.coverage, "gold_accuracy": f.empirical_accuracy, "votes": f.votes}
        for f in result.analysis.functions}
    record = history.build_record(
        number=number, task=task.name, spec_hash=spec_hash(task), taskc_version=taskc_version,
        commit=history.git_commit(Path(task.project_dir)), primary=result.primary,
        passed=None if result.criterion is None else result.criterion.passed,
        metrics={name: m.to_json() for name, m in result.metrics.items()}, rationales=rationales,
        cost_estimate_usd=result.estimate_usd,
        gold_correct={history.gold_key(g.values): label == g.label  # no predictions: no gold item is right
                      for g, label in zip(result.gold, primary or [None] * len(result.gold), strict=True)},
        snapshot=snapshot)
    result.history = [*earlier, record]
    if earlier:
        split = result.criterion.split if result.criterion is not None else "test"
        result.since = history.since_last_run(earlier[-1], record, split)
        previous = earlier[-1].get("snapshot")
        result.spec_changes = history.spec_changes(run_dir / previous, task) if previous else None
    return record


__all__ = ["GoldItem", "HOW_TO_ENABLE_LLM", "LLM_STEPS", "PoolItem", "RunOptions", "RunResult",
           "TRAINING_SET_FILE", "run"]
