"""Stage 3c: turn a checked expression into a Python callable, without eval or exec.

Each node becomes a closure over its children's closures; the callable takes an
environment (a mapping of the names the scope allows: input fields, ``label``,
metrics) and the task's lexicons are bound at build time. Because the only
operations are the ones written out below and the functions of the registry,
an expression cannot reach any Python object it was not handed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from . import expr_nodes as n
from .functions import FUNCTIONS, PATTERN, PREDICATE, WordList, compile_pattern, lexicon_index

Env = Mapping[str, Any]
Evaluator = Callable[[Env], Any]


class ExpressionEvaluationError(Exception):
    """An expression failed on a value it was given (e.g. division by zero)."""


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "%": operator.mod,
}
_COMPARISON: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge,
}


_FAILURES = (ArithmeticError, TypeError, ValueError, IndexError, KeyError, AttributeError)


def build_evaluator(node: n.Expr, lexicons: Mapping[str, tuple[str, ...]]) -> Evaluator:
    """Build the callable of a checked expression. Errors at run time raise ExpressionEvaluationError."""
    inner = _Builder(lexicons).build(node)

    def evaluate(env: Env) -> Any:
        try:
            return inner(env)
        except _FAILURES as exc:
            raise ExpressionEvaluationError(f"{type(exc).__name__}: {exc}") from None

    return evaluate


_OVER_LIST: dict[str, Callable[[Any], Any]] = {"any": any, "all": all, "count": sum}


class _Builder:
    def __init__(self, lexicons: Mapping[str, tuple[str, ...]]) -> None:
        self.lexicons = lexicons
        self.index = lexicon_index(lexicons)

    def build(self, node: n.Expr | n.Lambda) -> Evaluator:
        return getattr(self, "_" + type(node).__name__)(node)

    def _Literal(self, node: n.Literal) -> Evaluator:
        value = node.value
        return lambda env: value

    def _Name(self, node: n.Name) -> Evaluator:
        name = node.name
        return lambda env: env[name]

    def _LexiconRef(self, node: n.LexiconRef) -> Evaluator:
        words = WordList(self.lexicons[node.name])
        return lambda env: words

    def _ListLiteral(self, node: n.ListLiteral) -> Evaluator:
        items = [self.build(item) for item in node.items]
        return lambda env: [item(env) for item in items]

    def _Unary(self, node: n.Unary) -> Evaluator:
        operand = self.build(node.operand)
        if node.operator == "not":
            return lambda env: not operand(env)
        return lambda env: -operand(env)

    def _mentions_over_items(self, function: str, items_node: n.Expr | n.Lambda,
                             body: n.Lambda) -> Evaluator | None:
        """`any/all/count(xs, x -> F(x))` where F is a pure mention formula of the item itself: the whole
        walk over the list runs in C (index lookup, mask, truth table), with no Python call per item."""
        leaves: list[n.Call] = []
        if not _pure_mentions(body.body, leaves) or not leaves:
            return None
        if any(not (isinstance(leaf.arguments[0], n.Name) and leaf.arguments[0].name == body.parameter)
               for leaf in leaves):
            return None
        bits = self.index.bits
        items = self.build(items_node)
        truth = _Answers(lambda mask: _truth(body.body, mask, bits)).__getitem__
        lookup, keep = self.index.__getitem__, _bits_of(leaves, bits).__and__
        combine = _OVER_LIST[function]
        return lambda env: combine(map(truth, map(keep, map(lookup, items(env)))))

    def _item_memo_over_items(self, function: str, items_node: n.Expr | n.Lambda,
                              body: n.Lambda) -> Evaluator | None:
        """`any/all/count(xs, x -> P(x))` where P reads nothing but x: P's answer is remembered per item
        value (bounded), since the same ingredient lines come back input after input."""
        if n.free_names(body.body) - {body.parameter}:
            return None
        predicate = self.build(body.body)
        parameter = body.parameter
        answers = _Answers(lambda item: bool(predicate({parameter: item}))).__getitem__
        items = self.build(items_node)
        combine = _OVER_LIST[function]
        return lambda env: combine(map(answers, items(env)))

    def _mention_formula(self, node: n.Expr) -> Evaluator | None:
        """`and` / `or` / `not` over `mentions(t, lexicon.X)` of one text t, as one lookup.

        Rules are full of such formulas ("mentions a starch and not a substitute and not a look-alike"),
        evaluated for every ingredient of every input. The answer depends only on which lexicons t
        mentions, its mask in the lexicon index; so the formula is worked out once per distinct mask
        (a handful per task) and then read from a table: one index lookup instead of a closure call per
        operator and per mention."""
        leaves: list[n.Call] = []
        if not _pure_mentions(node, leaves) or len(leaves) < 2:
            return None
        texts = {n.to_sexpr(leaf.arguments[0]) for leaf in leaves}
        if len(texts) != 1:
            return None
        bits = self.index.bits
        relevant = _bits_of(leaves, bits)
        text, lookup = self.build(leaves[0].arguments[0]), self.index.__getitem__
        table = _Answers(lambda mask: _truth(node, mask, bits))
        return lambda env: table[lookup(text(env)) & relevant]

    def _Index(self, node: n.Index) -> Evaluator:
        target, key = self.build(node.target), self.build(node.key)
        return lambda env: target(env)[key(env)]

    def _Binary(self, node: n.Binary) -> Evaluator:
        fused = self._mention_formula(node)
        if fused is not None:
            return fused
        left, right = self.build(node.left), self.build(node.right)
        op = node.operator
        if op == "and":
            return lambda env: bool(left(env)) and bool(right(env))
        if op == "or":
            return lambda env: bool(left(env)) or bool(right(env))
        if op == "implies":
            return lambda env: (not left(env)) or bool(right(env))
        if op == "in":
            return lambda env: left(env) in right(env)
        if op == "not in":
            return lambda env: left(env) not in right(env)
        if op in _ARITHMETIC:
            arithmetic = _ARITHMETIC[op]
            return lambda env: arithmetic(left(env), right(env))
        comparison = _COMPARISON[op]
        return lambda env: comparison(left(env), right(env))

    def _Call(self, node: n.Call) -> Evaluator:
        function = FUNCTIONS[node.function]
        implementation = function.implementation
        if node.function == "mentions" and len(node.arguments) == 2 and isinstance(node.arguments[1], n.LexiconRef):
            return self._mentions_lexicon(node.arguments[0], node.arguments[1])
        if node.function in _OVER_LIST and len(node.arguments) == 2 and isinstance(node.arguments[1], n.Lambda):
            over_items = (self._mentions_over_items(node.function, node.arguments[0], node.arguments[1])
                          or self._item_memo_over_items(node.function, node.arguments[0], node.arguments[1]))
            if over_items is not None:
                return over_items
        arguments: list[Evaluator] = []
        for argument, kind in zip(node.arguments, function.parameters, strict=False):
            if kind == PREDICATE and isinstance(argument, n.Lambda):
                arguments.append(self._predicate(argument))
            elif kind == PATTERN and isinstance(argument, n.Literal):
                pattern = compile_pattern(str(argument.value))
                arguments.append(lambda env, pattern=pattern: pattern)  # type: ignore[misc]
            else:
                arguments.append(self.build(argument))
        # Rules run on every pool item and on every line `taskc predict` reads: the common arities get a
        # closure of their own, without building an argument tuple per call.
        if len(arguments) == 1:
            (only,) = arguments
            return lambda env: implementation(only(env))
        if len(arguments) == 2:
            first, second = arguments
            return lambda env: implementation(first(env), second(env))
        return lambda env: implementation(*(argument(env) for argument in arguments))

    def _mentions_lexicon(self, text_node: n.Expr | n.Lambda, lexicon: n.LexiconRef) -> Evaluator:
        """`mentions(x, lexicon.NAME)`, the commonest call of all: a bit of the task's lexicon index."""
        text = self.build(text_node)
        bit, lookup = self.index.bits[lexicon.name], self.index.__getitem__
        return lambda env: (lookup(text(env)) & bit) != 0

    def _predicate(self, node: n.Lambda) -> Evaluator:
        """A lambda evaluates to a Python predicate that binds its parameter over the outer env."""
        body = self.build(node.body)
        parameter = node.parameter

        def make_predicate(env: Env) -> Callable[[Any], bool]:
            local = dict(env)

            def predicate(item: Any) -> bool:
                local[parameter] = item
                return bool(body(local))

            return predicate

        return make_predicate


