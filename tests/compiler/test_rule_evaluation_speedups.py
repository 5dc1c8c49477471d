"""The fast paths of rule evaluation give the answers of the plain ones, on random inputs.

`taskc predict` evaluates a task's rules on millions of inputs, so the evaluator takes shortcuts: one
lexicon index answers every `mentions(x, lexicon.NAME)`, formulas over mentions are read from truth
tables, and lambdas over list items run over the index or remember their answer per item. Each
shortcut must be invisible: these properties compare them with the regular-expression `mentions` of
the language reference and with a plain tree-walking interpreter written here, which has none.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from taskc.compiler import expr_nodes as n
from taskc.compiler.expr_eval import ExpressionEvaluationError, build_evaluator
from taskc.compiler.expr_parser import parse_expression
from taskc.compiler.functions import FUNCTIONS, LexiconIndex, compile_pattern, mentions
from taskc.compiler.rule_key import rule_key
from taskc.runtime import labeling

EXAMPLE_POOL = Path(__file__).resolve().parents[2] / "examples" / "data" / "keto_pool.jsonl"

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


# -- the rule key: inputs that look alike to the rules share one evaluation -------------------------------

KEYED_RULES = RULES + [
    'count(ingredients) >= 2 and mentions(dish, lexicon.c)',
    'len(dish) > 6 or servings > 2',
    'any(ingredients, i -> i == dish)',  # two texts in one test: both read as they are
    'ingredients[0] == "rice"',  # a list read by position: read as it is
    'any(ingredients, i -> any(words(i), w -> w == "cream"))',
    'any(ingredients, i -> mentions(i, [dish]))',
]
FIELD_TYPES = {"dish": "string", "ingredients": "list[string]", "servings": "integer"}
odd_values = st.one_of(texts, st.none(), st.integers(-3, 3), st.lists(st.one_of(texts, st.none()), max_size=3))
inputs = st.builds(lambda dish, ingredients, servings: {"dish": dish, "ingredients": ingredients,
                                                        "servings": servings},
                   st.one_of(texts, texts, texts, odd_values), st.one_of(st.lists(texts, max_size=5), odd_values),
                   st.integers(0, 4))


def _answers(rules: list[n.Expr], env: dict) -> tuple:
    out = []
    for rule in rules:
        try:
            out.append(bool(build_evaluator(rule, LEXICONS)(env)))
        except ExpressionEvaluationError:
            out.append("failed")
    return tuple(out)


@settings(max_examples=200, deadline=None)
@given(st.lists(inputs, min_size=2, max_size=12))
def test_inputs_with_one_rule_key_get_the_same_answers_from_every_rule(envs: list[dict]) -> None:
    rules = [parse_expression(rule) for rule in KEYED_RULES]
    key_of = rule_key(rules, FIELD_TYPES, LEXICONS)
    assert key_of is not None
    by_key: dict = {}
    for env in envs:
        try:
            key = key_of(env)
        except TypeError:
            continue  # no key: the voter evaluates such an input directly
        by_key.setdefault(key, set()).add(_answers(rules, env))
    assert all(len(answers) == 1 for answers in by_key.values()), by_key


def test_the_key_sees_lexicons_not_words() -> None:
    rules = [parse_expression(RULES[1])]
    key_of = rule_key(rules, FIELD_TYPES, LEXICONS)
    assert key_of is not None
    one = key_of({"dish": "Sugar tart 12", "ingredients": ["brown rice", "salt"], "servings": 1})
    other = key_of({"dish": "sugar pie", "ingredients": ["salt", "rice", "rice"], "servings": 3})
    assert one == other  # servings is not read; the same lexicons are mentioned in each field
    assert one != key_of({"dish": "apple pie", "ingredients": ["salt", "rice"], "servings": 1})


def test_a_rule_reading_a_name_that_is_no_field_has_no_key() -> None:
    assert rule_key([parse_expression("mentions(menu, lexicon.a)")], FIELD_TYPES, LEXICONS) is None


def test_the_rule_voter_votes_as_every_function_on_every_item_does(keto) -> None:
    """`RuleVoter` (one evaluation per key, remembered) against `apply_functions` (the definition), on the
    example's pool and on inputs with missing, empty and wrongly typed values."""
    task = keto.ir
    functions = labeling.labeling_functions(task)
    pool = [json.loads(line) for line in EXAMPLE_POOL.read_text(encoding="utf-8").splitlines() if line.strip()]
    odd = [{"dish": None, "ingredients": ["rice"]}, {"dish": "risotto", "ingredients": None},
           {"dish": "pasta", "ingredients": [None, "rice"]}, {"dish": 3, "ingredients": []},
           {"dish": "", "ingredients": ["", " "]}]
    items = [labeling.rule_environment(task, v) for v in pool + odd + pool[:50]]
    voter = labeling.RuleVoter(task, functions)
    assert voter.key is not None
    expected = labeling.apply_functions(functions, items)
    for _ in range(2):  # the second time every keyed answer comes from memory
        got = voter.votes(items)
        assert (got.votes == expected.votes).all()
        assert got.failures == expected.failures
        assert got.first_failure == expected.first_failure
