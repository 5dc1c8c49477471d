"""Evaluation: every predictor of the run scored the same way on the gold set, and the task's pass criterion.

Fourth stage of `taskc run`. A predictor gives one class or None (abstain) per
gold item. Every predictor is scored over *all* gold items, an abstention
counting as an error: accuracy is correct / items, a class's recall counts its
abstained items as missed, precision is over the items predicted as the class.
Coverage (the share labelled) is shown beside them, so the rules, which abstain
where no rule fires, are compared with a model that always answers on the same
footing. A predictor that labels nothing has no scores ("n/a", None in JSON),
not 0. Accuracy and macro-F1 carry a 95% bootstrap interval (percentile, 1,000
resamples of the items, seeded: the same data gives the same interval), which
says how much of a score is the luck of the gold set. The pass criterion is the
task's compiled expression, evaluated on the primary predictor (`eval.primary`)
over the test half of the gold set (`gold_split`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from taskc.compiler import OVERALL_METRICS, PER_CLASS_METRICS, ExpressionEvaluationError, TaskIR, metric_reads

PREDICTORS = ("labeling_functions", "local_model", "rules_then_model", "llm", "finetuned", "rules_then_finetuned")
SPLITS = ("all", "dev", "test")
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0

Interval = tuple[float, float]


@dataclass(frozen=True)
class ClassificationMetrics:
    classes: tuple[str, ...]
    items: int
    labeled: int
    accuracy: float | None  # None: the predictor labelled nothing (n/a)
    macro_f1: float | None
    coverage: float
    precision: dict[str, float | None]
    recall: dict[str, float | None]
    f1: dict[str, float | None]
    support: dict[str, int]
    confusion: tuple[tuple[int, ...], ...]  # rows: gold class; columns: predicted class, then "abstained"
    accuracy_ci: Interval | None = None
    macro_f1_ci: Interval | None = None

    def criterion_env(self) -> dict[str, Any]:
        """The names a pass criterion can use."""
        return {name: getattr(self, name) for name in OVERALL_METRICS} | {
            name: dict(getattr(self, name)) for name in PER_CLASS_METRICS}

    def to_json(self) -> dict[str, Any]:
        return self.criterion_env() | {
            "accuracy_ci": _interval_json(self.accuracy_ci), "macro_f1_ci": _interval_json(self.macro_f1_ci),
            "items": self.items, "labeled": self.labeled, "support": dict(self.support),
            "confusion": {"rows": "gold", "columns": [*self.classes, "abstained"],
                          "matrix": [list(row) for row in self.confusion]}}


@dataclass(frozen=True)
class PredictorScores:
    """One predictor on the whole gold set and on its dev and test halves (None: that half is empty)."""

    all: ClassificationMetrics
    dev: ClassificationMetrics | None
    test: ClassificationMetrics | None

    def on(self, split: str) -> ClassificationMetrics | None:
        return {"all": self.all, "dev": self.dev, "test": self.test}[split]

    def to_json(self) -> dict[str, Any]:
        return {split: None if (m := self.on(split)) is None else m.to_json() for split in SPLITS}


@dataclass(frozen=True)
class CriterionResult:
    source: str
    predictor: str
    passed: bool
    reason: str  # one line: the values it used, or why it could not be evaluated
    split: str = "test"  # the gold items it was judged on: "test", or "all" when the gold set has no test half

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "predictor": self.predictor, "passed": self.passed, "reason": self.reason,
                "split": self.split}


def classification_metrics(gold: Sequence[str], predicted: Sequence[str | None], classes: Sequence[str],
                           *, intervals: bool = True) -> ClassificationMetrics:
    """Scores over every gold item, abstentions (None) counted as errors; see the module docstring."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    truth, guess = _encoded(gold, classes), _encoded(predicted, classes)
    confusion = _confusion(truth, guess, len(classes))
    labeled = int((guess < len(classes)).sum())
    precision, recall, f1 = _per_class(confusion)
    scored = labeled > 0
    accuracy, macro_f1 = _overall(confusion[None])
    return ClassificationMetrics(
        classes=tuple(classes), items=len(gold), labeled=labeled,
        accuracy=float(accuracy[0]) if scored else None, macro_f1=float(macro_f1[0]) if scored else None,
        coverage=labeled / len(gold) if len(gold) else 0.0,
        precision=_named(classes, precision, scored), recall=_named(classes, recall, scored),
        f1=_named(classes, f1, scored), support={c: int(confusion[i].sum()) for i, c in enumerate(classes)},
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        **(_bootstrap(truth, guess, len(classes)) if intervals and scored else {}))


def _encoded(labels: Sequence[str | None], classes: Sequence[str]) -> np.ndarray:
    """Class indices, an abstention (None) as len(classes): the extra column of a confusion matrix."""
    index = {name: i for i, name in enumerate(classes)}
    return np.fromiter((len(classes) if label is None else index[label] for label in labels), dtype=np.int64,
                       count=len(labels))


def _confusion(truth: np.ndarray, guess: np.ndarray, n_classes: int) -> np.ndarray:
    """(classes, classes + 1) counts: rows gold, columns predicted then abstained."""
    width = n_classes + 1
    return np.bincount(truth * width + guess, minlength=n_classes * width).reshape(n_classes, width)