def _pure_mentions(node: n.Expr | n.Lambda, leaves: list[n.Call]) -> bool:
    """Whether ``node`` is and/or/not over `mentions(x, lexicon.X)` only (collecting those calls)."""
    if isinstance(node, n.Binary) and node.operator in ("and", "or"):
        return _pure_mentions(node.left, leaves) and _pure_mentions(node.right, leaves)
    if isinstance(node, n.Unary) and node.operator == "not":
        return _pure_mentions(node.operand, leaves)
    if isinstance(node, n.Call) and node.function == "mentions" and len(node.arguments) == 2 \
            and isinstance(node.arguments[1], n.LexiconRef):
        leaves.append(node)
        return True
    return False


def _bits_of(leaves: list[n.Call], bits: Mapping[str, int]) -> int:
    """The lexicon bits a formula's mentions read (the rest of a text's mask cannot change its value)."""
    relevant = 0
    for leaf in leaves:
        relevant |= bits[leaf.arguments[1].name]  # type: ignore[union-attr]
    return relevant


def _truth(node: n.Expr | n.Lambda, mask: int, bits: Mapping[str, int]) -> bool:
    """A pure mention formula's value for a text whose lexicon mask is ``mask``."""
    if isinstance(node, n.Binary):
        if node.operator == "and":
            return _truth(node.left, mask, bits) and _truth(node.right, mask, bits)
        return _truth(node.left, mask, bits) or _truth(node.right, mask, bits)
    if isinstance(node, n.Unary):
        return not _truth(node.operand, mask, bits)
    assert isinstance(node, n.Call) and isinstance(node.arguments[1], n.LexiconRef)
    return bool(mask & bits[node.arguments[1].name])


ITEM_MEMO_SIZE = 1 << 15


class _Answers(dict[Any, bool]):
    """Answers by key, worked out on first use: a lambda's answer by item value, or a mention formula's by
    lexicon mask. Emptied when full, so memory stays bounded on any input."""

    def __init__(self, compute: Callable[[Any], bool]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, item: Any) -> bool:
        value = self.compute(item)
        if len(self) >= ITEM_MEMO_SIZE:
            self.clear()
        self[item] = value
        return value
