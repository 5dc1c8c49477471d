"""The types of the expression language and the scopes (rule, constraint, criterion) they live in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import expr_nodes as n


@dataclass(frozen=True)
class Type:
    """A value type. ``element`` is set for lists; ``values`` for enums and class labels."""

    kind: str  # string | integer | number | boolean | list | enum | label | metric_map | any
    element: Type | None = None
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list[{self.element}]"
        if self.kind == "metric_map":
            return "per-class metric"
        return self.kind

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("integer", "number", "any")

    @property
    def is_stringy(self) -> bool:
        return self.kind in ("string", "enum", "label", "any")

    @property
    def is_list(self) -> bool:
        return self.kind in ("list", "any")


STRING = Type("string")
INTEGER = Type("integer")
NUMBER = Type("number")
BOOLEAN = Type("boolean")
ANY = Type("any")  # the type of an expression that already failed to check; silences follow-up errors


def list_of(element: Type) -> Type:
    return Type("list", element=element)


def field_type(declared: str, values: tuple[str, ...] = ()) -> Type:
    """The expression type of an input field declared with ``type: declared``."""
    if declared == "list[string]":
        return list_of(STRING)
    if declared == "enum":
        return Type("enum", values=values)
    return {"string": STRING, "integer": INTEGER, "number": NUMBER, "boolean": BOOLEAN}[declared]


def compatible(expected: Type, actual: Type) -> bool:
    if ANY in (expected, actual):
        return True
    if expected.kind == "number" and actual.kind == "integer":
        return True
    if expected.is_stringy and actual.is_stringy and expected.kind == "string":
        return True
    if expected.kind == "list" and actual.kind == "list":
        assert expected.element is not None and actual.element is not None
        return compatible(expected.element, actual.element)
    return expected.kind == actual.kind


@dataclass(frozen=True)
class Scope:
    """What names an expression may use, by the context it appears in."""

    context: str
    fields: dict[str, Type] = field(default_factory=dict)
    lexicons: frozenset[str] = frozenset()
    classes: tuple[str, ...] = ()
    metrics: dict[str, Type] = field(default_factory=dict)
    allows_label: bool = False
    hidden_fields: frozenset[str] = frozenset()  # input fields that exist but are not visible here

    def label_type(self) -> Type:
        return Type("label", values=self.classes)


OVERALL_METRICS = ("accuracy", "macro_f1", "coverage")  # numbers
PER_CLASS_METRICS = ("precision", "recall", "f1")  # indexed by class: recall["keto"]
METRIC_NAMES = OVERALL_METRICS + PER_CLASS_METRICS


def metric_types(classes: tuple[str, ...]) -> dict[str, Type]:
    """The pass criterion's names: overall metrics are numbers, per-class ones are indexed by class."""
    per_class = Type("metric_map", element=NUMBER, values=classes)
    return {name: (NUMBER if name in OVERALL_METRICS else per_class) for name in METRIC_NAMES}


def metric_reads(node: Any) -> list[tuple[str] | tuple[str, object]]:
    """The metrics a criterion reads, in the order it reads them: ``("accuracy",)`` for `accuracy`,
    ``("recall", "keto")`` for `recall["keto"]`."""
    reads: list[tuple[str] | tuple[str, object]] = []
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if isinstance(current, n.Index) and isinstance(current.target, n.Name) and isinstance(current.key, n.Literal) \
                and current.target.name in PER_CLASS_METRICS:
            reads.append((current.target.name, current.key.value))
            continue
        if isinstance(current, n.Name) and current.name in OVERALL_METRICS:
            reads.append((current.name,))
        stack.extend(reversed(n.children(current)))
    return reads
