"""Runtime stage: the students' training set, built from what the run labeled.

Generated examples, the pool as the rules, the label model, the LLM and the expert labeled it, and
the expert's answers outside the pool become weighted `TrainingExample`s (each weighted by how sure
its label is), plus a field view of each example with several text fields. Every student trains on
this one set, and `training_set.jsonl` (which `taskc export` reads) holds it row by row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from taskc.compiler import VIEW_TYPES, TaskIR, field_view_values

from . import expert_answers, label_model, labeling, local_model
from .datafiles import DataRecord
from .dedupe import dedupe_key
from .features import item_text
from .result import GoldItem, PoolItem

TRAINING_SET_FILE = "training_set.jsonl"
UNCOVERED_WEIGHT = 0.5  # at most: scaled down further by how unsure the rules' silence is
FIELD_VIEW_WEIGHT = 0.5


def training_examples(task: TaskIR, generated: Sequence[Mapping[str, Any]], pool: Sequence[PoolItem],
                       fitted: label_model.LabelModelResult | None,
                       answered: Sequence[DataRecord] = ()) -> list[local_model.TrainingExample]:
    """What the local model learns from, each example weighted by how sure its label is.

    - generated examples (weight 1) and pool items the LLM labelled (1);
    - pool items the rules labelled, weighted by the label model's confidence (a coin-flip label
      should teach little);
    - the expert's answers to `taskc ask` (pool items relabelled, and ``answered`` items outside the
      pool), weighted EXPERT_WEIGHT: above any rule;
    - pool items no rule fired on, labelled by what the rules' silence says (the label model's
      posterior given that every rule abstained; see `label_model.posterior`), weighted at most
      UNCOVERED_WEIGHT and less the nearer that posterior is to a coin flip. Without them the model
      never sees the kind of item the cascade hands it;
    - a *field view* of each labelled example with two or more filled text fields: the same item
      with one text field alone (the others empty), same label, half the weight. The label belongs
      to the dish, not to the way it is written down: a menu shows only the name, and what the
      ingredients taught about a label then reaches the name.
    """
    examples = [local_model.TrainingExample({f: g[f] for f in task.field_names if f in g}, str(g["label"]),
                                            "generated") for g in generated if g.get("label") in task.class_names]
    uncovered = [item for item in pool if item.label is None]
    silence = _silence_label(task, fitted) if uncovered and fitted is not None else None
    for item in pool:
        if item.label is not None and item.source is not None:
            # the label model's confidence weighs its labels: a coin-flip label should teach little
            weight = item.confidence if item.source == "label_model" and item.confidence is not None else 1.0
            weight = expert_answers.EXPERT_WEIGHT if item.source == expert_answers.SOURCE else weight
            examples.append(local_model.TrainingExample(item.values, item.label, item.source, weight))
        elif silence is not None and silence[1] > 0:
            examples.append(local_model.TrainingExample(item.values, silence[0], "rules' silence", silence[1]))
    examples += [local_model.TrainingExample(dict(r.values), str(r.label), expert_answers.SOURCE,
                                             expert_answers.EXPERT_WEIGHT) for r in answered]
    return examples + [view for example in examples for view in field_views(task, example)]


def _silence_label(task: TaskIR, fitted: label_model.LabelModelResult) -> tuple[str, float]:
    """The label and weight the rules' silence gives an item on which every rule abstained."""
    n_classes = len(task.class_names)
    silent = np.full((1, fitted.confusion.shape[0]), labeling.ABSTAIN, dtype=np.int64)
    posterior = label_model.posterior(fitted, silent)[0]
    best = int(posterior.argmax())
    sureness = (float(posterior[best]) - 1 / n_classes) / (1 - 1 / n_classes)
    return task.class_names[best], UNCOVERED_WEIGHT * sureness


def field_views(task: TaskIR, example: local_model.TrainingExample) -> list[local_model.TrainingExample]:
    """The example's field views (`taskc.compiler.field_view_values`), same label, half its weight."""
    views = []
    for values in field_view_values(task, example.values):
        kept = next(f.name for f in task.fields if f.type in VIEW_TYPES and values.get(f.name))
        views.append(local_model.TrainingExample(values, example.label, f"{example.source}, {kept} only",
                                                 example.weight * FIELD_VIEW_WEIGHT))
    return views


def gold_keys(task: TaskIR, gold: Sequence[GoldItem]) -> frozenset[str]:
    """The gold items' inputs as training examples are matched against them: deduplication's normalised key
    over every input field (case, punctuation, spacing and the order of list items aside)."""
    return frozenset(dedupe_key(item.values, task.field_names, True) for item in gold)


def without_gold(task: TaskIR, examples: Sequence[local_model.TrainingExample], held_out: frozenset[str]
                 ) -> tuple[list[local_model.TrainingExample], int]:
    """The examples but those whose input is a gold item's (``held_out``: `gold_keys`), and how many were left
    out, so that the gold set scores the models on items they did not learn: a generated example that copies
    a gold item, a gold item that is also in the pool. The expert's own answers stay (`taskc ask`: the expert
    labelled that very item, and the report qualifies the dev scores they reach)."""
    if not held_out:
        return list(examples), 0
    kept = [e for e in examples if _from_the_expert(e.source)
            or dedupe_key(e.values, task.field_names, True) not in held_out]
    return kept, len(examples) - len(kept)


def _from_the_expert(source: str) -> bool:
    return source == expert_answers.SOURCE or source.startswith(f"{expert_answers.SOURCE}, ")  # or its view


def gold_in_training(task: TaskIR, gold: Sequence[GoldItem], examples: Sequence[local_model.TrainingExample]) -> int:
    """How many gold items are also in the training data (the same input, case aside)."""
    seen = {item_text(task, e.values).lower() for e in examples}
    return sum(item_text(task, g.values).lower() in seen for g in gold)


def training_row(task: TaskIR, example: local_model.TrainingExample) -> dict[str, Any]:
    """One line of training_set.jsonl: what every student trains on (`taskc export` reads it)."""
    return {"input": {name: example.values.get(name) for name in task.field_names if name in example.values},
            "label": example.label, "source": example.source, "weight": round(float(example.weight), 6)}


__all__ = ["FIELD_VIEW_WEIGHT", "TRAINING_SET_FILE", "UNCOVERED_WEIGHT", "field_views", "gold_in_training",
           "gold_keys", "training_examples", "training_row", "without_gold"]
