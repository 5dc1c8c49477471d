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


def free_names(node: Expr | Lambda) -> frozenset[str]:
    """The names an expression reads from its environment (a lambda's own parameter is not free)."""
    if isinstance(node, Name):
        return frozenset((node.name,))
    if isinstance(node, Lambda):
        return free_names(node.body) - {node.parameter}
    return frozenset().union(*(free_names(child) for child in children(node)))


def lexicons_used(node: Expr | Lambda) -> set[str]:
    found: set[str] = set()
    stack: list[Expr | Lambda] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, LexiconRef):
            found.add(current.name)
        stack.extend(children(current))
    return found


LIST_FUNCTIONS = ("any", "all", "count")


def lexicon_reads(node: Expr | Lambda) -> set[tuple[str, str]]:
    """(field, lexicon) pairs an expression tests: `mentions(F, lexicon.L)`, `F in lexicon.L`, also through
    a lambda bound over a list field (`any(F, i -> mentions(i, lexicon.L))` reads F against L).

    A field is whatever input name the tested text depends on (`mentions(lower(dish), ...)` reads dish)."""
    found: set[tuple[str, str]] = set()

    def fields_of(current: Expr | Lambda, bound: dict[str, set[str]]) -> set[str]:
        if isinstance(current, Name):
            return bound.get(current.name, {current.name})
        return {name for child in children(current) for name in fields_of(child, bound)}

    def walk(current: Expr | Lambda, bound: dict[str, set[str]]) -> None:
        if isinstance(current, Call) and current.function in LIST_FUNCTIONS and len(current.arguments) == 2:
            over, body = current.arguments
            if isinstance(body, Lambda):
                walk(over, bound)
                walk(body.body, bound | {body.parameter: fields_of(over, bound)})
                return
        tested: tuple[Expr | Lambda, Expr | Lambda] | None = None
        if isinstance(current, Call) and current.function == "mentions" and len(current.arguments) == 2:
            tested = (current.arguments[0], current.arguments[1])
        elif isinstance(current, Binary) and current.operator in ("in", "not in"):
            tested = (current.left, current.right)
        if tested is not None:
            found.update((field, lexicon) for field in fields_of(tested[0], bound)
                         for lexicon in lexicons_used(tested[1]))
        for child in children(current):
            walk(child, bound)

    walk(node, {})
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
