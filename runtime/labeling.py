"""Labeling functions: every rationale with a rule votes for its class on the inputs it matches.

This is the first stage of `taskc run` after reading the data: the compiled
rules are applied to the unlabeled pool (and to the gold set, so the report can
say which rationale fired on which gold item). The result is a vote matrix in
the layout of Snorkel (items × functions, class index or ABSTAIN), from which
`label_model` builds training labels, and an analysis in the spirit of Snorkel's
LFAnalysis: coverage, overlaps, conflicts and, where gold labels exist, each
function's empirical accuracy. A rule that raises on an input abstains there
and the failure is counted, because one odd pool item must not stop a run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from taskc.compiler import Expr, ExpressionEvaluationError, TaskIR, rule_key

ABSTAIN = -1


@dataclass(frozen=True)
class LabelingFunction:
    """A rationale's rule as a voter: returns its class when the rule holds, otherwise abstains."""

    rationale_id: str
    class_name: str
    class_index: int
    rule_source: str
    holds: Callable[[Mapping[str, Any]], Any]
    node: Expr | None = field(default=None, compare=False, repr=False)  # the rule, for `RuleVoter`'s key


@dataclass(frozen=True)
class VoteMatrix:
    """Votes of every labeling function on every item (class index or ABSTAIN), plus rule failures."""

    votes: np.ndarray  # shape (items, functions), int
    failures: tuple[int, ...]  # per function: inputs on which the rule raised (counted as abstain)
    first_failure: tuple[str | None, ...]  # per function: the first error message (shown in the report)


@dataclass(frozen=True)
class FunctionAnalysis:
    """One row of the LF analysis table."""

    rationale_id: str
    class_name: str
    coverage: float  # fraction of items it votes on
    overlaps: float  # fraction of items where it and at least one other function vote
    conflicts: float  # fraction of items where another function votes a different class
    votes: int
    failures: int
    gold_votes: int | None = None  # votes on the gold set (None without gold)
    gold_correct: int | None = None
    gold_wrong: int | None = None
    first_failure: str | None = None  # the first error its rule raised on the pool, for the report

    @property
    def empirical_accuracy(self) -> float | None:
        if not self.gold_votes:
            return None
        return (self.gold_correct or 0) / self.gold_votes

    def to_json(self) -> dict[str, Any]:
        return {"rationale": self.rationale_id, "class": self.class_name, "coverage": self.coverage,
                "overlaps": self.overlaps, "conflicts": self.conflicts, "votes": self.votes,
                "rule_failures": self.failures, "gold_votes": self.gold_votes, "gold_correct": self.gold_correct,
                "gold_wrong": self.gold_wrong, "empirical_accuracy": self.empirical_accuracy,
                "first_rule_failure": self.first_failure}


@dataclass(frozen=True)
class ConflictPair:
    """Two labeling functions that vote different classes on the same items."""

    first: str
    second: str
    items: tuple[int, ...]  # item indices in the analysed set


@dataclass(frozen=True)
class LFAnalysis:
    functions: tuple[FunctionAnalysis, ...]
    rationales_without_rule: tuple[str, ...]
    items: int
    coverage: float  # fraction of items with at least one vote
    overlap: float  # fraction with at least two votes
    conflict: float  # fraction with votes for two or more classes
    conflict_pairs: tuple[ConflictPair, ...]  # most conflicting pair first

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "coverage": self.coverage, "overlap": self.overlap, "conflict": self.conflict,
                "functions": [f.to_json() for f in self.functions],
                "rationales_without_rule": list(self.rationales_without_rule),
                "conflict_pairs": [{"rationales": [p.first, p.second], "items": len(p.items)}
                                   for p in self.conflict_pairs]}


