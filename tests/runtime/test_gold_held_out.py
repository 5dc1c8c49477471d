"""What the gold set scores is not trained on: a training example with a gold item's input (a generated copy
of it, the same dish in the pool) is left out of training and counted in a note, so the gold scores judge
the models on items they did not learn. The expert's own answers stay."""

from __future__ import annotations

import json
from pathlib import Path

from taskc.compiler.driver import CompiledTask
from taskc.runtime.datasets import read_jsonl
from taskc.runtime.expert_answers import SOURCE as EXPERT
from taskc.runtime.local_model import TrainingExample
from taskc.runtime.result import GoldItem
from taskc.runtime.training_set import TRAINING_SET_FILE, gold_keys, without_gold

from taskc.cli.main import main

OMELETTE = {"dish": "Cheese Omelette", "ingredients": ["eggs", "cheddar cheese", "butter"]}


def test_a_copy_of_a_gold_item_is_left_out_whatever_its_case_spacing_or_order(keto: CompiledTask) -> None:
    task = keto.ir
    held_out = gold_keys(task, [GoldItem(OMELETTE, "keto", 1, ())])
    copy = {"dish": "cheese  omelette!", "ingredients": ["Butter", "eggs", "cheddar cheese"]}
    other = {"dish": "Cheese Omelette", "ingredients": ["eggs", "cheddar cheese", "butter", "ham"]}
    examples = [TrainingExample(copy, "keto", "generated"), TrainingExample(other, "keto", "generated"),
                TrainingExample(dict(OMELETTE), "keto", "label_model", 0.9),
                TrainingExample(dict(OMELETTE), "keto", EXPERT, 2.0),
                TrainingExample(dict(OMELETTE), "keto", f"{EXPERT}, dish only", 1.0)]
    kept, left_out = without_gold(task, examples, held_out)
    assert left_out == 2
    assert [(e.values, e.source) for e in kept] == [(other, "generated"), (OMELETTE, EXPERT),
                                                    (OMELETTE, f"{EXPERT}, dish only")]
    assert without_gold(task, examples, frozenset()) == (examples, 0)


def test_gold_items_in_the_pool_are_not_trained_on(keto_project: Path, tmp_path: Path, no_provider: None) -> None:
    data = keto_project.parent / "data"
    gold = read_jsonl(data / "keto_gold.jsonl")[:12]
    with (data / "keto_pool.jsonl").open("a", encoding="utf-8") as pool:
        for item in gold:  # the same dishes, written another way
            pool.write(json.dumps({"dish": item["dish"].upper(), "ingredients": item["ingredients"][::-1]}) + "\n")
    run_dir = tmp_path / "run"
    assert main(["run", str(keto_project), "-o", str(run_dir), "-q"]) in (0, 3)
    trained = {(row["input"]["dish"].casefold(), tuple(sorted(i.casefold() for i in row["input"]["ingredients"])))
               for row in read_jsonl(run_dir / TRAINING_SET_FILE) if "ingredients" in row["input"]}
    assert not trained & {(item["dish"].casefold(), tuple(sorted(i.casefold() for i in item["ingredients"])))
                          for item in gold}
    notes = json.loads((run_dir / "metrics.json").read_text())["notes"]
    assert any("left out of training" in note and "gold item" in note for note in notes), notes
