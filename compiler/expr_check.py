"""Stage 3b: type-check an expression against the scope of the context it appears in.

A rule sees the input fields and lexicons; a constraint also sees ``label``; a
pass criterion sees only metrics. Names that exist in another context get a
diagnostic that says so, names that exist nowhere get a "did you mean". The
checker returns the expression's type and reports every problem it finds
(a failed sub-expression has type ANY so that one mistake is reported once).
"""

from __future__ import annotations

from collections.abc import Callable

from . import expr_nodes as n
from .diagnostics import DiagnosticBag, Span, did_you_mean
from .expr_types import ANY, BOOLEAN, INTEGER, METRIC_NAMES, NUMBER, STRING, Scope, Type, compatible, list_of
from .functions import (
    FUNCTIONS,
    LIST,
    NUM,
    PATTERN,
    PREDICATE,
    SIZED,
    TEXT,
    TEXT_LIST,
    UnsafePattern,
    compile_pattern,
)

Locator = Callable[[int, int], Span]

class ExpressionChecker:
    def __init__(self, scope: Scope, locate: Locator, bag: DiagnosticBag) -> None:
        self.scope = scope
        self.locate = locate
        self.bag = bag
        self.locals: dict[str, Type] = {}

    def check_boolean(self, node: n.Expr, what: str) -> Type:
        """Check ``node`` and require it to be a boolean (rules, constraints and criteria all are)."""
        found = self.check(node)
        if found is not ANY and found != BOOLEAN:
            self._error(node, "E025", f"{what} must be a boolean expression, but this is {found}",
                        "compare it with something, e.g. '>= 1'")
        return found

    def check(self, node: n.Expr | n.Lambda) -> Type:
        method = getattr(self, "_check_" + type(node).__name__)
        result: Type = method(node)
        return result

    # -- leaves ---------------------------------------------------------------------------
    def _check_Literal(self, node: n.Literal) -> Type:
        if isinstance(node.value, bool):
            return BOOLEAN
        if isinstance(node.value, int):
            return INTEGER
        if isinstance(node.value, float):
            return NUMBER
        return STRING

    def _check_Name(self, node: n.Name) -> Type:
        name = node.name
        if name in self.locals:
            return self.locals[name]
        if name in self.scope.fields:
            return self.scope.fields[name]
        if name == "label" and self.scope.allows_label:
            return self.scope.label_type()
        if name in self.scope.metrics:
            return self.scope.metrics[name]
        elsewhere = self._context_elsewhere(name)
        if elsewhere:
            self._error(node, "E027", f"'{name}' cannot be used in a {self.scope.context}", elsewhere)
            return ANY
        visible = list(self.locals) + list(self.scope.fields) + list(self.scope.metrics)
        if self.scope.allows_label:
            visible.append("label")
        hint = did_you_mean(name, visible)
        if name in self.scope.classes:
            hint = f"class names are strings: write \"{name}\""
        elif name in self.scope.lexicons:
            hint = f"lexicons are reached as lexicon.{name}"
        elif name in FUNCTIONS:
            hint = f"'{name}' is a function: call it as {name}(...)"
        what = "metric" if self.scope.context == "criterion" else "input field"
        self._error(node, "E021", f"unknown {what} '{name}'", hint or self._available_names())
        return ANY

    def _available_names(self) -> str:
        names = sorted(self.scope.fields) + sorted(self.scope.metrics)
        return "available here: " + ", ".join(names) if names else "no names are available here"

    def _context_elsewhere(self, name: str) -> str | None:
        if name == "label" and not self.scope.allows_label:
            if self.scope.context == "rule":
                return "a rule decides the label, so it cannot read it; use 'label' in constraints"
            return "'label' is available in constraints only"
        if name in METRIC_NAMES and not self.scope.metrics:
            return "metrics are available in the eval pass criterion only"
        if name in self.scope.hidden_fields:
            return "input fields are available in rules and constraints, not in the pass criterion"
        return None

    def _check_LexiconRef(self, node: n.LexiconRef) -> Type:
        if self.scope.context == "criterion":
            self._error(node, "E027", "lexicons cannot be used in the pass criterion")
            return ANY
        if node.name not in self.scope.lexicons:
            hint = did_you_mean(node.name, self.scope.lexicons)
            known = ", ".join(sorted(self.scope.lexicons)) or "none are declared"
            self._error(node, "E022", f"unknown lexicon '{node.name}'", hint or f"lexicons: {known}")
            return ANY
        return list_of(STRING)

    def _check_ListLiteral(self, node: n.ListLiteral) -> Type:
        element: Type | None = None
        for item in node.items:
            found = self.check(item)
            if element is None or element is ANY or (_holds_any(element) and not _holds_any(found)
                                                     and compatible(found, element)):
                element = found  # `[[], [dish]]` is a list of lists of strings, not of lists of anything
            elif found is not ANY and not (compatible(element, found) or compatible(found, element)):
                self._error(item, "E025", f"list items must have one type: {element} and {found}")
        if element is not None and element.kind in ("enum", "label"):
            element = STRING
        return list_of(element or ANY)

    def _check_Lambda(self, node: n.Lambda) -> Type:  # only reached for misplaced lambdas
        self._error(node, "E025", "a lambda is only allowed as the last argument of any, all or count")
        return ANY

    # -- operators ------------------------------------------------------------------------
    def _check_Unary(self, node: n.Unary) -> Type:
        operand = self.check(node.operand)
        if node.operator == "not":
            self._expect(node.operand, operand, BOOLEAN, "the operand of 'not'")
            return BOOLEAN
        if not operand.is_numeric:
            self._error(node.operand, "E025", f"'-' needs a number, not {operand}")
            return ANY
        return operand

    def _check_Binary(self, node: n.Binary) -> Type:
        op = node.operator
        left, right = self.check(node.left), self.check(node.right)
        if op in ("and", "or", "implies"):
            self._expect(node.left, left, BOOLEAN, f"the left side of '{op}'")
            self._expect(node.right, right, BOOLEAN, f"the right side of '{op}'")
            return BOOLEAN
        if ANY in (left, right) and op in ("+", "-", "*", "/", "%"):
            return ANY
        if op == "+" and left.is_stringy and right.is_stringy:
            return STRING  # string concatenation
        if op in ("+", "-", "*", "/", "%"):
            for side, found in ((node.left, left), (node.right, right)):
                if not found.is_numeric:
                    self._error(side, "E025", f"'{op}' needs numbers, not {found}")
                    return ANY
            if left.kind == right.kind == "integer" and op != "/":
                return INTEGER
            return NUMBER
        if op in ("in", "not in"):
            return self._check_membership(node, left, right)
        return self._check_comparison(node, left, right)

    def _check_membership(self, node: n.Binary, left: Type, right: Type) -> Type:
        if right is ANY or left is ANY:
            return BOOLEAN
        if right.kind == "list":
            assert right.element is not None
            if not (compatible(right.element, left) or compatible(left, right.element)):
                self._error(node, "E025", f"'{node.operator}' compares {left} with a {right}")
            elif left.kind in ("label", "enum") and isinstance(node.right, n.ListLiteral):
                for item in node.right.items:
                    self._check_member_literal(left, item)
            return BOOLEAN
        if right.is_stringy and left.is_stringy:
            return BOOLEAN  # substring test
        self._error(node.right, "E025", f"the right side of '{node.operator}' must be a list or a string, not {right}")
        return BOOLEAN

    def _check_comparison(self, node: n.Binary, left: Type, right: Type) -> Type:
        op = node.operator
        if left is ANY or right is ANY:
            return BOOLEAN
        if op in ("<", "<=", ">", ">="):
            for side, found in ((node.left, left), (node.right, right)):
                if not found.is_numeric:
                    self._error(side, "E025", f"'{op}' compares numbers, not {found}",
                                "use len(...) or count(...) to compare sizes")
                    return BOOLEAN
            return BOOLEAN
        if not (compatible(left, right) or compatible(right, left)):
            self._error(node, "E025", f"'{op}' compares {left} with {right}; they can never be equal")
            return BOOLEAN
        self._check_member_literal(left, node.right)
        self._check_member_literal(right, node.left)
        return BOOLEAN

    def _check_member_literal(self, of: Type, node: n.Expr) -> None:
        """A string literal compared with a label or an enum must be one of its values."""
        if of.kind not in ("label", "enum") or not isinstance(node, n.Literal) or not isinstance(node.value, str):
            return
        if node.value in of.values:
            return
        hint = did_you_mean(node.value, of.values)
        if of.kind == "label":
            self._error(node, "E024", f"unknown class '{node.value}'", hint or "classes: " + ", ".join(of.values))
        else:
            self._error(node, "E029", f"'{node.value}' is not a value of this enum",
                        hint or "values: " + ", ".join(of.values))

    def _check_Index(self, node: n.Index) -> Type:
        target = self.check(node.target)
        key = self.check(node.key)
        if target is ANY:
            return ANY
        if target.kind == "metric_map":
            if not key.is_stringy:
                self._error(node.key, "E025", f"a per-class metric is indexed by a class name, not {key}")
            elif isinstance(node.key, n.Literal):
                self._check_member_literal(Type("label", values=target.values), node.key)
            return target.element or NUMBER
        if target.kind == "list":
            if key.kind != "integer" and key is not ANY:
                self._error(node.key, "E025", f"a list is indexed by an integer, not {key}")
            return target.element or ANY
        self._error(node.target, "E025", f"{target} cannot be indexed")
        return ANY

    # -- calls ----------------------------------------------------------------------------
    def _check_Call(self, node: n.Call) -> Type:
        function = FUNCTIONS.get(node.function)
        if function is None:
            hint = did_you_mean(node.function, FUNCTIONS)
            self.bag.error(self.locate(node.start, node.name_end), "E023", f"unknown function '{node.function}'",
                           hint or "functions: " + ", ".join(sorted(FUNCTIONS)))
            for argument in node.arguments:
                if not isinstance(argument, n.Lambda):
                    self.check(argument)
            return ANY
        count = len(node.arguments)
        if not function.min_arguments <= count <= len(function.parameters):
            expected = (str(len(function.parameters)) if function.min_arguments == len(function.parameters)
                        else f"{function.min_arguments} or {len(function.parameters)}")
            self.bag.error(self.locate(node.start, node.end), "E026",
                           f"{function.name}() takes {expected} argument{'s' if expected != '1' else ''}, "
                           f"got {count}", function.summary)
            return function.returns
        first: Type = ANY
        for position, (argument, kind) in enumerate(zip(node.arguments, function.parameters, strict=False)):
            found = self._check_argument(function.name, argument, kind, first)
            if position == 0:
                first = found
        return function.returns

    def _check_argument(self, function: str, argument: n.Expr | n.Lambda, kind: str, first: Type) -> Type:
        if kind == PREDICATE:
            if not isinstance(argument, n.Lambda):
                self._error(argument, "E025", f"the last argument of {function}() must be {kind}",
                            "e.g. any(ingredients, i -> mentions(i, lexicon.high_carb))")
                return ANY
            element = first.element if first.kind == "list" and first.element else ANY
            return self._check_lambda(argument, element)
        if isinstance(argument, n.Lambda):
            self._error(argument, "E025", f"{function}() does not take a lambda here")
            return ANY
        found = self.check(argument)
        if kind == PATTERN:
            self._check_pattern(function, argument)
            return found
        accepted = {
            SIZED: lambda t: t.is_stringy or t.is_list,
            TEXT: lambda t: t.is_stringy,
            NUM: lambda t: t.is_numeric,
            LIST: lambda t: t.is_list,
            TEXT_LIST: lambda t: t is ANY or (t.kind == "list" and t.element is not None and t.element.is_stringy),
        }[kind]
        if found is not ANY and not accepted(found):
            self._error(argument, "E025", f"{function}() needs {kind} here, not {found}")
        return found

    def _check_lambda(self, node: n.Lambda, element: Type) -> Type:
        if node.parameter in self.scope.fields or node.parameter == "label":
            self._error(node, "E025", f"lambda parameter '{node.parameter}' hides a name of the same name",
                        "pick another parameter name, e.g. 'x'")
        saved = dict(self.locals)
        self.locals[node.parameter] = element
        try:
            body = self.check(node.body)
        finally:
            self.locals = saved
        self._expect(node.body, body, BOOLEAN, "the body of the lambda")
        return BOOLEAN

    def _check_pattern(self, function: str, argument: n.Expr) -> None:
        if not isinstance(argument, n.Literal) or not isinstance(argument.value, str):
            self._error(argument, "E028", f"the pattern of {function}() must be a string literal",
                        "patterns are checked when the task is compiled")
            return
        try:
            compiled = compile_pattern(argument.value)
        except UnsafePattern as exc:  # invalid, or beyond what runs in linear time (back-references, ...)
            self._error(argument, "E028", str(exc), exc.hint)
            return
        if compiled.backtracking_risk is not None:  # harmless on RE2, but the language reference refuses it
            self._error(argument, "E028", compiled.backtracking_risk)

    # -- helpers --------------------------------------------------------------------------
    def _expect(self, node: n.Expr, found: Type, expected: Type, what: str) -> None:
        if found is not ANY and not compatible(expected, found):
            self._error(node, "E025", f"{what} must be {expected}, not {found}")

    def _error(self, node: n.Expr | n.Lambda, code: str, message: str, hint: str | None = None) -> None:
        self.bag.error(self.locate(node.start, node.end), code, message, hint)


def _holds_any(found: Type) -> bool:
    """Whether a type is unknown somewhere inside (`any`, or a list of it): what an empty list literal has."""
    while found.kind == "list" and found.element is not None:
        found = found.element
    return found is ANY
