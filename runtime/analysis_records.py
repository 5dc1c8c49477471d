"""Analysis records: what the analyses after a run find, as plain frozen data.

The expert loop's questions and suggestions, the authors' facts and conflicts, and the LLM seen as a
labeling function are worked out from a `RunResult` (in `questions`, `suggestions`, `authors`,
`llm_labeling`, `expert_loop`) and held by it; their records live here, apart from the code that reads
the result, so that `result` can name them without an import cycle. Nothing here imports the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskc.compiler import counted

NO_CITATION = "(none cited)"  # an LLM error whose answer cited no rationale


@dataclass(frozen=True)
class ExpertLoop:
    questions: tuple[Question, ...]
    suggestions: tuple[Suggestion, ...]
    authors: AuthorAnalysis | None
    gold_lines: tuple[int, ...]  # per gold item, its line (suggestions name gold items by line)
    pool_lines: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"questions": len(self.questions),
                "suggestions": [s.to_json(self.gold_lines) for s in self.suggestions],
                "authors": None if self.authors is None else {
                    "authors": [a.to_json() for a in self.authors.authors],
                    "conflicts": [c.to_json(list(self.pool_lines)) for c in self.authors.conflicts]}}


@dataclass(frozen=True)
class Question:
    rank: int
    line: int  # the pool file's line
    values: dict[str, Any]
    score: float
    disagreement: float  # 0: every voter names the same class
    uncertainty: float  # 0: the model is sure
    rules: dict[str, str]  # rationale id -> class, for the rules that fired
    rules_label: str | None  # the label model's combination of the rules' votes
    llm: str | None
    model: str | None
    model_confidence: float | None

    def why(self) -> str:
        parts = []
        if self.rules:
            by_class: dict[str, list[str]] = {}
            for rationale, cls in self.rules.items():
                by_class.setdefault(cls, []).append(rationale)
            parts.append("rules: " + "; ".join(f"{cls} ({', '.join(ids)})" for cls, ids in by_class.items()))
        else:
            parts.append("no rule fired")
        if self.llm is not None:
            parts.append(f"LLM: {self.llm}")
        if self.model is not None:
            parts.append(f"model: {self.model} ({self.model_confidence:.0%})")
        return "; ".join(parts)

    def to_json(self, field_names: Sequence[str]) -> dict[str, Any]:
        """One line of questions.jsonl: the item as an answers file holds it (label null until answered)."""
        values = {name: self.values[name] for name in field_names if name in self.values}
        return values | {"label": None, "question": {
            "rank": self.rank, "pool_line": self.line, "score": round(self.score, 4),
            "disagreement": round(self.disagreement, 4), "uncertainty": round(self.uncertainty, 4),
            "votes": {"rules": self.rules, "rules_label": self.rules_label, "llm": self.llm, "model": self.model,
                      "model_confidence": None if self.model_confidence is None else round(self.model_confidence, 4)},
            "why": self.why()}}


@dataclass(frozen=True)
class Suggestion:
    term: str
    lexicon: str
    rules: tuple[tuple[str, str], ...]  # (rationale id, "fires" | "stops firing") on the items it changes
    fixes: tuple[int, ...]  # dev gold items the predictor gets right after the change (wrong before)
    breaks: tuple[int, ...]  # dev gold items it gets wrong after the change (right before)
    predictor: str
    target: tuple[str, str]  # (rationale id, wanted effect): the rule the suggestion is about
    class_name: str = ""  # the class of the suggestion's rule
    pool_changes: int = 0  # pool items on which some rule's vote changes (how far the change reaches)
    alternatives: tuple[str, ...] = ()  # other terms with exactly the same fixes (a phrase, a shorter word)
    fit: float = 0.0  # 0-100: how much the term looks like the lexicon's entries (where it belongs)

    @property
    def kind(self) -> str:
        """`addition` when the change makes its rule fire, `exception` when it stops it."""
        return "addition" if self.target[1] == "fires" else "exception"

    @property
    def headline(self) -> str:
        """"rice_pasta_noodles misses" / "fat_and_protein fires wrongly": the rule the change is about."""
        rule, effect = self.target
        return f"{rule} {'misses' if effect == 'fires' else 'fires wrongly'}"

    def text(self) -> str:
        effect = "; ".join(f"{rule} {effect}" for rule, effect in self.rules)
        return (f"add \"{self.term}\" to lexicon.{self.lexicon} ({self.kind}: {effect}): fixes "
                f"{counted(len(self.fixes), 'dev error')}, breaks {counted(len(self.breaks), 'correct item')}"
                f"; changes the rules' votes on {self.pool_changes} pool items")

    def to_json(self, gold_lines: Sequence[int]) -> dict[str, Any]:
        return {"term": self.term, "lexicon": self.lexicon, "kind": self.kind, "headline": self.headline,
                "class": self.class_name,
                "rules": [{"rationale": rule, "effect": effect} for rule, effect in self.rules],
                "fixes": len(self.fixes), "breaks": len(self.breaks),
                "fixed_gold_lines": [gold_lines[i] for i in self.fixes],
                "broken_gold_lines": [gold_lines[i] for i in self.breaks], "predictor": self.predictor,
                "pool_changes": self.pool_changes, "alternatives": list(self.alternatives), "text": self.text()}


@dataclass(frozen=True)
class AuthorFacts:
    author: str
    rationales: tuple[str, ...]
    rules: int
    pool_coverage: float | None  # share of the pool at least one of their rules votes on
    gold_votes: int
    gold_correct: int

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_votes if self.gold_votes else None

    def to_json(self) -> dict[str, Any]:
        return {"author": self.author, "rationales": list(self.rationales), "rules": self.rules,
                "pool_coverage": self.pool_coverage, "gold_votes": self.gold_votes,
                "gold_correct": self.gold_correct, "gold_accuracy": self.gold_accuracy}


@dataclass(frozen=True)
class AuthorConflict:
    first: tuple[str, str]  # (author, rationale id)
    second: tuple[str, str]
    classes: tuple[str, str]  # what each rule votes for
    items: int  # pool items where both vote, for different classes
    examples: tuple[int, ...]  # pool indices, a few

    def to_json(self, pool_lines: list[int]) -> dict[str, Any]:
        return {"authors": [self.first[0], self.second[0]], "rationales": [self.first[1], self.second[1]],
                "classes": list(self.classes), "pool_items": self.items,
                "example_pool_lines": [pool_lines[i] for i in self.examples]}


@dataclass(frozen=True)
class AuthorAnalysis:
    authors: tuple[AuthorFacts, ...]
    conflicts: tuple[AuthorConflict, ...]  # most items first


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


@dataclass(frozen=True)
class LLMError:
    index: int  # gold item
    gold: str
    predicted: str | None
    cited: tuple[str, ...]  # the rationales the LLM said decided its label


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
