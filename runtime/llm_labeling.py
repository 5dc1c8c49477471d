"""Analysis: the LLM as one more labeling function, beside the expert's rules.

With a provider, `taskc run` asks the LLM to label the pool items the rules
leave open (no vote, or votes in conflict) and scores the prompted LLM on the
whole gold set. This module puts those answers in the same terms as the rules'
analysis: how much of the pool it labeled, where it overlaps and conflicts with
each rule (on the pool items it labeled and on the dev gold items, where both
always speak), and how often it is right on dev gold. The classification
response schema asks the LLM for the ids of the rationales that decided its
label; they are kept, so each LLM error on dev gold shows the rationale it
leaned on, and a rationale the LLM keeps misreading stands out. It reads the
run's pool and gold items only; it trains nothing and calls nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .result import GoldItem, PoolItem

NO_CITATION = "(none cited)"


@dataclass(frozen=True)
class RuleAgainstLLM:
    """One rule beside the LLM: where both labeled an item, how often they agree, and who gold says is right."""

    rationale_id: str
    class_name: str
    pool_both: int  # pool items the LLM labeled on which the rule also voted
    pool_disagree: int
    pool_items: tuple[int, ...]  # pool indices of the disagreements
    gold_both: int  # dev gold items on which the rule voted (the LLM labels every gold item)
    gold_disagree: int
    rule_right: int  # of the dev disagreements, the gold label is the rule's
    llm_right: int  # ... the LLM's
    gold_items: tuple[int, ...]  # gold indices of the disagreements

    @property
    def disagreements(self) -> int:
        return self.pool_disagree + self.gold_disagree

    def to_json(self) -> dict[str, Any]:
        return {"rationale": self.rationale_id, "class": self.class_name, "pool_both": self.pool_both,
                "pool_disagree": self.pool_disagree, "gold_both": self.gold_both,
                "gold_disagree": self.gold_disagree, "rule_right": self.rule_right, "llm_right": self.llm_right}


@dataclass(frozen=True)
class LLMError:
    index: int  # gold item
    gold: str
    predicted: str | None
    cited: tuple[str, ...]  # the rationales the LLM said decided its label


@dataclass(frozen=True)
class LLMAsFunction:
    pool_items: int
    pool_labeled: int  # pool items whose training label is the LLM's
    pool_overlap: int  # of those, items on which a rule voted too
    pool_conflict: int  # ... and a rule voted another class
    gold_votes: int | None  # dev gold items it labeled (None: the LLM did not score gold)
    gold_correct: int | None
    errors: tuple[LLMError, ...]  # its dev gold errors
    rules: tuple[RuleAgainstLLM, ...]  # most disagreements first

    @property
    def coverage(self) -> float:
        return self.pool_labeled / self.pool_items if self.pool_items else 0.0

    @property
    def gold_accuracy(self) -> float | None:
        return None if not self.gold_votes else (self.gold_correct or 0) / self.gold_votes

    def leaned_on(self) -> list[tuple[str, tuple[int, ...]]]:
        """Rationale id -> the LLM's dev errors that cited it, the most cited first."""
        cited: dict[str, list[int]] = {}
        for error in self.errors:
            for rationale in error.cited or (NO_CITATION,):
                cited.setdefault(rationale, []).append(error.index)
        return sorted(((r, tuple(items)) for r, items in cited.items()), key=lambda pair: (-len(pair[1]), pair[0]))

    def to_json(self) -> dict[str, Any]:
        return {"pool_items": self.pool_items, "pool_labeled": self.pool_labeled,
                "coverage": round(self.coverage, 4), "pool_overlap": self.pool_overlap,
                "pool_conflict": self.pool_conflict, "gold_votes": self.gold_votes,
                "gold_correct": self.gold_correct,
                "gold_accuracy": None if self.gold_accuracy is None else round(self.gold_accuracy, 4),
                "rules": [r.to_json() for r in self.rules],
                "errors_by_cited_rationale": {r: len(items) for r, items in self.leaned_on()}}


def analyse_llm(rules: Sequence[tuple[str, str]], pool: Sequence[PoolItem], gold: Sequence[GoldItem],
                dev: Sequence[int], predicted: Sequence[str | None] | None,
                cited: Sequence[tuple[str, ...]] | None) -> LLMAsFunction | None:
    """The LLM beside the rules (``rules``: (rationale id, class) of each rule); None when it labeled nothing."""
    labeled = [i for i, item in enumerate(pool) if item.source == "llm"]
    if not labeled and predicted is None:
        return None
    shown = [i for i in dev if predicted is not None and i < len(predicted) and predicted[i] is not None]
    errors = tuple(LLMError(i, gold[i].label, predicted[i], tuple(cited[i]) if cited else ())
                   for i in shown if predicted is not None and predicted[i] != gold[i].label)
    against = []
    for rationale_id, class_name in rules:
        pool_both = [i for i in labeled if rationale_id in pool[i].votes]
        pool_wrong = tuple(i for i in pool_both if pool[i].label != class_name)
        gold_both = [i for i in shown if rationale_id in gold[i].votes]
        gold_wrong = tuple(i for i in gold_both if predicted is not None and predicted[i] != class_name)
        against.append(RuleAgainstLLM(
            rationale_id, class_name, len(pool_both), len(pool_wrong), pool_wrong, len(gold_both), len(gold_wrong),
            rule_right=sum(gold[i].label == class_name for i in gold_wrong),
            llm_right=sum(predicted is not None and gold[i].label == predicted[i] for i in gold_wrong),
            gold_items=gold_wrong))
    against.sort(key=lambda r: (-r.disagreements, r.rationale_id))
    votes_other = Counter(i for i in labeled for c in pool[i].votes.values() if c != pool[i].label)
    return LLMAsFunction(
        pool_items=len(pool), pool_labeled=len(labeled), pool_overlap=sum(bool(pool[i].votes) for i in labeled),
        pool_conflict=len(votes_other), gold_votes=len(shown) if predicted is not None else None,
        gold_correct=len(shown) - len(errors) if predicted is not None else None, errors=errors,
        rules=tuple(against))


def cited_rationales(content: Any, known: Sequence[str]) -> tuple[str, ...]:
    """The rationale ids a classification answer cites, in its order, known ids only."""
    if not isinstance(content, dict) or not isinstance(content.get("rationales"), list):
        return ()
    ids = set(known)
    return tuple(dict.fromkeys(r for r in content["rationales"] if isinstance(r, str) and r in ids))
