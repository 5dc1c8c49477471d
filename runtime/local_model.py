"""The local model: the classifier `taskc run` trains when no fine-tuning provider is used.

Third stage of the run, after aggregation: TF-IDF over word n-grams and character
n-grams of each input's canonical text (the same JSON the prompts and fine-tuning
data use, so every predictor sees the input the same way) followed by a logistic
regression, trained on the generated examples and the labeled pool. Character
n-grams matter because ingredient lists are short and vary in spelling ("tortilla",
"flour tortillas"). Training is deterministic (fixed solver, no shuffling) and
takes a second or two on two cores. The model is saved with joblib next to a
metadata JSON that says what it was trained on, so it can be reloaded and
checked against the task before use.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from taskc.compiler.diagnostics import TaskcError
from taskc.compiler.ir import TaskIR
from taskc.compiler.paths import write_atomic
from taskc.compiler.plan import sha256_hex
from taskc.compiler.prompts import input_json

from .datasets import write_json

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


class LocalModelError(TaskcError):
    """The local model cannot be trained or loaded (e.g. only one class in the training data)."""


@dataclass(frozen=True)
class TrainingExample:
    values: Mapping[str, Any]
    label: str
    source: str  # label_model | majority | llm | generated
    weight: float = 1.0


@dataclass
class LocalModel:
    """A trained pipeline with the task facts it was trained for."""

    pipeline: Pipeline
    task: TaskIR
    metadata: dict[str, Any]

    def predict(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        if not items:
            return []
        return [str(label) for label in self.pipeline.predict([input_text(self.task, v) for v in items])]

    def predict_proba(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        probabilities = self.pipeline.predict_proba([input_text(self.task, v) for v in items])
        classes = [str(c) for c in self.pipeline.classes_]
        return [dict(zip(classes, (float(p) for p in row), strict=True)) for row in probabilities]


def input_text(task: TaskIR, values: Mapping[str, Any]) -> str:
    """The canonical text of an input: its JSON with fields in declaration order."""
    return input_json(task.fields, dict(values))


def build_pipeline() -> Pipeline:
    features = FeatureUnion([
        ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 1), sublinear_tf=True, lowercase=True,
                                  token_pattern=r"(?u)\b\w+\b")),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=True)),
    ])
    # balanced class weights: pools are rarely balanced, and the expert cares about every class's recall
    classifier = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced", solver="lbfgs")
    return Pipeline([("features", features), ("classifier", classifier)])


def train(task: TaskIR, examples: Sequence[TrainingExample]) -> LocalModel:
    labels = [e.label for e in examples]
    present = sorted(set(labels))
    if not present:
        raise LocalModelError("cannot train the local model: no training examples (name a pool the rules can "
                              "label, or configure an LLM provider to generate examples)")
    if len(present) < 2:
        missing = [c for c in task.class_names if c not in present]
        raise LocalModelError(f"cannot train the local model: the training data has only '{present[0]}'; no example "
                              f"of {', '.join(repr(c) for c in missing)} (add a rationale with a rule for it, "
                              f"or configure an LLM provider to generate examples)")
    texts = [input_text(task, e.values) for e in examples]
    pipeline = build_pipeline()
    pipeline.fit(texts, labels, classifier__sample_weight=[e.weight for e in examples])
    metadata = {
        "format": FORMAT_VERSION,
        "task": task.name,
        "classes": list(task.class_names),
        "fields": [f.name for f in task.fields],
        "model_classes": [str(c) for c in pipeline.classes_],
        "training_examples": len(examples),
        "training_sources": dict(sorted(Counter(e.source for e in examples).items())),
        "training_labels": dict(sorted(Counter(labels).items())),
        "training_data_sha256": sha256_hex("\n".join(f"{t}\t{lab}" for t, lab in zip(texts, labels, strict=True))),
        "features": "tfidf word unigrams + char_wb 2-5grams over the canonical input JSON",
        "classifier": "LogisticRegression(C=10, class_weight=balanced, lbfgs)",
        "sklearn_version": sklearn.__version__,
    }
    return LocalModel(pipeline=pipeline, task=task, metadata=metadata)


def save(model: LocalModel, directory: Path) -> None:
    """Write model.joblib and metadata.json, each atomically, so a crash never leaves half a model."""
    buffer = io.BytesIO()
    joblib.dump(model.pipeline, buffer)
    write_atomic(directory / MODEL_FILE, buffer.getvalue())
    write_json(directory / METADATA_FILE, model.metadata)


def load(directory: Path, task: TaskIR) -> LocalModel:
    """Reload a saved model; refuse one trained for another task or another set of classes or fields."""
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        pipeline = joblib.load(directory / MODEL_FILE)
    except FileNotFoundError as exc:
        raise LocalModelError(f"{directory}: no saved local model ({Path(exc.filename or '').name} missing)") from None
    except (OSError, ValueError, EOFError) as exc:
        raise LocalModelError(f"{directory}: cannot load the local model: {exc}") from None
    expected = {"task": task.name, "classes": list(task.class_names), "fields": [f.name for f in task.fields]}
    for key, value in expected.items():
        if metadata.get(key) != value:
            raise LocalModelError(f"{directory}: the saved model was trained for {key} {metadata.get(key)!r}, "
                                  f"this task has {value!r}; run `taskc run` again to retrain")
    return LocalModel(pipeline=pipeline, task=task, metadata=metadata)


__all__ = ["LocalModel", "LocalModelError", "TrainingExample", "build_pipeline", "input_text", "load", "save",
           "train"]
