"""The report's findings: the records of what the run says about the expert's knowledge.

Part of the report stage. `analysis` computes them from the run's result: the
dev gold items the primary predictor got wrong (`Misclassified`), the same errors
by rationale (`RationaleFindings`), the next steps (`NextStep`), all in one
`Findings`, and how the gold set differs from the pool (`DataShift`); the
renderers write them out. Records only: this module reads no `RunResult`, so the
result can hold them without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskc.compiler import KnowledgeGap, counted


@dataclass(frozen=True)
class Misclassified:
    """A gold item the primary predictor got wrong, and what the rationales said about it."""

    index: int
    gold: str
    predicted: str | None
    fired_wrong: tuple[str, ...]  # rationales that fired and argue for another class
    fired_right: tuple[str, ...]  # rationales that fired for the true class (outvoted or ignored)
    silent: tuple[str, ...]  # rationales with a rule for the true class that did not fire


@dataclass(frozen=True)
class RationaleFindings:
    rationale_id: str
    class_name: str
    text: str
    has_rule: bool
    fired: int  # on gold
    fired_correct: int
    fired_wrong: int
    wrong_votes: tuple[int, ...]  # gold items where it fired for the wrong class
    errors_voted_wrong: tuple[int, ...]  # primary errors where it fired for the wrong class
    errors_missed: tuple[int, ...]  # primary errors of its class where it did not fire
    pool_coverage: float | None

    @property
    def involved(self) -> int:
        return len(self.errors_voted_wrong) + len(self.errors_missed)


@dataclass(frozen=True)
class NextStep:
    title: str
    detail: str
    examples: tuple[int, ...] = ()  # gold item indices to show


@dataclass(frozen=True)
class Findings:
    primary: str
    errors: tuple[Misclassified, ...]
    by_rationale: tuple[RationaleFindings, ...]
    unexplained: tuple[int, ...]  # primary errors on which no rule fired at all
    missed_by_class: dict[str, tuple[int, ...]]  # class -> its primary errors that none of its rules caught
    uncovered_gold: tuple[int, ...]  # gold items no rule fires on
    next_steps: tuple[NextStep, ...]


FILL_GAP = 0.5  # a field filled in this much more of one set than the other is worth a warning


@dataclass(frozen=True)
class DataShift:
    filled: dict[str, tuple[float, float | None]]  # field -> (share of gold items filled, share of pool items)
    unseen_word_share: float | None  # share of the gold items' word occurrences never seen in the pool
    unseen_examples: tuple[str, ...]
    broken_rows: tuple[tuple[int, str], ...]  # (gold line, what it breaks), dev items only: they are shown
    broken_count: int  # over the whole gold set
    gaps: tuple[KnowledgeGap, ...]

    def warnings(self) -> list[str]:
        lines = []
        for name, (gold, pool) in self.filled.items():
            if pool is not None and abs(gold - pool) >= FILL_GAP:
                lines.append(f"the field `{name}` is filled in {gold:.0%} of the gold items but {pool:.0%} of the "
                             f"pool: the model learnt from inputs unlike the ones it is judged on")
        if self.unseen_word_share is not None and self.unseen_word_share >= 0.2:
            lines.append(f"{self.unseen_word_share:.0%} of the words in the gold items never occur in the pool "
                         f"(e.g. {', '.join(self.unseen_examples[:6])}): the model has not seen them; rules and "
                         "lexicons carry the knowledge there")
        if self.broken_count:
            shown = "; ".join(f"line {line}: {what}" for line, what in self.broken_rows[:3]) or "all in the test half"
            lines.append(f"{counted(self.broken_count, 'gold row')} break the "
                         f"input's constraints ({shown})")
        lines += [f"{gap.message()}: {gap.hint()}" for gap in self.gaps]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {"fields_filled": {name: {"gold": _rounded(gold), "pool": _rounded(pool)}
                                  for name, (gold, pool) in self.filled.items()},
                "unseen_word_share": _rounded(self.unseen_word_share),
                "rows_breaking_constraints": self.broken_count,
                "dev_rows_breaking_constraints": [{"line": line, "breaks": what} for line, what in self.broken_rows],
                "knowledge_gaps": [{"lexicon": g.lexicon, "field": g.field, "gold_share": _rounded(g.gold_share),
                                    "pool_share": _rounded(g.pool_share)}
                                   for g in self.gaps],
                "warnings": self.warnings()}


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 4)


__all__ = ["DataShift", "Findings", "Misclassified", "NextStep", "RationaleFindings"]
