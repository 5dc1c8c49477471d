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
from typing import Any

from .analysis_records import LLMAsFunction, LLMError, RuleAgainstLLM
from .result import GoldItem, PoolItem


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
