"""Stage 3d: what a set of rules can see of an input, as a small hashable key.

Rules mostly look at text through tests of one text at a time: `mentions(i,
lexicon.X)`, `matches(lower(dish), "...")`, `dish == "x"` (the *text tests*). When
a rule reads a text field only through such tests (a list of strings through
`any` / `all` / `count` with a lambda whose parameter it tests so), its value
depends on which tests each text passes, not on the text: one bit mask per text,
and for a list the set (or, under `count`, the sorted multiset) of its items'
masks. Masks repeat from input to input far more than texts do (a new dish name
usually mentions the lexicons another one did), so `RuleKey` lets the runtime
work the votes of all rules out once per distinct key.

Anything else a rule reads goes into the key as it is (a number field, a text
field compared with another field, a list indexed by position), which keeps the
key exact, only less shared. A key is never wrong, only sometimes unavailable:
on a value of an unexpected type (null, a number where text was declared) the
key function raises `TypeError` and the caller evaluates the rules directly.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import expr_nodes as n
from .expr_eval import build_evaluator
from .expr_types import BOOLEAN
from .functions import FUNCTIONS, lexicon_index

TEXT_FIELD_TYPES = ("string", "enum")
TEXT_LIST_TYPE = "list[string]"
_TEST_OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
KEY_TEXTS = 1 << 16  # texts whose masks a key remembers, per field, before starting afresh

Env = Mapping[str, Any]
KeyFunction = Callable[[Env], Hashable]


@dataclass
class _FieldUse:
    """How the rules read one input field."""

    lexicon_bits: int = 0  # bits of the lexicon index read by `mentions(x, lexicon.L)` on its texts
    tests: dict[str, tuple[str, n.Expr]] = field(default_factory=dict)  # sexpr -> (variable, other text test)
    raw: bool = False  # read somewhere other than through a text test: its value goes into the key
    counted: bool = False  # a list read by count/len: its masks' multiset matters, not only their set


class _Unsupported(Exception):
    """A rule reads a name that is not an input field (no key for this rule set)."""


def rule_key(rules: Sequence[n.Expr], field_types: Mapping[str, str],
             lexicons: Mapping[str, Sequence[str]]) -> KeyFunction | None:
    """The key function of a set of rules over inputs with these fields (name -> declared type), or None
    when the rules read something a key cannot stand for."""
    index = lexicon_index({name: tuple(words) for name, words in lexicons.items()})
    reader = _Reader(field_types, index.bits)
    try:
        for rule in rules:
            reader.read(rule, {})
    except _Unsupported:
        return None
    parts = [_part(name, field_types[name] == TEXT_LIST_TYPE, use, index, lexicons)
             for name, use in sorted(reader.uses.items())]
    return lambda env: tuple([part(env) for part in parts])


class _Reader:
    def __init__(self, field_types: Mapping[str, str], bits: Mapping[str, int]) -> None:
        self.field_types = field_types
        self.bits = bits
        self.uses: dict[str, _FieldUse] = {}

    def read(self, node: n.Expr | n.Lambda, bound: dict[str, str]) -> None:
        """Record how ``node`` reads the input (``bound``: lambda parameter -> the list field it ranges over)."""
        if self._text_test(node, bound):
            return
        if isinstance(node, n.Name):
            name = bound.get(node.name, node.name)
            if name not in self.field_types:
                raise _Unsupported(node.name)
            self.uses.setdefault(name, _FieldUse()).raw = True
            return
        if isinstance(node, n.Call) and node.function in n.LIST_FUNCTIONS + ("len",):
            over = node.arguments[0]
            if (isinstance(over, n.Name) and over.name not in bound
                    and self.field_types.get(over.name) == TEXT_LIST_TYPE):
                use = self.uses.setdefault(over.name, _FieldUse())
                body = node.arguments[1] if len(node.arguments) == 2 else None
                if body is None or node.function == "count":
                    use.counted = True
                if body is None:
                    return
                if isinstance(body, n.Lambda):
                    self.read(body.body, bound | {body.parameter: over.name})
                    return
        if isinstance(node, n.Lambda):
            raise _Unsupported(node.parameter)  # a lambda over something other than a list field
        for child in n.children(node):
            self.read(child, bound)

    def _text_test(self, node: n.Expr | n.Lambda, bound: dict[str, str]) -> bool:
        """Record ``node`` as a test of one text, if it is one: a boolean call or a comparison whose only
        free name is a text field or a parameter ranging over a list of strings."""
        is_test = ((isinstance(node, n.Call) and FUNCTIONS[node.function].returns == BOOLEAN)
                   or (isinstance(node, n.Binary) and node.operator in _TEST_OPERATORS))
        if not is_test:
            return False
        names = n.free_names(node)
        if len(names) != 1:
            return False
        (variable,) = names
        if variable in bound:
            owner = bound[variable]
        elif self.field_types.get(variable) in TEXT_FIELD_TYPES:
            owner = variable
        else:
            return False
        use = self.uses.setdefault(owner, _FieldUse())
        if (isinstance(node, n.Call) and node.function == "mentions" and isinstance(node.arguments[0], n.Name)
                and isinstance(node.arguments[1], n.LexiconRef)):
            use.lexicon_bits |= self.bits[node.arguments[1].name]
            return True
        use.tests.setdefault(n.to_sexpr(node), (variable, node))  # type: ignore[arg-type]
        return True


class _TextMasks(dict[str, int]):
    """text -> the bits of the tests it passes: its lexicon-index bits the rules read, then one bit per
    other test. Emptied when full, so memory stays bounded on any input."""

    def __init__(self, use: _FieldUse, index: Any, lexicons: Mapping[str, Sequence[str]]) -> None:
        super().__init__()
        self.index, self.lexicon_bits = index, use.lexicon_bits
        first = 1 << len(index.names)
        self.tests = [(first << k, variable, build_evaluator(test, _as_tuples(lexicons)))
                      for k, (variable, test) in enumerate(use.tests.values())]

    def __missing__(self, text: str) -> int:
        if type(text) is not str:
            raise TypeError(f"a text test needs a string, got {type(text).__name__}")
        mask = self.index[text] & self.lexicon_bits
        for bit, variable, test in self.tests:
            if test({variable: text}):
                mask |= bit
        if len(self) >= KEY_TEXTS:
            self.clear()
        self[text] = mask
        return mask


def _as_tuples(lexicons: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """The lexicons as the evaluator takes them (a tuple, such as a WordList, is kept as it is)."""
    return {name: words if isinstance(words, tuple) else tuple(words) for name, words in lexicons.items()}


def _part(name: str, is_list: bool, use: _FieldUse, index: Any,
          lexicons: Mapping[str, Sequence[str]]) -> Callable[[Env], Hashable]:
    """The part of the key that stands for one field."""
    if use.raw:
        return lambda env: _hashable(env[name])
    mask_of = _TextMasks(use, index, lexicons).__getitem__
    if not is_list:
        def text_part(env: Env) -> Hashable:
            value = env[name]
            return mask_of(value) if type(value) is str else _hashable(value)
        return text_part
    gather: Callable[[Any], Hashable] = (lambda masks: tuple(sorted(masks))) if use.counted else frozenset

    def list_part(env: Env) -> Hashable:
        value = env[name]
        return gather(map(mask_of, value)) if type(value) is list else _hashable(value)
    return list_part


def _hashable(value: Any) -> Hashable:
    """A value as it goes into a key (lists as tuples, so two equal lists are one key)."""
    if isinstance(value, list):
        return ("list", tuple(_hashable(v) for v in value))
    if isinstance(value, dict):
        raise TypeError("an object value has no key")
    return (type(value).__name__, value)


__all__ = ["KEY_TEXTS", "KeyFunction", "rule_key"]
