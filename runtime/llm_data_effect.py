"""Analysis stage: what the LLM's data did to the local model, told apart from noise.

The local model learns from the LLM's data (generated examples, pool items the LLM labelled) beside the
rules' labels and the expert's answers. To tell whether that data helped, the run trains the model a
second time without it: generated examples left out, and each pool item the LLM labelled keeps what the
rules alone gave it (the label model's label, or the rules' silence), as a run without an LLM would have
it. Both models are scored on the same dev gold items; the difference of their macro-F1 carries a 95%
paired bootstrap interval (`evaluate.paired_macro_f1_difference`), so "the LLM's data made it worse"
is only said when the interval is below zero, and a difference inside it reads as noise. Test items are
never looked at here: they decide the pass criterion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .evaluate import classification_metrics, paired_macro_f1_difference

LLM_SOURCES = frozenset({"generated", "llm"})  # TrainingExample.source of the LLM's data (views add ", field")
HURT, HELPED, NOISE = "hurt", "helped", "within noise"
_NAMES = {"local_model": "the local model", "rules_then_model": "the rules-then-model cascade"}


def from_llm(source: str) -> bool:
    """Whether a training example's source is the LLM's (its field views, "generated, dish only", too)."""
    return source.split(",", 1)[0] in LLM_SOURCES


@dataclass(frozen=True)
class LLMDataEffect:
    """The local model's dev macro-F1 with and without the LLM's training data."""

    llm_examples: int  # training examples from the LLM (field views included)
    other_examples: int  # what the model trained without it learned from
    dev_items: int
    with_llm: float
    without_llm: float
    difference: float  # with - without
    interval: tuple[float, float]  # 95% paired bootstrap interval of the difference
    predictor: str = "local_model"  # what was compared: the local model, or the rules-then-model cascade

    @property
    def verdict(self) -> str:
        low, high = self.interval
        return HURT if high < 0 else HELPED if low > 0 else NOISE

    def sentence(self) -> str:
        """One line for the report and the terminal."""
        low, high = self.interval
        change = (f"{_NAMES.get(self.predictor, self.predictor)}'s dev macro-F1 is {self.with_llm:.3f} with the "
                  f"LLM's {self.llm_examples} training examples and {self.without_llm:.3f} without them "
                  f"({self.difference:+.3f}, 95% paired interval {low:+.3f} to {high:+.3f}, "
                  f"{self.dev_items} dev items)")
        if self.verdict == HURT:
            return f"The LLM's data made the model worse: {change}."
        if self.verdict == HELPED:
            return f"The LLM's data made the model better: {change}."
        return f"The LLM's data made no difference beyond noise: {change}."

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "predictor": self.predictor, "llm_examples": self.llm_examples,
                "other_examples": self.other_examples, "dev_items": self.dev_items,
                "macro_f1_with_llm": round(self.with_llm, 4), "macro_f1_without_llm": round(self.without_llm, 4),
                "difference": round(self.difference, 4),
                "difference_ci": [round(self.interval[0], 4), round(self.interval[1], 4)]}


def compare(gold: Sequence[str], with_llm: Sequence[str | None], without_llm: Sequence[str | None],
            classes: Sequence[str], llm_examples: int, other_examples: int,
            predictor: str = "local_model") -> LLMDataEffect | None:
    """The effect on these dev items; None without dev items to tell by."""
    if not gold:
        return None
    difference, interval = paired_macro_f1_difference(gold, with_llm, without_llm, classes)
    first, second = (classification_metrics(gold, predicted, classes, intervals=False).macro_f1 or 0.0
                     for predicted in (with_llm, without_llm))  # None: labeled nothing, as macro-F1 0 here
    return LLMDataEffect(llm_examples, other_examples, len(gold), first, second, difference, interval, predictor)
