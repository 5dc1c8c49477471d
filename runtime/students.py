"""The students that train anywhere (finetune.provider): embeddings + a linear head, or a local transformer.

`taskc run` trains the task's student next to the local model, scores it as the
`finetuned` predictor (and `rules_then_finetuned`: the rules where they fire, the
student elsewhere), and saves it in RUN_DIR/model/student/ for `taskc predict`.

- `EmbeddingStudent`: a class-balanced logistic regression (scikit-learn) over an
  input's text embedding (any OpenAI-compatible `/v1/embeddings` endpoint) and the
  expert's knowledge features (`KnowledgeFeatures`: lexicon mentions per field,
  rule votes), so what the rules know is not lost on a generic embedding.
- `TransformerAdapter`: the optional Hugging Face student
  (`runtime/transformer_student.py`) over the same input text.

Both read an input as `item_text` (the fields' text joined), and both give
probabilities in the task's class order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..compiler import ExitStatus, TaskcError, TaskIR
from .datasets import write_atomic, write_json
from .features import ItemBatch, KnowledgeFeatures, item_text
from .labeling import LabelingFunction

if TYPE_CHECKING:
    from scipy import sparse

STUDENT_DIR = "student"
STUDENT_FILE = "student.json"
HEAD_FILE = "head.joblib"
FORMAT_VERSION = 1

Embed = Callable[[Sequence[str]], np.ndarray]


class StudentError(TaskcError):
    """A student cannot be trained or loaded."""

    exit_status = ExitStatus.RUNTIME_FAILURE


class Student(Protocol):
    provider: str

    def predict_proba(self, batch: ItemBatch) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...

    def save(self, directory: Path) -> None: ...


class EmbeddingStudent:
    """Text embedding ⊕ knowledge features → class-balanced logistic regression."""

    provider = "embeddings"

    def __init__(self, task: TaskIR, functions: Sequence[LabelingFunction], embed: Embed, model: str,
                 *, C: float = 4.0) -> None:
        self.task, self.functions, self.embed, self.model, self.C = task, tuple(functions), embed, model, C
        self.knowledge = KnowledgeFeatures(task, self.functions)

    def _features(self, batch: ItemBatch) -> sparse.csr_matrix:
        from scipy import sparse

        vectors = self.embed([item_text(self.task, values) for values in batch.values])
        return sparse.hstack([sparse.csr_matrix(vectors.astype(np.float64)), self.knowledge.transform(batch)],
                             format="csr")

    def fit(self, batch: ItemBatch, labels: Sequence[str], sample_weight: Sequence[float]) -> EmbeddingStudent:
        present = sorted(set(labels))
        if len(present) < 2:
            raise StudentError("cannot train the embeddings student: the training data has "
                               f"{'no examples' if not present else 'only ' + repr(present[0])}")
        from sklearn.linear_model import LogisticRegression  # imported where used: it takes a while

        features = self._features(batch)
        self.head_ = LogisticRegression(C=self.C, max_iter=5000, class_weight="balanced", solver="lbfgs")
        self.head_.fit(features, list(labels), sample_weight=np.asarray(sample_weight, dtype=np.float64))
        self.dimensions_ = features.shape[1] - len(self.knowledge.names)
        self.training_size_ = len(labels)
        return self

    def predict_proba(self, batch: ItemBatch) -> np.ndarray:
        out = np.zeros((len(batch), len(self.task.class_names)))
        if not len(batch):
            return out
        scores = self.head_.predict_proba(self._features(batch))
        for column, name in enumerate(self.head_.classes_):
            out[:, self.task.class_names.index(str(name))] = scores[:, column]
        return out

    def describe(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "training_size": self.training_size_,
                "features": [f"text embedding ({self.dimensions_} dimensions, L2-normalised)",
                             f"lexicon mentions ({len(self.knowledge.mention_names)})",
                             f"rule votes ({len(self.knowledge.vote_names)})"],
                "head": f"class-balanced logistic regression (C={self.C:g})", "dimensions": self.dimensions_}

    def save(self, directory: Path) -> None:
        import joblib

        buffer = io.BytesIO()
        joblib.dump({"head": self.head_}, buffer)
        write_atomic(directory / HEAD_FILE, buffer.getvalue())
        write_json(directory / STUDENT_FILE, {"format": FORMAT_VERSION, **self.describe(), "C": self.C,
                                              "feature_names": list(self.knowledge.names)})


class TransformerAdapter:
    """The Hugging Face student (`transformer_student.TransformerStudent`) over an input's text; saved in
    its own subdirectory (TRANSFORMER_DIR) next to a student.json that names the provider."""

    provider = "transformers"

    def __init__(self, task: TaskIR, student: Any) -> None:
        self.task, self.student = task, student

    def predict_proba(self, batch: ItemBatch) -> np.ndarray:
        if not len(batch):
            return np.zeros((0, len(self.task.class_names)))
        return np.asarray(self.student.predict_proba([item_text(self.task, v) for v in batch.values]))

    def describe(self) -> dict[str, Any]:
        described = self.student.describe()
        size = int(described.get("training_examples") or 0) + int(described.get("validation_examples") or 0)
        return {**described, "provider": self.provider, "training_size": size,
                "features": ["the fields' text, joined by ' | ' (the model's own tokens)"]}

    def save(self, directory: Path) -> None:
        self.student.save(directory / TRANSFORMER_DIR)
        write_json(directory / STUDENT_FILE, {"format": FORMAT_VERSION, **self.describe()})


TRANSFORMER_DIR = "transformer"


def load_student(directory: Path, task: TaskIR, functions: Sequence[LabelingFunction],
                 embed_for: Callable[[str], Embed] | None) -> Student:
    """The student saved in ``directory`` (RUN_DIR/model/student). ``embed_for(model)`` gives the embedder
    an embeddings student needs (None: it cannot be used here, a clear StudentError)."""
    try:
        stored = json.loads((directory / STUDENT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudentError(f"{directory}: no saved student here") from None
    except (OSError, ValueError) as exc:
        raise StudentError(f"{directory}: cannot load the student: {exc}") from None
    if isinstance(stored, dict) and stored.get("provider") == "transformers":
        return _load_transformer(directory, task)
    import joblib

    try:
        state = joblib.load(directory / HEAD_FILE)
    except FileNotFoundError:
        raise StudentError(f"{directory}: no saved student here ({HEAD_FILE} missing)") from None
    except (OSError, ValueError, EOFError, KeyError, AttributeError, ImportError) as exc:
        raise StudentError(f"{directory}: cannot load the student: {exc}") from None
    if not isinstance(stored, dict) or stored.get("format") != FORMAT_VERSION or stored.get("provider") != "embeddings":
        raise StudentError(f"{directory}: not a student this taskc reads; run `taskc run` again to retrain")
    if embed_for is None:
        raise StudentError(f"the run's student embeds its inputs with '{stored.get('model')}': configure the "
                           "endpoint (OPENAI_BASE_URL / OPENAI_API_KEY or --base-url) to use it")
    student = EmbeddingStudent(task, functions, embed_for(str(stored.get("model"))), str(stored.get("model")),
                               C=float(stored.get("C", 4.0)))
    if list(student.knowledge.names) != stored.get("feature_names"):
        raise StudentError(f"{directory}: the student's knowledge features do not match this task's; run "
                           "`taskc run` again to retrain")
    student.head_ = state["head"]
    student.dimensions_ = int(stored.get("dimensions") or 0)
    student.training_size_ = int(stored.get("training_size") or 0)
    return student


def _load_transformer(directory: Path, task: TaskIR) -> Student:
    from .transformer_student import TransformerStudent, TransformerStudentError, missing_dependencies

    missing = missing_dependencies()
    if missing:
        raise StudentError(f"{directory}: the run's student is a transformers model, but {missing}")
    try:
        student = TransformerStudent.load(directory / TRANSFORMER_DIR)
    except TransformerStudentError as exc:
        raise StudentError(str(exc)) from None
    if list(student.classes) != list(task.class_names):
        raise StudentError(f"{directory}: the student was trained for classes {list(student.classes)}, this task has "
                           f"{list(task.class_names)}; run `taskc run` again to retrain")
    return TransformerAdapter(task, student)


__all__ = ["EmbeddingStudent", "STUDENT_DIR", "Student", "StudentError", "TransformerAdapter", "load_student"]
