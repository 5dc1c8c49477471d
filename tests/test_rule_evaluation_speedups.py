"""The fast paths of rule evaluation give the answers of the plain ones, on random inputs.

`taskc predict` evaluates a task's rules on millions of inputs, so the evaluator takes shortcuts: one
lexicon index answers every `mentions(x, lexicon.NAME)`, formulas over mentions are read from truth
tables, and lambdas over list items run over the index or remember their answer per item. Each
shortcut must be invisible: these properties compare them with the regular-expression `mentions` of
the language reference and with a plain tree-walking interpreter written here, which has none.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from taskc.compiler import expr_nodes as n
from taskc.compiler.expr_eval import ExpressionEvaluationError, build_evaluator
from taskc.compiler.expr_parser import parse_expression
from taskc.compiler.functions import FUNCTIONS, LexiconIndex, compile_pattern, mentions

WORDS = ["rice", "brown rice", "rice-free", "sugar", "sugar-free", "maple syrup", "s'mores", "c. à c",
         "(optional)", "ice cream", "cream", "naïve", "Café", "1/2 cup"]
LEXICONS = {"a": ("rice", "brown rice", "maple syrup", "(optional)"), "b": ("sugar", "s'mores", "ice cream"),
            "c": ("sugar-free", "c. à c", "cream", "naïve", "café", "1/2 cup")}
ALPHABET = string.ascii_letters + " -'.,()/àïé" + "İ"
texts = st.lists(st.one_of(st.sampled_from(WORDS), st.text(alphabet=ALPHABET, max_size=6)), max_size=8).map(
    lambda parts: "".join(parts) if len(parts) % 2 else " ".join(parts))


@settings(max_examples=400, deadline=None)
@given(texts)
def test_the_lexicon_index_answers_as_mentions_does(text: str) -> None:
    index = LexiconIndex(LEXICONS)
    for name, words in LEXICONS.items():
        assert bool(index[text] & index.bits[name]) == mentions(text, words), (name, text)


RULES = [
    'any(ingredients, i -> mentions(i, lexicon.a) and not mentions(i, lexicon.c))',
    'any(ingredients, i -> mentions(i, lexicon.a) and not mentions(i, lexicon.c)) and not mentions(dish, lexicon.b)',
    'count(ingredients, i -> mentions(i, lexicon.b) or matches(lower(i), "^1 tsp")) >= 1',
    'all(ingredients, i -> mentions(i, lexicon.c) or mentions(dish, lexicon.a))',
    '(mentions(dish, lexicon.a) or mentions(dish, lexicon.b)) and not mentions(dish, lexicon.c)',
    'not (mentions(dish, lexicon.a) or mentions(dish, lexicon.b)) or len(ingredients) > 2',
    'any(ingredients, i -> i in lexicon.b)',
]


def _reference(node: n.Expr | n.Lambda, env: dict) -> object:
    """The meaning of an expression, walked node by node with the registry's own functions."""
    if isinstance(node, n.Literal):
        return node.value
    if isinstance(node, n.Name):
        return env[node.name]
    if isinstance(node, n.LexiconRef):
        return list(LEXICONS[node.name])
    if isinstance(node, n.Unary):
        return not _reference(node.operand, env)
    if isinstance(node, n.Binary):
        if node.operator == "and":
            return bool(_reference(node.left, env)) and bool(_reference(node.right, env))
        if node.operator == "or":
            return bool(_reference(node.left, env)) or bool(_reference(node.right, env))
        left, right = _reference(node.left, env), _reference(node.right, env)
        return {"in": lambda: left in right, ">=": lambda: left >= right, ">": lambda: left > right}[node.operator]()
    assert isinstance(node, n.Call)
    if node.function in ("any", "all", "count"):
        items, body = _reference(node.arguments[0], env), node.arguments[1]
        assert isinstance(body, n.Lambda)
        answers = [bool(_reference(body.body, env | {body.parameter: item})) for item in items]
        return {"any": any, "all": all, "count": sum}[node.function](answers)
    if node.function == "mentions":
        return mentions(_reference(node.arguments[0], env), _reference(node.arguments[1], env))
    if node.function == "matches":
        return compile_pattern(node.arguments[1].value).search(_reference(node.arguments[0], env)) is not None
    return FUNCTIONS[node.function].implementation(*(_reference(a, env) for a in node.arguments))


@settings(max_examples=300, deadline=None)
@given(st.builds(lambda dish, ingredients: {"dish": dish, "ingredients": ingredients}, texts,
                 st.lists(texts, max_size=5)))
def test_the_fast_evaluator_agrees_with_a_plain_interpreter(env: dict) -> None:
    for rule in RULES:
        node = parse_expression(rule)
        try:
            expected = _reference(node, env)
        except (TypeError, ValueError):
            expected = ExpressionEvaluationError
        try:
            got = build_evaluator(node, LEXICONS)(env)
        except ExpressionEvaluationError:
            got = ExpressionEvaluationError
        assert got == expected, rule


def test_a_null_text_fails_the_rule_that_reads_it() -> None:
    evaluate = build_evaluator(parse_expression(RULES[4]), LEXICONS)
    with pytest.raises(ExpressionEvaluationError):
        evaluate({"dish": None, "ingredients": []})