def labeling_functions(task: TaskIR) -> tuple[LabelingFunction, ...]:
    """One labeling function per rationale that has a rule, in the task file's order."""
    lexicons = task.lexicon_words()
    classes = task.class_names
    return tuple(
        LabelingFunction(rationale_id=r.id, class_name=r.class_name, class_index=classes.index(r.class_name),
                         rule_source=" ".join(r.rule.source.split()), holds=r.rule.evaluator(lexicons),
                         node=r.rule.node)
        for r in task.rationales if r.rule is not None and r.rule.node is not None)


def rule_environment(task: TaskIR, values: Mapping[str, Any]) -> dict[str, Any]:
    """The input fields of one item as a rule's environment: an absent (optional) field is null, not an error."""
    return {f.name: values.get(f.name) for f in task.fields}


def rule_environments(task: TaskIR, records: Sequence[Any]) -> list[dict[str, Any]]:
    """`rule_environment` of every record (anything with a ``values`` mapping, e.g. a DataRecord)."""
    return [rule_environment(task, record.values) for record in records]


def apply_functions(functions: Sequence[LabelingFunction], items: Sequence[Mapping[str, Any]]) -> VoteMatrix:
    """Every function on every item: the definition of the votes (`RuleVoter` gives the same, faster)."""
    votes = np.full((len(items), len(functions)), ABSTAIN, dtype=np.int64)
    failures = [0] * len(functions)
    first_failure: list[str | None] = [None] * len(functions)
    for j, function in enumerate(functions):
        for i, item in enumerate(items):
            try:
                fired = bool(function.holds(item))
            except ExpressionEvaluationError as exc:
                failures[j] += 1
                first_failure[j] = first_failure[j] or str(exc)
                continue
            if fired:
                votes[i, j] = function.class_index
    return VoteMatrix(votes=votes, failures=tuple(failures), first_failure=tuple(first_failure))


MEMO_KEYS = 1 << 16  # keys a RuleVoter remembers the votes of before it starts afresh


class RuleVoter:
    """`apply_functions` with a memory: the votes of all rules, worked out once per rule key.

    The key (`taskc.compiler.rule_key`) is what the rules can see of an input: which lexicons and
    other text tests each text field passes. Inputs that look alike to the rules (a million menu lines
    mention the same few lexicons in the same few ways) share one evaluation; the answer, rule
    failures included, is exactly `apply_functions`' (a test holds the two to each other). An input
    whose values have no key (a null, a number where text was declared) is evaluated directly.
    """

    def __init__(self, task: TaskIR, functions: Sequence[LabelingFunction]) -> None:
        self.functions = tuple(functions)
        nodes = [f.node for f in self.functions]
        self.key = None
        if self.functions and all(node is not None for node in nodes):
            self.key = rule_key(nodes, {f.name: f.type for f in task.fields},
                                task.lexicon_words())
        self._memo: dict[Any, tuple[tuple[int, ...], tuple[tuple[int, str], ...]]] = {}

    def votes(self, items: Sequence[Mapping[str, Any]]) -> VoteMatrix:
        count = len(self.functions)
        failures = [0] * count
        first_failure: list[str | None] = [None] * count
        rows = []
        key_of, memo = self.key, self._memo
        for item in items:
            key = answer = None
            if key_of is not None:
                try:
                    key = key_of(item)
                except (TypeError, ValueError, KeyError, ExpressionEvaluationError):
                    key = None
                else:
                    answer = memo.get(key)
            if answer is None:
                answer = self._evaluate(item)
                if key is not None:
                    if len(memo) >= MEMO_KEYS:
                        memo.clear()
                    memo[key] = answer
            rows.append(answer[0])
            for j, message in answer[1]:
                failures[j] += 1
                first_failure[j] = first_failure[j] or message
        votes = np.array(rows, dtype=np.int64).reshape(len(rows), count)
        return VoteMatrix(votes=votes, failures=tuple(failures), first_failure=tuple(first_failure))

    def _evaluate(self, item: Mapping[str, Any]) -> tuple[tuple[int, ...], tuple[tuple[int, str], ...]]:
        row, failed = [], []
        for j, function in enumerate(self.functions):
            try:
                fired = bool(function.holds(item))
            except ExpressionEvaluationError as exc:
                failed.append((j, str(exc)))
                fired = False
            row.append(function.class_index if fired else ABSTAIN)
        return tuple(row), tuple(failed)


