"""Runtime stage: training the local model and the finetune.provider student on the training set.

The local model (`local_model`) always trains, offline; it is saved in the run's model/ directory,
and a model an earlier run left there is removed when this run's cannot train. The student named by
finetune.provider trains beside it: `embeddings` on an endpoint's vectors (with a provider),
`transformers` locally when its optional dependencies are installed. What cannot train is a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from taskc.compiler.ir import TaskIR
from taskc.compiler.plan import DEFAULT_EMBEDDING_MODEL

from . import labeling, local_model
from .features import ItemBatch, item_text, spec_hash
from .options import HOW_TO_ENABLE_LLM, Notice
from .students import EmbeddingStudent, Student, StudentError, TransformerAdapter

if TYPE_CHECKING:
    from .provider import Budget, ProviderSettings

def train_local_model(task: TaskIR, functions: Sequence[labeling.LabelingFunction], batch: ItemBatch,
                      examples: Sequence[local_model.TrainingExample], model_dir: Path,
                      notes: list[str]) -> local_model.LocalModel | None:
    """The local model, saved in ``model_dir``; None (and a note) when the training data cannot make one."""
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


def train_student(task: TaskIR, functions: Sequence[labeling.LabelingFunction], batch: ItemBatch,
                  examples: Sequence[local_model.TrainingExample], run_dir: Path, quiet: bool,
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
                            cache_path=run_dir / CACHE_FILE, budget=budget,
                            progress=_embedding_progress(notice, quiet))
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


def _embedding_progress(notice: Notice, quiet: bool) -> Callable[[int, int], None]:
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if not quiet and (done == total or now - last[0] > 2.0):
            last[0] = now
            notice(f"embedding: {done}/{total} texts")
    return report


__all__ = ["train_local_model", "train_student"]
