"""The language reference (spec/reference.md) is executable: its examples are compiled and evaluated here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from taskc.compiler.diagnostics import DiagnosticBag, Span
from taskc.compiler.driver import compile_task
from taskc.compiler.expr_check import ExpressionChecker
from taskc.compiler.expr_eval import build_evaluator
from taskc.compiler.expr_parser import ExpressionSyntaxError, parse_expression
from taskc.compiler.expr_types import Scope, field_type, metric_types
from taskc.compiler.functions import FUNCTIONS, WordList

REFERENCE = (Path(__file__).parents[2] / "spec" / "reference.md").read_text(encoding="utf-8")
CLASSES = ("keto", "not_keto")
LEXICONS = {"high_carb": ("rice", "pasta", "bread", "potato")}
ENV = {
    "dish": "Cauliflower Fried Rice", "ingredients": ["cauliflower rice", "eggs", "soy sauce"], "label": "keto",
    "accuracy": 0.9, "macro_f1": 0.88, "coverage": 0.7,
    "precision": {"keto": 0.9, "not_keto": 0.9}, "recall": {"keto": 0.8, "not_keto": 0.95},
    "f1": {"keto": 0.85, "not_keto": 0.92},
}


def _block(kind: str) -> list[tuple[str, str]]:
    match = re.search(rf"```{kind}\n(.*?)```", REFERENCE, flags=re.DOTALL)
    assert match, f"reference.md has a ```{kind} block"
    rows = []
    for line in match.group(1).splitlines():
        expression, _, expected = line.rpartition("=>")
        rows.append((expression.strip(), expected.strip()))
    return rows


FIELDS = {"dish": field_type("string"), "ingredients": field_type("list[string]")}


def _scope(context: str) -> Scope:
    """The names of a real context, as compiler.passes.scope_for builds them for a task like the reference's."""
    if context == "criterion":
        return Scope(context, classes=CLASSES, metrics=metric_types(CLASSES), hidden_fields=frozenset(FIELDS))
    return Scope(context, FIELDS, frozenset(LEXICONS), CLASSES, allows_label=context == "constraint")


def _check(expression: str, context: str) -> tuple[object, DiagnosticBag]:
    bag = DiagnosticBag()
    try:
        node = parse_expression(expression)
    except ExpressionSyntaxError as exc:
        bag.error(Span("ref", 1, exc.start + 1), "E020", f"syntax error in expression: {exc.message}")
        return None, bag
    ExpressionChecker(_scope(context), lambda a, b: Span("ref", 1, a + 1, 1, b + 1), bag).check(node)
    return node, bag


@pytest.mark.parametrize("expression,expected", _block("taskc-examples"))
def test_reference_example_evaluates_as_documented(expression: str, expected: str) -> None:
    # Each example must type-check in a real context: a constraint (inputs, lexicons, label) or, when it
    # reads metrics, a pass criterion.
    checked = {context: _check(expression, context) for context in ("constraint", "criterion")}
    clean = [context for context, (_node, bag) in checked.items() if not bag.items]
    assert clean, {context: [d.message for d in bag.items] for context, (_node, bag) in checked.items()}
    node = checked[clean[0]][0]
    assert build_evaluator(node, LEXICONS)(ENV) == json.loads(expected)


@pytest.mark.parametrize("expression,expected", _block("taskc-errors"))
def test_reference_mistake_is_reported_as_documented(expression: str, expected: str) -> None:
    code, _, message = expected.partition(" ")
    _node, bag = _check(expression, "constraint")
    assert [(d.code, d.message) for d in bag.items][:1] == [(code, message)]


def test_reference_task_file_compiles(tmp_path: Path) -> None:
    match = re.search(r"```yaml\n(.*?)```", REFERENCE, flags=re.DOTALL)
    assert match
    spec = tmp_path / "tiny.task.yaml"
    spec.write_text(match.group(1), encoding="utf-8")
    result = compile_task(spec)
    assert result.ok and not result.diagnostics, result.diagnostics
    assert result.compiled is not None and "plan.json" in result.compiled.files


def test_reference_documents_every_function() -> None:
    documented = set(re.findall(r"^\| `(\w+)\(", REFERENCE, flags=re.MULTILINE))
    assert documented == set(FUNCTIONS)


def test_a_lexicon_is_one_word_list_however_it_is_passed() -> None:
    words = ["brown rice", "rice", "oats"]
    lexicon = WordList(words)
    assert lexicon == tuple(words) and hash(lexicon) == hash(tuple(words))
    mentions = FUNCTIONS["mentions"].implementation
    for text, expected in [("Brown rice bowl", True), ("licorice", False), ("overnight oats", True), ("", False)]:
        assert mentions(text, lexicon) is mentions(text, words) is expected
