"""The fast answer check agrees with jsonschema on the subset of JSON Schema the compiler emits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from taskc.compiler.driver import compile_task
from taskc.runtime.provider import AnswerProblem, parse_answer
from taskc.runtime.schema_check import compile_schema_check

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TYPES = ["string", "integer", "number", "boolean", "null", "array", "object"]
NAMES = ["dish", "ingredients", "label", "calories", "spicy"]


def schemas(depth: int = 2) -> st.SearchStrategy[dict[str, Any]]:
    """Schemas from the supported subset, nested a little."""
    leaf = st.one_of(
        st.builds(lambda t: {"type": t}, st.sampled_from(TYPES)),
        st.builds(lambda ts: {"type": ts}, st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True)),
        st.builds(lambda values: {"type": "string", "enum": values},
                  st.lists(st.sampled_from(["keto", "not_keto", "maybe"]), min_size=1, max_size=3, unique=True)),
        st.builds(lambda values: {"enum": values}, st.lists(st.text(max_size=3), min_size=1, max_size=3)),
        st.just({"description": "anything at all"}),
    )
    if depth == 0:
        return leaf
    inner = schemas(depth - 1)
    objects = st.builds(
        lambda props, required, closed, typed: {
            **({"type": "object"} if typed else {}), "properties": props,
            "required": [name for name in required if name in props] if closed else required,
            "additionalProperties": not closed},
        st.dictionaries(st.sampled_from(NAMES), inner, max_size=3), st.lists(st.sampled_from(NAMES), max_size=2,
                                                                             unique=True),
        st.booleans(), st.booleans())
    arrays = st.builds(lambda items, typed: {**({"type": "array"} if typed else {}), "items": items}, inner,
                       st.booleans())
    return st.one_of(leaf, objects, arrays)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3, allow_nan=False),
              st.sampled_from([1.0, 0.0, 2.5]), st.sampled_from(["keto", "not_keto", "", "x"]), st.text(max_size=3)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(NAMES + ["extra"]), children, max_size=4)),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(schemas(), json_values)
def test_the_fast_check_agrees_with_jsonschema(schema: dict[str, Any], value: Any) -> None:
    check = compile_schema_check(schema)
    assert check is not None  # the strategy draws only from the supported subset
    assert check(value) == jsonschema.Draft202012Validator(schema).is_valid(value)


@pytest.mark.parametrize(("value", "valid"), [(1, True), (1.0, True), (1.5, False), (True, False), ("1", False)])
def test_integers_are_whole_numbers_and_never_booleans(value: Any, valid: bool) -> None:
    check = compile_schema_check({"type": "integer"})
    assert check is not None and check(value) is valid


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^a"},  # a keyword outside the subset
    {"enum": [1, True]},  # JSON equality of numbers and booleans differs from Python's
    {"type": "decimal"},
    {"items": True},  # boolean schemas
    {"properties": {"a": {"minLength": 2}}},  # nested unknown keyword
])
def test_schemas_outside_the_subset_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert compile_schema_check(schema) is None


@pytest.mark.parametrize("task", ["keto.task.yaml", "support/support.task.yaml",
                                  "custom_templates/reviews.task.yaml"])
def test_every_response_schema_of_the_examples_is_in_the_subset(task: str) -> None:
    compiled = compile_task(EXAMPLES / task).compiled
    assert compiled is not None
    formats = [job.response_format for job in compiled.plan] + [compiled.classification_format]
    for response_format in formats:
        assert compile_schema_check(response_format["json_schema"]["schema"]) is not None


def test_an_answer_failing_the_fast_check_gets_jsonschemas_message() -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"label": {"type": "string", "enum": ["keto", "not_keto"]}},
        "required": ["label"], "additionalProperties": False}}}
    assert parse_answer('{"label": "keto"}', "stop", response_format) == {"label": "keto"}
    with pytest.raises(AnswerProblem) as problem:
        parse_answer('{"label": "vegan"}', "stop", response_format)
    assert problem.value.kind == "schema_violation" and str(problem.value).startswith("label: 'vegan' is not one of")
