"""Questions for the expert: the pool items whose label would teach the model most, for `taskc ask`.

Computed at the end of `taskc run`, after the predictors are trained. Every pool
item gets the votes of everyone who has a say on it: each rule that fired, the
LLM when it labelled the item, and the local model (its class and how sure it
is). An item is worth asking about when they disagree (the share of votes
against the most voted class, and whether the model contradicts the rules'
label) and when the model is unsure (one minus the margin between its two most
likely classes): an answer there changes a training label, or settles a label
the model is guessing. Items are then picked greedily, best first, skipping any
whose text is a near-duplicate (rapidfuzz ratios, `near_duplicates`) of one
already picked, so N questions cover N different kinds of item rather than ten spellings
of one dish. Items already in the gold set or already answered are never asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from rapidfuzz import fuzz
from taskc.compiler import TaskIR

from .analysis_records import Question
from .expert_answers import answer_key
from .features import ItemBatch
from .labeling import ABSTAIN
from .result import RunResult

QUESTIONS = 50  # written to questions.jsonl; the report shows the first ten, `taskc ask -n N` the first N
NEAR_DUPLICATE = 80.0  # token-sort ratio (0-100) at or above which two items count as the same question
NEAR_DUPLICATE_SET, LONG_TEXT = 90.0, 4  # the same, for texts of four words or more: one within the other
MODEL_WEIGHT_AGAINST_RULES = 0.5  # the model contradicting the rules' label: a disagreement of its own


def near_duplicates(first: str, second: str) -> bool:
    """Whether two texts say the same thing: the same words in another order or spelling, or, when both have
    LONG_TEXT words or more, one holding nearly all the other's ("Spicy Edamame" with its ingredients and
    "Best Ever Spicy Edamame" with the same ones). Short texts are compared whole: "Banana" is not
    "Banana bread"."""
    if min(len(first.split()), len(second.split())) >= LONG_TEXT:
        return fuzz.token_set_ratio(first, second) >= NEAR_DUPLICATE_SET
    return fuzz.token_sort_ratio(first, second) >= NEAR_DUPLICATE


def _same_question(task: TaskIR, first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Two items are one question when their whole texts are near-duplicates or one of their single-text
    fields (a dish name) is: "Peperonata" by name alone and with its recipe are the same dish."""
    if near_duplicates(answer_key(task, first), answer_key(task, second)):
        return True
    for field in task.fields:
        a, b = first.get(field.name), second.get(field.name)
        if field.type == "string" and isinstance(a, str) and isinstance(b, str) and a.strip() and b.strip():
            a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
            if min(len(a.split()), len(b.split())) >= 2 and fuzz.token_set_ratio(a, b) >= NEAR_DUPLICATE_SET \
                    or fuzz.token_sort_ratio(a, b) >= NEAR_DUPLICATE_SET:
                return True
    return False


def ask(result: RunResult, count: int = QUESTIONS) -> tuple[Question, ...]:
    """The ``count`` best questions about the run's pool (none without a pool)."""
    task, pool = result.task, result.pool
    if not pool:
        return ()
    classes = task.class_names
    skip = {answer_key(task, g.values) for g in result.gold}
    if result.answers is not None:
        skip |= set(result.answers.keys(task))
    local = result.predictors.local if result.predictors is not None else None
    probabilities = None
    if local is not None:
        index = {f.rationale_id: j for j, f in enumerate(result.functions)}
        votes = np.full((len(pool), len(result.functions)), ABSTAIN, dtype=np.int64)
        for i, item in enumerate(pool):
            for rationale, cls in item.votes.items():
                votes[i, index[rationale]] = classes.index(cls)
        environments = tuple({name: item.values.get(name) for name in task.field_names} for item in pool)
        probabilities = local.predict_proba(ItemBatch(environments, votes))
    scored = []
    for i, item in enumerate(pool):
        if item.source == "expert" or answer_key(task, item.values) in skip:
            continue
        row = None if probabilities is None else probabilities[i]
        model = None if row is None else classes[int(row.argmax())]
        llm = item.label if item.source == "llm" else None
        voters = Counter([*item.votes.values(), *([llm] if llm else []), *([model] if model else [])])
        total = sum(voters.values())
        disagreement = 1 - max(voters.values()) / total if total else 0.0
        if model is not None and item.label_model is not None and model != item.label_model:
            disagreement += MODEL_WEIGHT_AGAINST_RULES
        uncertainty = 0.0
        if row is not None and len(row) > 1:
            top = np.sort(row)[-2:]
            uncertainty = 1 - float(top[1] - top[0])
        scored.append((disagreement + uncertainty, disagreement, uncertainty, i, model,
                       None if row is None else float(row.max()), llm))
    scored.sort(key=lambda s: (-s[0], pool[s[3]].line))
    picked: list[Question] = []
    chosen: list[Mapping[str, Any]] = []
    for score, disagreement, uncertainty, i, model, confidence, llm in scored:
        if score <= 0 or len(picked) >= count:
            break
        if any(_same_question(task, pool[i].values, other) for other in chosen):
            continue
        chosen.append(pool[i].values)
        item = pool[i]
        picked.append(Question(rank=len(picked) + 1, line=item.line, values=item.values, score=score,
                               disagreement=disagreement, uncertainty=uncertainty, rules=dict(item.votes),
                               rules_label=item.label_model, llm=llm, model=model, model_confidence=confidence))
    return tuple(picked)


__all__ = ["NEAR_DUPLICATE", "QUESTIONS", "Question", "ask", "near_duplicates"]
