"""The fast paths of rule evaluation give the answers of the plain ones, on random inputs.

`taskc predict` evaluates a task's rules on millions of inputs, so the evaluator takes shortcuts: one
lexicon index answers every `mentions(x, lexicon.NAME)`, formulas over mentions are read from truth
tables, lambdas over list items remember their answer per item, and a task's rules are evaluated
together. Each shortcut must be invisible: these properties compare it with the regular-expression
`mentions` of the language reference and with rules built and evaluated one by one.
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from taskc.compiler.expr_eval import ExpressionEvaluationError, SharedEvaluation, build_evaluator
from taskc.compiler.expr_parser import parse_expression
from taskc.compiler.functions import LexiconIndex, mentions

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


def _node(source: str):  # noqa: ANN202 - the parser's node type
    return parse_expression(source)


@settings(max_examples=300, deadline=None)
@given(st.builds(lambda dish, ingredients: {"dish": dish, "ingredients": ingredients}, texts,
                 st.lists(texts, max_size=5)))
def test_rules_evaluated_together_agree_with_rules_evaluated_alone(env: dict) -> None:
    nodes = [_node(rule) for rule in RULES]
    together = SharedEvaluation(nodes, LEXICONS)(env)
    for node, shared in zip(nodes, together, strict=True):
        try:
            alone = build_evaluator(node, LEXICONS)(env)
        except ExpressionEvaluationError:
            assert isinstance(shared, ExpressionEvaluationError)
            continue
        assert shared == alone
    assert SharedEvaluation(nodes, LEXICONS)({"dish": None, "ingredients": []})[4].__class__ is \
        ExpressionEvaluationError  # a null text fails the rule that reads it, not the others
