"""Serving a run's predictor on new inputs: the engine of `taskc predict`.

After the loop: a run left its predictors in RUN_DIR/model (`predictor`); this
module streams an input JSONL file through one of them. Lines are read, checked
(the same per-line reading as the pool and gold files, so a line `taskc run`
would accept is accepted here) and predicted in batches of `BATCH_LINES`, and
each answer is written as soon as its batch is done: memory stays flat however
long the input is (the rules' mention memo is bounded too). A bad line is
reported as ``file:line[:column]: message`` and either skipped or ends the
stream, as the caller decides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .datafiles import parse_input_line
from .features import item_batch
from .predictor import Prediction, Predictors

BATCH_LINES = 2048


@dataclass
class ServingStats:
    lines: int = 0  # non-blank lines read
    predicted: int = 0
    bad: int = 0
    by_label: dict[str, int] = field(default_factory=dict)
    by_predictor: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"lines": self.lines, "predicted": self.predicted, "bad_lines": self.bad,
                "by_label": dict(sorted(self.by_label.items())),
                "by_predictor": dict(sorted(self.by_predictor.items())),
                "seconds": round(self.seconds, 3)}


class StopServing(Exception):
    """Raised by a bad-line handler to end the stream (--on-error stop)."""


def serve(lines: Iterable[str], display: str, predictors: Predictors, predictor: str, write: Callable[[str], None],
          on_bad_line: Callable[[str], None], progress: Callable[[ServingStats], None] = lambda stats: None,
          ) -> ServingStats:
    """Predict every line; `write` gets one JSON line per good input (newline included), in input order.

    `on_bad_line` gets each problem as 'file:line: message'; it may raise StopServing to stop after the
    answers of the lines before it are written."""
    stats = ServingStats()
    started = time.perf_counter()
    task = predictors.task
    pending: list[tuple[int, dict[str, Any], Any]] = []  # (line number, values, the input's id if any)
    try:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            stats.lines += 1
            values, problems, input_id = parse_input_line(raw, number, task)
            if values is None:
                stats.bad += 1
                for problem in problems:
                    on_bad_line(f"{display}:{number}:{problem}")
                continue
            pending.append((number, values, input_id))
            if len(pending) >= BATCH_LINES:
                _flush(pending, predictors, predictor, write, stats)
                progress(stats)
    except StopServing:
        pass
    finally:
        _flush(pending, predictors, predictor, write, stats)
        stats.seconds = time.perf_counter() - started
    return stats


def _flush(pending: list[tuple[int, dict[str, Any], Any]], predictors: Predictors, predictor: str,
           write: Callable[[str], None], stats: ServingStats) -> None:
    if not pending:
        return
    batch = item_batch(predictors.task, predictors.functions, [values for _, values, _ in pending],
                       predictors.voter)
    answers = predictors.predict(batch, predictor)
    out = []
    encoded = _Fragments()
    for (number, _, input_id), answer in zip(pending, answers, strict=True):
        out.append(answer_line(number, input_id, answer, encoded))
        label = answer.label or "abstained"
        stats.by_label[label] = stats.by_label.get(label, 0) + 1
        stats.by_predictor[answer.predictor] = stats.by_predictor.get(answer.predictor, 0) + 1
    write("\n".join(out) + "\n")
    stats.predicted += len(pending)
    pending.clear()


class _Fragments:
    """JSON of the values answers repeat (labels, predictor names, the rules that fired), encoded once."""

    def __init__(self) -> None:
        self.values: dict[str | None, str] = {}
        self.rules: dict[int, tuple[dict[str, str], str]] = {}  # id -> (the dict, kept alive; its JSON)

    def value(self, value: str | None) -> str:
        text = self.values.get(value)
        if text is None:
            text = self.values[value] = json.dumps(value, ensure_ascii=False)
        return text

    def rules_of(self, rules: dict[str, str]) -> str:
        known = self.rules.get(id(rules))
        if known is None or known[0] is not rules:
            known = self.rules[id(rules)] = (rules, json.dumps(rules, ensure_ascii=False))
        return known[1]


def answer_line(number: int, input_id: Any, answer: Prediction, fragments: _Fragments | None = None) -> str:
    """One output line: exactly ``json.dumps({"line", "id"?, "label", "confidence", "predictor", "rules"},
    ensure_ascii=False)`` (a test holds it to that), with the parts answers repeat encoded once per batch
    (the rules' dict is shared by the answers of a batch that fired the same rules: Predictors.predict)."""
    encoded = fragments or _Fragments()
    where = f'{{"line": {number}, ' if input_id is None else \
        f'{{"line": {number}, "id": {json.dumps(input_id, ensure_ascii=False)}, '
    confidence = "null" if answer.confidence is None else json.dumps(round(answer.confidence, 4))
    return (f'{where}"label": {encoded.value(answer.label)}, "confidence": {confidence}, '
            f'"predictor": {encoded.value(answer.predictor)}, "rules": {encoded.rules_of(answer.rules)}}}')


__all__ = ["BATCH_LINES", "ServingStats", "StopServing", "answer_line", "serve"]
