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
from .functions import FUNCTIONS, PATTERN, PREDICATE, WordList, compile_pattern, mentions_memo

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


def build_evaluator(node: n.Expr, lexicons: Mapping[str, tuple[str, ...]]) -> Evaluator:
    """Build the callable of a checked expression. Errors at run time raise ExpressionEvaluationError."""
    inner = _Builder(lexicons).build(node)

    def evaluate(env: Env) -> Any:
        try:
            return inner(env)
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError) as exc:
            raise ExpressionEvaluationError(f"{type(exc).__name__}: {exc}") from None

    return evaluate


class _Builder:
    def __init__(self, lexicons: Mapping[str, tuple[str, ...]]) -> None:
        self.lexicons = lexicons

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

    def _Index(self, node: n.Index) -> Evaluator:
        target, key = self.build(node.target), self.build(node.key)
        return lambda env: target(env)[key(env)]

    def _Binary(self, node: n.Binary) -> Evaluator:
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
        """`mentions(x, lexicon.NAME)`, the commonest call of all: one memo per lexicon, keyed by the text."""
        text = self.build(text_node)
        holds = mentions_memo(WordList(self.lexicons[lexicon.name]))
        return lambda env: holds(text(env))

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