def _per_class(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class of one or many (leading axis) confusion matrices."""
    n_classes = confusion.shape[-2]
    hits = np.diagonal(confusion[..., :n_classes], axis1=-2, axis2=-1).astype(np.float64)
    predicted_as = confusion[..., :n_classes].sum(axis=-2)
    support = confusion.sum(axis=-1)
    precision = np.divide(hits, predicted_as, out=np.zeros_like(hits), where=predicted_as > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return precision, recall, f1


def _overall(confusions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of a stack of confusion matrices (abstentions are in the last column)."""
    n_classes = confusions.shape[-2]
    items = confusions.sum(axis=(-2, -1))
    hits = np.trace(confusions[..., :n_classes], axis1=-2, axis2=-1)
    accuracy = np.divide(hits, items, out=np.zeros(hits.shape, dtype=np.float64), where=items > 0)
    return accuracy, _per_class(confusions)[2].mean(axis=-1)


def _resamples(items: int) -> np.ndarray:
    """(BOOTSTRAP_RESAMPLES, items) item indices drawn with replacement, seeded: the same every time."""
    return np.random.default_rng(BOOTSTRAP_SEED).integers(0, items, size=(BOOTSTRAP_RESAMPLES, items))


def _resampled_confusions(truth: np.ndarray, guess: np.ndarray, n_classes: int, picks: np.ndarray) -> np.ndarray:
    """One confusion matrix per row of ``picks`` (item indices), counted in one bincount."""
    width = n_classes + 1
    samples = (truth * width + guess)[picks]
    offsets = np.arange(picks.shape[0])[:, None] * (n_classes * width)
    counts = np.bincount((samples + offsets).ravel(), minlength=picks.shape[0] * n_classes * width)
    return counts.reshape(picks.shape[0], n_classes, width)


def _bootstrap(truth: np.ndarray, guess: np.ndarray, n_classes: int) -> dict[str, Interval]:
    """95% percentile intervals of accuracy and macro-F1 over resamples of the gold items."""
    accuracy, macro_f1 = _overall(_resampled_confusions(truth, guess, n_classes, _resamples(len(truth))))
    return {"accuracy_ci": _percentiles(accuracy), "macro_f1_ci": _percentiles(macro_f1)}


def paired_macro_f1_difference(gold: Sequence[str], first: Sequence[str | None], second: Sequence[str | None],
                               classes: Sequence[str]) -> tuple[float, Interval]:
    """Macro-F1 of ``first`` minus that of ``second`` on the same gold items, with its 95% paired bootstrap
    interval: each resample draws the same items for both, so what the two share (the luck of which items
    are in the gold set) cancels and only their difference is left. An interval that holds 0 is noise."""
    if not len(gold) == len(first) == len(second):
        raise ValueError("the two predictions and the gold labels must be the same items")
    truth, n_classes = _encoded(gold, classes), len(classes)
    one, other = _encoded(first, classes), _encoded(second, classes)
    observed = (_overall(_confusion(truth, one, n_classes)[None])[1][0]
                - _overall(_confusion(truth, other, n_classes)[None])[1][0])
    picks = _resamples(len(gold))
    differences = (_overall(_resampled_confusions(truth, one, n_classes, picks))[1]
                   - _overall(_resampled_confusions(truth, other, n_classes, picks))[1])
    return float(observed), _percentiles(differences)


def _percentiles(values: np.ndarray) -> Interval:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _named(classes: Sequence[str], values: np.ndarray, scored: bool) -> dict[str, float | None]:
    return {c: float(values[i]) if scored else None for i, c in enumerate(classes)}


def _interval_json(interval: Interval | None) -> list[float] | None:
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]


def score_predictor(gold: Sequence[str], predicted: Sequence[str | None], classes: Sequence[str],
                    splits: Sequence[str]) -> PredictorScores:
    """A predictor on all gold items and on each half (``splits`` names each item's half: dev or test)."""
    def on(half: str) -> ClassificationMetrics | None:
        chosen = [i for i, s in enumerate(splits) if s == half]
        if not chosen:
            return None
        return classification_metrics([gold[i] for i in chosen], [predicted[i] for i in chosen], classes)

    return PredictorScores(all=classification_metrics(gold, predicted, classes), dev=on("dev"), test=on("test"))


def evaluate_criterion(task: TaskIR, scores: Mapping[str, PredictorScores]) -> CriterionResult | None:
    """The pass criterion on the primary predictor's test half; None when the task has no eval section."""
    if task.eval is None:
        return None
    source = " ".join(task.eval.criterion.source.split())
    primary = task.eval.primary
    if primary not in scores:
        return CriterionResult(source, primary, False,
                               f"the primary predictor '{primary}' did not run, so the criterion cannot hold")
    split = "test" if scores[primary].test is not None else "all"
    metrics = scores[primary].on(split)
    assert metrics is not None
    if metrics.labeled == 0:
        return CriterionResult(source, primary, False, "the primary predictor labelled no gold item", split)
    env = metrics.criterion_env()
    try:
        value = task.eval.criterion.evaluator(task.lexicon_words())(env)
    except (ExpressionEvaluationError, ValueError) as exc:
        return CriterionResult(source, primary, False, f"the criterion could not be evaluated: {exc}", split)
    used = _metrics_used(task.eval.criterion.node, env)
    shown = ", ".join(f"{name} = {number:.3f}" for name, number in used.items() if number is not None)
    return CriterionResult(source, primary, bool(value), shown or f"evaluated to {value!r}", split)


def _metrics_used(node: Any, env: dict[str, Any]) -> dict[str, float | None]:
    """The metrics a criterion reads, in the order it reads them: `accuracy`, `recall["keto"]`."""
    used: dict[str, float | None] = {}
    for read in metric_reads(node):
        name = read[0]
        if len(read) == 1:
            used[name] = env[name]
        elif read[1] in env[name]:
            used[f'{name}["{read[1]}"]'] = env[name][read[1]]
    return used


__all__ = ["PREDICTORS", "SPLITS", "ClassificationMetrics", "CriterionResult", "PredictorScores",
           "classification_metrics", "evaluate_criterion", "score_predictor"]
