"""The local model: the student `taskc run` trains offline, and `taskc predict` serves.

Third stage of the run, after aggregation. An estimator in scikit-learn's style
(hyperparameters in `__init__`, `fit`, `predict_proba`, learned state with a
trailing underscore) over two feature groups:

- **words**: TF-IDF of the words of the input's text (the
  fields' values, not their JSON; letters only, accents folded), so a word
  learnt in the ingredients also counts in the dish name;
- **knowledge** (`features.KnowledgeFeatures`): per lexicon, whether each text
  field and any field mentions it, matched as `mentions` matches in rules; per
  rule, whether it fired.

followed by a class-balanced logistic regression. Character n-grams were tried
and dropped: they cost a tenth of the prediction speed (~5,000 items/s) for no
gain once lexicon mentions carry the spelling variants the expert listed; word
bigrams too (no better on the dev sets in bench/dev, within their noise).

Training is deterministic (fixed solver, no shuffling) and takes a second or
two. The model is saved with joblib next to metadata.json, which names the
feature groups, the strongest features of each class (so a spurious word is
visible) and the spec hash it was trained for; `load` refuses a model trained
for another version of the task.
"""

from __future__ import annotations

import io
import json
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from taskc.compiler import ExitStatus, TaskcError, TaskIR, sha256_hex, write_atomic

from .datasets import write_json
from .features import ItemBatch, KnowledgeFeatures, item_text
from .labeling import LabelingFunction

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 2
STRONGEST = 12  # features listed per class in metadata.json and the report


class LocalModelError(TaskcError):
    """The local model cannot be trained or loaded (e.g. only one class in the training data)."""

    exit_status = ExitStatus.RUNTIME_FAILURE


@dataclass(frozen=True)
class TrainingExample:
    values: Mapping[str, Any]
    label: str
    source: str  # label_model | llm | generated | expert | field view of one of these
    weight: float = 1.0


@dataclass(frozen=True)
class Feature:
    name: str
    group: str
    weight: float  # the logistic regression's coefficient towards the class it is listed under


