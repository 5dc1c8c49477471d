"""What every student sees of an input: its text, and the expert's knowledge as features that transfer.

Shared by the local model (training in `taskc run`, prediction in `taskc predict`)
and the cascade. An `ItemBatch` is a list of inputs together with the rules'
votes on them, computed once: the cascade reads the votes to decide, the model
reads them as features, so no rule is evaluated twice per item.

The knowledge features are the point of this module. Text n-grams learned from
a pool labelled through the ingredients say nothing about a menu entry that has
only a name; a feature "some text field mentions lexicon `high_carb`" does,
because it fires the same way whichever field holds the word. For every lexicon
there is one feature per text field and one for "any field", matched exactly as
`mentions` matches in rules (the same memoised matcher), and for every rule one
feature "fired for its class". The text itself is the fields' values joined
(not the JSON: keys and brackets are not words), so a word learnt from the
ingredients also counts in the dish name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from taskc.compiler import LexiconIndex, TaskIR, item_text, lexicon_index, sha256_hex

from .labeling import ABSTAIN, LabelingFunction, RuleVoter

if TYPE_CHECKING:
    from scipy import sparse


@dataclass(frozen=True)
class ItemBatch:
    """Inputs (as rule environments: every field present, null when absent) and the rules' votes on them."""

    values: tuple[Mapping[str, Any], ...]
    votes: np.ndarray  # (items, functions): class index or ABSTAIN

    def __len__(self) -> int:
        return len(self.values)


def item_batch(task: TaskIR, functions: Sequence[LabelingFunction], values: Sequence[Mapping[str, Any]],
               voter: RuleVoter | None = None) -> ItemBatch:
    """The inputs with the rules' votes (pass the same `voter` batch after batch to share its memory)."""
    names = task.field_names  # rule_environment, with the names looked up once per batch
    environments = tuple({name: v.get(name) for name in names} for v in values)
    return ItemBatch(environments, (voter or RuleVoter(task, functions)).votes(environments).votes)


@dataclass(frozen=True)
class FeatureGroup:
    name: str  # "words" | "lexicon mentions" | "rule votes"
    names: tuple[str, ...]


class KnowledgeFeatures:
    """Binary features of the expert's knowledge: lexicon mentions per text field and any field, rule votes.

    Built from the task alone (no fitting), so a saved model rebuilds the same columns from the task
    it is loaded for; `names` are stored with the model and compared on load.
    """

    def __init__(self, task: TaskIR, functions: Sequence[LabelingFunction]) -> None:
        self.text_fields = tuple(f.name for f in task.fields if f.type in ("string", "list[string]"))
        self.lexicon_names = tuple(lexicon.name for lexicon in task.lexicons)
        self._masks = lexicon_index(task.lexicon_words())  # the same index the rules' mentions() read
        self.functions = tuple(functions)
        self.mention_names = tuple(
            name for lexicon in self.lexicon_names
            for name in (*(f"{field} mentions {lexicon}" for field in self.text_fields),
                         f"any field mentions {lexicon}"))
        self.vote_names = tuple(f"rule {f.rationale_id} fired ({f.class_name})" for f in self.functions)

    @property
    def groups(self) -> tuple[FeatureGroup, ...]:
        return (FeatureGroup("lexicon mentions", self.mention_names), FeatureGroup("rule votes", self.vote_names))

    @property
    def names(self) -> tuple[str, ...]:
        return self.mention_names + self.vote_names

    def transform(self, batch: ItemBatch) -> sparse.csr_matrix:
        from scipy import sparse  # only the models read this matrix: the rules' process may never need SciPy

        mentioned = self._mention_matrix(batch)
        fired = (batch.votes != ABSTAIN).astype(np.float64).reshape(len(batch), len(self.vote_names))
        return sparse.csr_matrix(np.hstack([mentioned, fired]))

    def _mention_matrix(self, batch: ItemBatch) -> np.ndarray:
        """(items, lexicons × (text fields + 1)) of 0/1, lexicon-major: each field, then any field."""
        masks = self._masks
        n_lexicons, n_fields = len(self.lexicon_names), len(self.text_fields)
        per_field = [[_field_mask(masks, values.get(field)) for field in self.text_fields] for values in batch.values]
        bits = np.zeros((len(batch), n_lexicons, n_fields + 1), dtype=np.float64)
        for i, field_masks in enumerate(per_field):
            for j, mask in enumerate(field_masks):
                while mask:  # only the set bits: most inputs mention a few lexicons
                    low = mask & -mask
                    bits[i, low.bit_length() - 1, j] = 1.0
                    mask ^= low
        if n_fields:
            bits[:, :, n_fields] = bits[:, :, :n_fields].max(axis=2)
        return bits.reshape(len(batch), n_lexicons * (n_fields + 1))


def _field_mask(masks: LexiconIndex, value: Any) -> int:
    if isinstance(value, str):
        return masks[value]
    mask = 0
    if isinstance(value, list):
        for text in value:
            if isinstance(text, str):
                mask |= masks[text]
    return mask


def spec_hash(task: TaskIR) -> str:
    """The version of the task a trained predictor depends on: its fields, classes, lexicons and rules.

    Wording of descriptions, rationale texts, comments and generation settings do not change what a
    trained model computes, so they do not change this hash; `taskc predict` refuses a model whose
    hash differs from the task's."""
    facts = {
        "fields": [[f.name, f.type] for f in task.fields],
        "classes": list(task.class_names),
        "lexicons": {lexicon.name: list(lexicon.words) for lexicon in task.lexicons},
        "rules": [[r.id, r.class_name, r.rule.source if r.rule is not None else None] for r in task.rationales],
    }
    return sha256_hex(json.dumps(facts, sort_keys=True, ensure_ascii=False))


__all__ = ["FeatureGroup", "ItemBatch", "KnowledgeFeatures", "item_batch", "item_text", "spec_hash"]
