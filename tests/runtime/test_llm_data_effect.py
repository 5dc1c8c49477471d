"""What the LLM's data did to the local model: a paired comparison on the same dev items, noise said as noise."""

from __future__ import annotations

import random

import pytest
from taskc.runtime.evaluate import classification_metrics, paired_macro_f1_difference
from taskc.runtime.llm_data_effect import HELPED, HURT, NOISE, compare, from_llm

CLASSES = ("keto", "not_keto")


def test_the_difference_is_that_of_the_two_macro_f1s() -> None:
    gold = ["keto", "keto", "not_keto", "not_keto", "keto"]
    first = ["keto", "keto", "not_keto", "keto", None]
    second = ["keto", None, "keto", "keto", "keto"]
    difference, (low, high) = paired_macro_f1_difference(gold, first, second, CLASSES)
    expected = classification_metrics(gold, first, CLASSES).macro_f1 - classification_metrics(gold, second,
                                                                                                CLASSES).macro_f1
    assert difference == pytest.approx(expected)
    assert low <= difference <= high


def test_identical_predictions_differ_by_nothing_at_all() -> None:
    gold = ["keto", "not_keto"] * 20
    predicted = ["keto"] * 40
    assert paired_macro_f1_difference(gold, predicted, predicted, CLASSES) == (0.0, (0.0, 0.0))


def _predictions(gold: list[str], right: float, rng: random.Random) -> list[str]:
    return [g if rng.random() < right else ("not_keto" if g == "keto" else "keto") for g in gold]


def test_a_large_drop_on_many_items_is_hurt_and_a_rise_is_helped() -> None:
    rng = random.Random(1)
    gold = [rng.choice(CLASSES) for _ in range(400)]
    good, bad = _predictions(gold, 0.95, rng), _predictions(gold, 0.6, rng)
    assert compare(gold, bad, good, CLASSES, 120, 300).verdict == HURT
    assert compare(gold, good, bad, CLASSES, 120, 300).verdict == HELPED


def test_one_item_of_twenty_is_within_noise_and_says_so() -> None:
    gold = ["keto", "not_keto"] * 10
    without = list(gold)
    with_llm = list(gold)
    with_llm[0] = "not_keto"
    effect = compare(gold, with_llm, without, CLASSES, 30, 50)
    assert effect.verdict == NOISE
    assert effect.difference < 0
    assert "no difference beyond noise" in effect.sentence()
    assert effect.to_json()["verdict"] == NOISE
    assert effect.interval[0] < 0 <= effect.interval[1]


def test_no_dev_items_no_verdict() -> None:
    assert compare([], [], [], CLASSES, 10, 10) is None


@pytest.mark.parametrize(("source", "llm"), [("generated", True), ("llm", True), ("generated, dish only", True),
                                              ("label_model", False), ("rules' silence", False),
                                              ("expert", False), ("label_model, dish only", False)])
def test_which_training_examples_are_the_llms(source: str, llm: bool) -> None:
    assert from_llm(source) is llm