def analyse(functions: Sequence[LabelingFunction], matrix: VoteMatrix, task: TaskIR,
            gold_matrix: VoteMatrix | None = None, gold_labels: Sequence[int] | None = None) -> LFAnalysis:
    """Coverage, overlaps and conflicts on the pool; empirical accuracy from the gold set when given."""
    votes = matrix.votes
    n = votes.shape[0]
    voted = votes != ABSTAIN
    votes_per_item = voted.sum(axis=1)
    item_conflict = items_in_conflict(votes)
    rows = []
    for j, function in enumerate(functions):
        mine = voted[:, j]
        others_vote = (votes_per_item - mine) > 0
        # Where this function voted, another vote disagrees exactly when the item is in conflict.
        others_disagree = mine & item_conflict
        gold_votes = gold_correct = gold_wrong = None
        if gold_matrix is not None and gold_labels is not None:
            fired = gold_matrix.votes[:, j] != ABSTAIN
            truth = np.asarray(gold_labels, dtype=np.int64)
            gold_votes = int(fired.sum())
            gold_correct = int((fired & (truth == function.class_index)).sum())
            gold_wrong = gold_votes - gold_correct
        rows.append(FunctionAnalysis(
            rationale_id=function.rationale_id, class_name=function.class_name,
            coverage=_fraction(int(mine.sum()), n), overlaps=_fraction(int((mine & others_vote).sum()), n),
            conflicts=_fraction(int(others_disagree.sum()), n), votes=int(mine.sum()), failures=matrix.failures[j],
            gold_votes=gold_votes, gold_correct=gold_correct, gold_wrong=gold_wrong,
            first_failure=matrix.first_failure[j]))
    with_rule = {f.rationale_id for f in functions}
    return LFAnalysis(
        functions=tuple(rows),
        rationales_without_rule=tuple(r.id for r in task.rationales if r.id not in with_rule),
        items=n, coverage=_fraction(int((votes_per_item > 0).sum()), n),
        overlap=_fraction(int((votes_per_item > 1).sum()), n), conflict=_fraction(int(item_conflict.sum()), n),
        conflict_pairs=_conflict_pairs(functions, votes))


def fired_rules(functions: Sequence[LabelingFunction], row: np.ndarray) -> dict[str, str]:
    """rationale id -> class of the rules that fired in one row of a vote matrix."""
    return {f.rationale_id: f.class_name for f, vote in zip(functions, row, strict=True) if vote != ABSTAIN}


def items_in_conflict(votes: np.ndarray) -> np.ndarray:
    """Items on which the non-abstaining votes name two or more classes."""
    return np.array([len({int(v) for v in row if v != ABSTAIN}) > 1 for row in votes], dtype=bool)


def _conflict_pairs(functions: Sequence[LabelingFunction], votes: np.ndarray) -> tuple[ConflictPair, ...]:
    pairs = []
    for a in range(len(functions)):
        for b in range(a + 1, len(functions)):
            both = (votes[:, a] != ABSTAIN) & (votes[:, b] != ABSTAIN) & (votes[:, a] != votes[:, b])
            if both.any():
                pairs.append(ConflictPair(functions[a].rationale_id, functions[b].rationale_id,
                                          tuple(int(i) for i in np.flatnonzero(both))))
    # most conflicts first; ties in the task file's order so the report is stable
    return tuple(sorted(pairs, key=lambda p: -len(p.items)))


def _fraction(count: int, total: int) -> float:
    return count / total if total else 0.0


__all__ = ["ABSTAIN", "ConflictPair", "FunctionAnalysis", "LFAnalysis", "LabelingFunction", "RuleVoter",
           "VoteMatrix", "analyse", "apply_functions", "fired_rules", "items_in_conflict", "labeling_functions",
           "rule_environment", "rule_environments"]
