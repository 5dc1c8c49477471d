"""The fast paths of `taskc predict` give the answers of the plain ones.

`taskc predict` reads millions of lines, so reading a line takes shortcuts: orjson parses it before
the standard library's json would, a line whose fields are all well-typed skips the checker that words
problems, a `matches` pattern calls the engine's own match, and the rules' answer is decided once per
distinct row of votes. Each shortcut must be invisible: these properties hold each to its definition.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from taskc.compiler import functions
from taskc.compiler.driver import compile_task
from taskc.compiler.ir import InputField, Span
from taskc.runtime import datafiles, label_model
from taskc.runtime.features import ItemBatch, item_batch
from taskc.runtime.labeling import ABSTAIN, fired_rules, labeling_functions
from taskc.runtime.predictor import Predictors

ROOT = Path(__file__).resolve().parents[2]
SPAN = Span(file="t.task.yaml", line=1, column=1, end_line=1, end_column=2)


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values, NaN equal to NaN, and of the same types (1 is not 1.0, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


scalars = (st.none() | st.booleans() | st.floats() | st.text(max_size=8)
           | st.integers(min_value=-(1 << 70), max_value=1 << 70)
           | st.sampled_from([1 << 63, (1 << 64) - 1, 1 << 64, -(1 << 63) - 1]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=12)
lines = st.dictionaries(st.sampled_from(["dish", "ingredients", "id", "note", "x"]), json_values, max_size=5)


def _as_read(value: Any) -> Any:
    """What a reader can tell of a line's value: its top-level values, with numbers inside containers
    reduced to "a number" (each makes any field wrong, whatever its type)."""
    def inner(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int | float):
            return "<number>"
        if isinstance(v, list):
            return [inner(x) for x in v]
        return {k: inner(x) for k, x in v.items()}
    if not isinstance(value, dict):
        return value
    return {k: v if not isinstance(v, list | dict) else inner(v) for k, v in value.items()}


@settings(max_examples=500, deadline=None)
@given(st.one_of(lines, json_values))
def test_a_line_reads_as_the_standard_library_reads_it(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False)  # NaN and Infinity too: json writes and reads them
    (fast, fast_problem), (standard, problem) = datafiles._loads(raw), datafiles._loads_standard(raw)
    assert fast_problem == problem
    assert _same(_as_read(fast), _as_read(standard))
    if not isinstance(value, dict):
        assert _same(fast, standard)  # not an object: json alone reads it


@settings(max_examples=300, deadline=None)
@given(lines)
def test_predict_reads_every_line_as_it_would_with_the_standard_library(value: dict) -> None:
    task = _keto_task()
    raw = json.dumps(value, ensure_ascii=False)
    fast = datafiles.parse_input_line(raw, 7, task)
    standard_value, problem = datafiles._loads_standard(raw)
    if problem is not None:
        assert fast == (None, [problem], None)
        return
    record, problems, _ = datafiles._check_object(standard_value, 7, task.fields, (), labeled=False)
    assert fast[1] == problems
    assert _same(fast[0], record.values if record is not None else None)
    given_id = standard_value.get("id") if isinstance(standard_value, dict) else None
    assert _same(fast[2], given_id if isinstance(given_id, str | int) and not isinstance(given_id, bool) else None)


@functools.cache
def _keto_task() -> Any:
    return compile_task(str(ROOT / "examples" / "keto.task.yaml"), emit=False).task


odd_lines = st.lists(st.sampled_from(['{"a": ', "1", "[", "]", "}", '"x"', ",", "NaN", "-", "1e999", "\\ud800",
                                      '"\\ud83d"', "\ufeff", " ", "tru", "null", '"', "12345678901234567890"]),
                     max_size=8).map("".join)


@settings(max_examples=500, deadline=None)
@given(odd_lines)
def test_a_broken_line_gets_the_standard_library_s_problem(raw: str) -> None:
    (fast, fast_problem), (standard, problem) = datafiles._loads(raw), datafiles._loads_standard(raw)
    assert fast_problem == problem
    assert _same(fast, standard)


def test_a_huge_integer_stays_exact_and_a_too_long_one_is_refused_as_json_refuses_it() -> None:
    assert datafiles._loads('{"id": 123456789012345678901234}') == ({"id": 123456789012345678901234}, None)
    too_long = '{"dish": "x", "extra": [' + "1" * 5000 + "]}"
    assert datafiles._loads(too_long) == datafiles._loads_standard(too_long)
    assert datafiles._loads(too_long)[1] is not None


FIELDS = (
    InputField("name", "string", "", SPAN, max_length=5),
    InputField("items", "list[string]", "", SPAN, min_length=1, max_length=3),
    InputField("kind", "enum", "", SPAN, values=("a", "b")),
    InputField("count", "integer", "", SPAN, optional=True),
    InputField("score", "number", "", SPAN, optional=True),
    InputField("flag", "boolean", "", SPAN, optional=True),
)
field_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False),
                         st.text(alphabet="ab c", max_size=7),
                         st.lists(st.text(alphabet="ab", max_size=2) | st.integers(), max_size=5))


@settings(max_examples=800, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in FIELDS] + ["id", "other"]), field_values))
def test_the_quick_field_check_accepts_exactly_the_lines_the_checker_passes_silently(value: dict) -> None:
    quick = datafiles._plain_values(value, FIELDS)
    record, problems, warnings = datafiles._check_object(value, 1, FIELDS, (), labeled=False)
    if quick is not None:
        assert record is not None and not problems and not warnings and _same(record.values, quick)
    else:
        assert problems or warnings


def test_a_matches_pattern_answers_the_same_through_the_engine_and_through_the_wrapper(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pattern = functions.compile_pattern(r"\b(no|without)\s+(bun|rice)\b|lettuce[- ]wrap")
    texts = ["burger, no bun", "nobun", "lettuce-wrap", "Lettuce wrap", "", "rice without rice", "über no rice"]
    through_engine = [pattern.search(t) for t in texts]
    assert through_engine == [True, None, True, None, None, True, True]
    monkeypatch.setattr(pattern, "_plain_match", None)
    assert [pattern.search(t) for t in texts] == through_engine


@pytest.fixture(scope="module")
def keto_predictors() -> tuple[Predictors, list[dict]]:
    task = _keto_task()
    assert task is not None
    pool = [json.loads(line) for line in (ROOT / "examples" / "data" / "keto_pool.jsonl").open(encoding="utf-8")]
    return Predictors(task, labeling_functions(task), None, None), pool[:400]


def test_the_rules_decide_per_row_of_votes_as_the_label_model_decides_per_item(keto_predictors) -> None:
    """The reference is the label model on the whole vote matrix, item by item, and `fired_rules` per item."""
    plain, pool = keto_predictors
    votes = item_batch(plain.task, plain.functions, pool).votes
    fitted = label_model.fit_dawid_skene(votes, len(plain.task.class_names))
    # rules half as sure as fitted, so that confidences differ from item to item and from 1.0
    blurred = dataclasses.replace(fitted, confusion=0.5 * fitted.confusion + 0.5 / fitted.confusion.shape[2])
    predictors = Predictors(plain.task, plain.functions, blurred, None)
    # the pool's rows, and random ones where rules of both classes fire (the keto rules never conflict)
    rng = np.random.default_rng(0)
    fires = rng.random((300, len(plain.functions))) < 0.3
    own_class = np.array([f.class_index for f in plain.functions])
    mixed = np.where(fires, own_class[None, :], ABSTAIN)
    batch = ItemBatch(tuple(pool) + ({},) * len(mixed), np.vstack([votes, mixed]))
    labels, posterior = predictors.rule_labels(batch)
    expected = [(label, float(posterior[i].max()) if label is not None else None, "labeling_functions",
                 fired_rules(predictors.functions, batch.votes[i])) for i, label in enumerate(labels)]
    answers = predictors.predict(batch, "labeling_functions")
    assert [(a.label, a.predictor, a.rules) for a in answers] == [(e[0], e[2], e[3]) for e in expected]
    for answer, (_, confidence, _, _) in zip(answers, expected, strict=True):
        assert (answer.confidence is None) == (confidence is None)
        assert answer.confidence is None or answer.confidence == pytest.approx(confidence, abs=1e-12)
    assert len({answer.label for answer in answers}) == 3  # keto, not_keto and abstained: every branch is held
    assert len({round(a.confidence, 6) for a in answers if a.confidence is not None}) > 3