class LocalModel:
    """Words + the expert's knowledge → class-balanced logistic regression."""

    def __init__(self, task: TaskIR, functions: Sequence[LabelingFunction], *, C: float = 4.0,
                 ngram_range: tuple[int, int] = (1, 1)) -> None:
        self.task = task
        self.functions = tuple(functions)
        self.C = C
        self.ngram_range = ngram_range
        self.knowledge = KnowledgeFeatures(task, self.functions)

    def get_params(self) -> dict[str, Any]:
        return {"C": self.C, "ngram_range": list(self.ngram_range)}

    # -- learning ------------------------------------------------------------------------------------

    def fit(self, batch: ItemBatch, labels: Sequence[str], sample_weight: Sequence[float]) -> LocalModel:
        present = sorted(set(labels))
        if not present:
            raise LocalModelError("cannot train the local model: no training examples (name a pool the rules can "
                                  "label, or configure an LLM provider to generate examples)")
        if len(present) < 2:
            missing = [c for c in self.task.class_names if c not in present]
            raise LocalModelError(f"cannot train the local model: the training data has only '{present[0]}'; no "
                                  f"example of {', '.join(repr(c) for c in missing)} (add a rationale with a rule "
                                  f"for it, or configure an LLM provider to generate examples)")
        # scikit-learn (and SciPy) are imported where they are used: a run's process may never need them
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer_ = TfidfVectorizer(analyzer="word", ngram_range=self.ngram_range, sublinear_tf=True,
                                           lowercase=True, strip_accents="unicode",
                                           token_pattern=r"(?u)\b[^\W\d_]{2,}\b", dtype=np.float64)
        texts = [item_text(self.task, v) for v in batch.values]
        # balanced class weights: pools are rarely balanced, and the expert cares about every class's recall
        self.classifier_ = LogisticRegression(C=self.C, max_iter=5000, class_weight="balanced", solver="lbfgs")
        with warnings.catch_warnings(record=True) as caught:  # a note of the run, not a stray line on stderr
            warnings.simplefilter("always")
            words = self.vectorizer_.fit_transform(texts)
            self.classifier_.fit(sparse.hstack([words, self.knowledge.transform(batch)], format="csr"), list(labels),
                                 sample_weight=np.asarray(sample_weight, dtype=np.float64))
        self.fit_warnings_ = tuple(dict.fromkeys(f"{w.category.__name__}: {' '.join(str(w.message).split())}"
                                                 for w in caught))
        self.feature_names_ = (*(str(w) for w in self.vectorizer_.get_feature_names_out()), *self.knowledge.names)
        self.training_data_sha256_ = sha256_hex("\n".join(f"{t}\t{label}" for t, label in
                                                          zip(texts, labels, strict=True)))
        return self

    # -- prediction ----------------------------------------------------------------------------------

    def predict_proba(self, batch: ItemBatch) -> np.ndarray:
        """(items, task classes) probabilities, in the task's class order (0 for a class never trained on)."""
        out = np.zeros((len(batch), len(self.task.class_names)))
        if not len(batch):
            return out
        from scipy import sparse

        words = self.vectorizer_.transform([item_text(self.task, v) for v in batch.values])
        scores = self.classifier_.predict_proba(sparse.hstack([words, self.knowledge.transform(batch)],
                                                              format="csr"))
        for column, name in enumerate(self.classifier_.classes_):
            out[:, self.task.class_names.index(str(name))] = scores[:, column]
        return out

    def predict(self, batch: ItemBatch) -> list[str]:
        classes = self.task.class_names
        return [classes[int(i)] for i in self.predict_proba(batch).argmax(axis=1)] if len(batch) else []

    # -- explanation ---------------------------------------------------------------------------------

    def strongest_features(self, top: int = STRONGEST) -> dict[str, list[Feature]]:
        """The features that push hardest towards each class (a binary model's one row read both ways)."""
        coefficients = self.classifier_.coef_
        classes = [str(c) for c in self.classifier_.classes_]
        rows = ([(classes[1], coefficients[0]), (classes[0], -coefficients[0])] if len(classes) == 2
                else list(zip(classes, coefficients, strict=True)))
        groups = self.feature_groups()
        strongest: dict[str, list[Feature]] = {}
        for name, row in sorted(rows, key=lambda pair: self.task.class_names.index(pair[0])):
            order = np.argsort(-row, kind="stable")[:top]
            strongest[name] = [Feature(self.feature_names_[i], groups[i], round(float(row[i]), 4))
                               for i in order if row[i] > 0]
        return strongest

    def feature_groups(self) -> list[str]:
        """The group of each feature column: words, lexicon mentions or rule votes."""
        groups = ["words"] * len(self.vectorizer_.vocabulary_)
        for group in self.knowledge.groups:
            groups += [group.name] * len(group.names)
        return groups

    def describe(self, examples: Sequence[TrainingExample], spec_hash: str) -> dict[str, Any]:
        """metadata.json: what the model is, what it was trained on, what it leans on."""
        groups = Counter(self.feature_groups())
        return {
            "format": FORMAT_VERSION, "task": self.task.name, "spec_hash": spec_hash,
            "classes": list(self.task.class_names), "fields": [f.name for f in self.task.fields],
            "model_classes": [str(c) for c in self.classifier_.classes_],
            "training_examples": len(examples),
            "training_sources": dict(sorted(Counter(e.source for e in examples).items())),
            "training_labels": dict(sorted(Counter(e.label for e in examples).items())),
            "training_data_sha256": self.training_data_sha256_,
            "feature_groups": {
                "words": {"features": groups["words"], "what": "TF-IDF of the words of the fields' text"},
                "lexicon mentions": {"features": groups["lexicon mentions"],
                                     "what": "per lexicon: each text field, and any field, mentions it"},
                "rule votes": {"features": groups["rule votes"], "what": "per rule: it fired for its class"},
            },
            "feature_names": list(self.knowledge.names),
            "strongest_features": {cls: [{"feature": f.name, "group": f.group, "weight": f.weight}
                                         for f in features]
                                   for cls, features in self.strongest_features().items()},
            "classifier": f"LogisticRegression(C={self.C:g}, class_weight=balanced, lbfgs)",
            "params": self.get_params(), "sklearn_version": _sklearn_version(),
        }

    # -- persistence ---------------------------------------------------------------------------------

    def save(self, directory: Path, metadata: Mapping[str, Any]) -> None:
        """Write model.joblib and metadata.json, each atomically, so a crash never leaves half a model."""
        import joblib

        # the vectorizer memoises id(stop_words), an address that differs from process to process: without it
        # the same training data gives the same bytes (it only checks its stop words again when next used)
        vars(self.vectorizer_).pop("_stop_words_id", None)
        buffer = io.BytesIO()
        joblib.dump({"vectorizer": self.vectorizer_, "classifier": self.classifier_}, buffer)
        write_atomic(directory / MODEL_FILE, buffer.getvalue())
        write_json(directory / METADATA_FILE, dict(metadata))


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def warm_up() -> None:
    """Import what fitting needs now (the model process does, while the run makes its LLM calls)."""
    from scipy import sparse  # noqa: F401
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: F401
    from sklearn.linear_model import LogisticRegression  # noqa: F401


