"""Runtime stage: training the local model and the finetune.provider student on the training set.

The local model (`local_model`) always trains, offline; it is saved in the run's model/ directory,
and a model an earlier run left there is removed when this run's cannot train. The student named by
finetune.provider trains beside it: `embeddings` on an endpoint's vectors (with a provider),
`transformers` locally when its optional dependencies are installed. What cannot train is a note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from taskc.compiler import DEFAULT_EMBEDDING_MODEL, TaskIR

from . import label_model, labeling, local_model
from .datafiles import DataRecord
from .features import ItemBatch, item_batch, item_text, spec_hash
from .gold_split import DEV
from .llm_data_effect import LLMDataEffect, compare, from_llm
from .model_process import Trainer
from .options import HOW_TO_ENABLE_LLM, Notice
from .predictor import Predictors
from .progress import ProgressReporter
from .result import GoldItem, PoolItem
from .students import EmbeddingStudent, Student, StudentError, TransformerAdapter
from .training_set import training_examples, without_gold

if TYPE_CHECKING:
    from .provider import Budget, ProviderSettings

def train_local_model(task: TaskIR, functions: Sequence[labeling.LabelingFunction], batch: ItemBatch,
                      examples: Sequence[local_model.TrainingExample], model_dir: Path,
                      notes: list[str], trainer: Trainer = local_model.train) -> local_model.LocalModel | None:
    """The local model, saved in ``model_dir``; None (and a note) when the training data cannot make one.
    ``trainer`` fits it: `local_model.train`, or the model process's (`model_process.trainer`)."""
    try:
        model = trainer(task, functions, batch, examples)
    except local_model.LocalModelError as exc:
        notes.append(str(exc))
        # a model left by an earlier run must not pass for this run's
        for name in (local_model.MODEL_FILE, local_model.METADATA_FILE):
            (model_dir / name).unlink(missing_ok=True)
        return None
    notes.extend(f"fitting the local model warned: {warning}" for warning in model.fit_warnings_)
    model.save(model_dir, model.describe(examples, spec_hash(task)))
    return model


def train_student(task: TaskIR, functions: Sequence[labeling.LabelingFunction], batch: ItemBatch,
                  examples: Sequence[local_model.TrainingExample], run_dir: Path, quiet: bool,
                  settings: ProviderSettings | None, budget: Budget | None,
                  notes: list[str], notice: Notice, reporter: ProgressReporter,
                  planned: Sequence[Sequence[str]] = (), batch_api: bool = False) -> Student | None:
    """The finetune.provider student (embeddings or transformers), trained on the local model's examples.

    An endpoint that fails while embedding raises EmbeddingError (exit 4; the vectors fetched so far are
    cached, so the same command resumes); a missing optional dependency or endpoint is a note. ``planned``:
    the texts of the plan's embeddings requests (`embeddings.planned_texts`), sent first, request by request
    (``batch_api``: through the Batch API)."""
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
                            cache_path=run_dir / CACHE_FILE, budget=budget,
                            reporter=reporter, batch=batch_api)
        embedder.prefetch(planned)
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
                    progress=None if quiet else notice)
    except TransformerStudentError as exc:
        raise StudentError(f"the transformers student could not be trained: {exc}") from None
    return TransformerAdapter(task, trainer)


__all__ = ["train_local_model", "train_student"]


def llm_data_effect(task: TaskIR, functions: Sequence[labeling.LabelingFunction], voter: labeling.RuleVoter,
                    fitted: label_model.LabelModelResult | None, rules_pool: Sequence[PoolItem],
                    answered: Sequence[DataRecord], examples: Sequence[local_model.TrainingExample],
                    gold: Sequence[GoldItem], gold_batch: ItemBatch,
                    predictions: Mapping[str, Sequence[str | None]], held_out: frozenset[str] = frozenset(),
                    trainer: Trainer = local_model.train) -> LLMDataEffect | None:
    """The local model trained again without the LLM's data, beside the run's, on the dev gold items.

    ``rules_pool`` is the pool as the rules (and the expert's answers) labeled it, before the LLM labeled
    what they left open; ``examples`` the run's training set; ``predictions`` the run's predictors on the
    gold items (predictor -> one label per item), the trained model's among them; ``held_out`` the gold inputs
    the run's training set left out (`training_set.gold_keys`), left out here too. The two are compared on
    the run's primary
    predictor when it uses the local model (the cascade or the model alone), else on the local model.
    None when there is nothing to tell: no LLM data in training, no dev item, or no model can be trained
    without the LLM's data (it was all the model had)."""
    llm_examples = sum(from_llm(e.source) for e in examples)
    dev = [i for i, g in enumerate(gold) if g.half == DEV]
    if not llm_examples or not dev or "local_model" not in predictions:
        return None
    without, _ = without_gold(task, training_examples(task, (), rules_pool, fitted, answered), held_out)
    if len({e.label for e in without}) < 2:
        return None
    try:
        model = trainer(task, functions, item_batch(task, functions, [e.values for e in without], voter), without)
    except local_model.LocalModelError:
        return None
    primary = task.eval.primary if task.eval else "rules_then_model"
    predictor = primary if primary in ("local_model", "rules_then_model") else "local_model"
    again = Predictors(task, tuple(functions), fitted, model, None)
    if predictor not in predictions or predictor not in again.available:
        predictor = "local_model"
    with_llm, without_llm = predictions[predictor], again.labels(gold_batch, predictor)
    return compare([gold[i].label for i in dev], [with_llm[i] for i in dev], [without_llm[i] for i in dev],
                   task.class_names, llm_examples, len(without), predictor)

