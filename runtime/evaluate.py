"""Evaluation: every predictor of the run scored on the gold set, and the task's pass criterion.

Fourth stage of `taskc run`. A predictor gives one class or None (abstain) per
gold item; only the labeling functions' aggregate abstains. Metrics are computed
over the items a predictor labeled, and `coverage` says how many that was, so a
criterion such as `accuracy >= 0.9 and coverage >= 0.6` reads naturally for the
rules and stays exact for a model that always answers (coverage 1). Precision of
a class that was never predicted is 0 (as scikit-learn's zero_division=0). The
pass criterion is the task's compiled expression, evaluated on the metrics of
the primary predictor (`eval.primary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskc.compiler import expr_nodes as n
from taskc.compiler.expr_eval import ExpressionEvaluationError
from taskc.compiler.expr_types import OVERALL_METRICS, PER_CLASS_METRICS
from taskc.compiler.ir import TaskIR

PREDICTORS = ("labeling_functions", "local_model", "llm", "finetuned")


@dataclass(frozen=True)
class ClassificationMetrics:
    classes: tuple[str, ...]
    items: int
    labeled: int
    accuracy: float
    macro_f1: float
    coverage: float
    precision: dict[str, float]
    recall: dict[str, float]
    f1: dict[str, float]
    support: dict[str, int]
    confusion: tuple[tuple[int, ...], ...]  # rows: gold class; columns: predicted class, then "abstained"

    def criterion_env(self) -> dict[str, Any]:
        """The names a pass criterion can use."""
        return {name: getattr(self, name) for name in OVERALL_METRICS} | {
            name: dict(getattr(self, name)) for name in PER_CLASS_METRICS}

    def to_json(self) -> dict[str, Any]:
        return self.criterion_env() | {
            "items": self.items, "labeled": self.labeled, "support": dict(self.support),
            "confusion": {"rows": "gold", "columns": [*self.classes, "abstained"],
                          "matrix": [list(row) for row in self.confusion]}}


@dataclass(frozen=True)
class CriterionResult:
    source: str
    predictor: str
    passed: bool
    reason: str  # one line: the values it used, or why it could not be evaluated

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "predictor": self.predictor, "passed": self.passed, "reason": self.reason}


def classification_metrics(gold: Sequence[str], predicted: Sequence[str | None],
                           classes: Sequence[str]) -> ClassificationMetrics:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    index = {name: i for i, name in enumerate(classes)}
    abstained = len(classes)
    confusion = [[0] * (len(classes) + 1) for _ in classes]
    for truth, guess in zip(gold, predicted, strict=True):
        confusion[index[truth]][index[guess] if guess is not None else abstained] += 1
    labeled = sum(guess is not None for guess in predicted)
    correct = sum(confusion[i][i] for i in range(len(classes)))
    precision, recall, f1, support = {}, {}, {}, {}
    for i, name in enumerate(classes):
        predicted_as = sum(confusion[row][i] for row in range(len(classes)))
        labeled_gold = sum(confusion[i][:abstained])
        precision[name] = _ratio(confusion[i][i], predicted_as)
        recall[name] = _ratio(confusion[i][i], labeled_gold)
        f1[name] = _ratio(2 * precision[name] * recall[name], precision[name] + recall[name])
        support[name] = sum(confusion[i])
    return ClassificationMetrics(
        classes=tuple(classes), items=len(gold), labeled=labeled, accuracy=_ratio(correct, labeled),
        macro_f1=sum(f1.values()) / len(classes) if classes else 0.0, coverage=_ratio(labeled, len(gold)),
        precision=precision, recall=recall, f1=f1, support=support,
        confusion=tuple(tuple(row) for row in confusion))


def evaluate_criterion(task: TaskIR, metrics: Mapping[str, ClassificationMetrics]) -> CriterionResult | None:
    """The pass criterion on the primary predictor; None when the task has no eval section."""
    if task.eval is None:
        return None
    source = " ".join(task.eval.criterion.source.split())
    primary = task.eval.primary
    if primary not in metrics:
        return CriterionResult(source, primary, False,
                               f"the primary predictor '{primary}' did not run, so the criterion cannot hold")
    env = metrics[primary].criterion_env()
    try:
        value = task.eval.criterion.evaluator(task.lexicon_words())(env)
    except (ExpressionEvaluationError, ValueError) as exc:
        return CriterionResult(source, primary, False, f"the criterion could not be evaluated: {exc}")
    used = _metrics_used(task.eval.criterion.node, env)
    shown = ", ".join(f"{name} = {number:.3f}" for name, number in used.items())
    return CriterionResult(source, primary, bool(value), shown or f"evaluated to {value!r}")


def _metrics_used(node: Any, env: dict[str, Any]) -> dict[str, float]:
    """The metrics a criterion reads, in the order it reads them: `accuracy`, `recall["keto"]`."""
    used: dict[str, float] = {}
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if isinstance(current, n.Index) and isinstance(current.target, n.Name) and isinstance(current.key, n.Literal) \
                and current.target.name in PER_CLASS_METRICS and current.key.value in env[current.target.name]:
            used[f'{current.target.name}["{current.key.value}"]'] = env[current.target.name][current.key.value]
            continue
        if isinstance(current, n.Name) and current.name in OVERALL_METRICS:
            used[current.name] = env[current.name]
        stack.extend(reversed(n.children(current)))
    return used


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


__all__ = ["PREDICTORS", "ClassificationMetrics", "CriterionResult", "classification_metrics",
           "evaluate_criterion"]