def train(task: TaskIR, functions: Sequence[LabelingFunction], batch: ItemBatch,
          examples: Sequence[TrainingExample]) -> LocalModel:
    """Fit a `LocalModel` on examples whose inputs (and rule votes) are `batch`, row for row."""
    return LocalModel(task, functions).fit(batch, [e.label for e in examples], [e.weight for e in examples])


def load(directory: Path, task: TaskIR, functions: Sequence[LabelingFunction], spec_hash: str) -> LocalModel:
    """Reload a saved model; refuse one trained for another version of the task."""
    import joblib

    try:
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        state = joblib.load(directory / MODEL_FILE)
    except FileNotFoundError as exc:
        raise LocalModelError(f"{directory}: no saved local model ({Path(exc.filename or '').name} missing)") from None
    except (OSError, ValueError, EOFError, KeyError, AttributeError, ImportError) as exc:
        raise LocalModelError(f"{directory}: cannot load the local model: {exc}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_VERSION:
        raise LocalModelError(f"{directory}: the saved model has format {metadata.get('format')!r} "
                              f"(this taskc reads format {FORMAT_VERSION}); run `taskc run` again to retrain")
    expected = {"task": task.name, "classes": list(task.class_names), "fields": [f.name for f in task.fields]}
    for key, value in expected.items():
        if metadata.get(key) != value:
            raise LocalModelError(f"{directory}: the saved model was trained for {key} {metadata.get(key)!r}, "
                                  f"this task has {value!r}; run `taskc run` again to retrain")
    if metadata.get("spec_hash") != spec_hash:
        raise LocalModelError(
            f"{directory}: the saved model was trained for another version of the task (spec hash "
            f"{str(metadata.get('spec_hash'))[:12]}, this task is {spec_hash[:12]}): its fields, classes, lexicons "
            f"or rules changed; run `taskc run` again to retrain")
    model = LocalModel(task, functions, **_params(metadata.get("params")))
    if list(model.knowledge.names) != metadata.get("feature_names"):
        raise LocalModelError(f"{directory}: the saved model's knowledge features do not match this task's; "
                              "run `taskc run` again to retrain")
    model.vectorizer_, model.classifier_ = state["vectorizer"], state["classifier"]
    model.feature_names_ = (*(str(w) for w in model.vectorizer_.get_feature_names_out()), *model.knowledge.names)
    return model


def _params(stored: Any) -> dict[str, Any]:
    if not isinstance(stored, dict):
        return {}
    params: dict[str, Any] = {}
    if isinstance(stored.get("C"), int | float):
        params["C"] = float(stored["C"])
    if isinstance(stored.get("ngram_range"), list) and len(stored["ngram_range"]) == 2:
        params["ngram_range"] = tuple(int(n) for n in stored["ngram_range"])
    return params


__all__ = ["Feature", "LocalModel", "LocalModelError", "TrainingExample", "load", "train"]
