"""The expression IR: the nodes a rule, constraint or pass criterion parses into.

Positions are character offsets into the expression text (``start``/``end``);
the checker maps them back into the task file through the scalar's location,
so an error inside a multi-line rule points at the right line and column.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Literal:
    value: object
    start: int
    end: int


@dataclass(frozen=True)
class Name:
    name: str
    start: int
    end: int


@dataclass(frozen=True)
class LexiconRef:
    name: str
    start: int
    end: int


@dataclass(frozen=True)
class ListLiteral:
    items: tuple[Expr, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Lambda:
    parameter: str
    body: Expr
    start: int
    end: int


@dataclass(frozen=True)
class Call:
    function: str
    arguments: tuple[Expr | Lambda, ...]
    start: int
    end: int
    name_end: int


@dataclass(frozen=True)
class Unary:
    operator: str  # "not" | "-"
    operand: Expr
    start: int
    end: int


@dataclass(frozen=True)
class Binary:
    operator: str  # and or implies == != < <= > >= in "not in" + - * / %
    left: Expr
    right: Expr
    start: int
    end: int
    operator_start: int


@dataclass(frozen=True)
class Index:
    target: Expr
    key: Expr
    start: int
    end: int


Expr = Literal | Name | LexiconRef | ListLiteral | Call | Unary | Binary | Index


def children(node: Expr | Lambda) -> tuple[Expr | Lambda, ...]:
    """The direct sub-expressions of ``node``, for generic walks."""
    if isinstance(node, ListLiteral):
        return node.items
    if isinstance(node, Call):
        return node.arguments
    if isinstance(node, Lambda):
        return (node.body,)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Index):
        return (node.target, node.key)
    return ()


def lexicons_used(node: Expr | Lambda) -> set[str]:
    found: set[str] = set()
    stack: list[Expr | Lambda] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, LexiconRef):
            found.add(current.name)
        stack.extend(children(current))
    return found


def to_sexpr(node: Expr | Lambda) -> str:
    """A canonical, whitespace-free rendering of an expression (what the compiler understood)."""
    if isinstance(node, Literal):
        if isinstance(node.value, bool):
            return "true" if node.value else "false"
        if isinstance(node.value, str):
            return '"' + node.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, LexiconRef):
        return f"lexicon.{node.name}"
    if isinstance(node, ListLiteral):
        return "(list " + " ".join(to_sexpr(i) for i in node.items) + ")"
    if isinstance(node, Lambda):
        return f"(lambda {node.parameter} {to_sexpr(node.body)})"
    if isinstance(node, Call):
        return f"({node.function} " + " ".join(to_sexpr(a) for a in node.arguments) + ")"
    if isinstance(node, Unary):
        return f"({node.operator} {to_sexpr(node.operand)})"
    if isinstance(node, Binary):
        return f"({node.operator} {to_sexpr(node.left)} {to_sexpr(node.right)})"
    return f"(index {to_sexpr(node.target)} {to_sexpr(node.key)})"
