"""The fixed function registry of the expression language: signature, meaning and implementation.

This table is the whole standard library an expression can reach. Adding a
function means adding one `Function` here (the checker, the evaluator and the
language reference all read this table); there is no other way to call code
from a task file.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

if sys.version_info >= (3, 11):
    from re import _constants as _sre_constants
    from re import _parser as _sre_parser
else:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_constants
    import sre_parse as _sre_parser

from .expr_types import BOOLEAN, INTEGER, NUMBER, STRING, Type, list_of

MAX_MATCH_INPUT = 10_000
MAX_PATTERN_CHARS = 500

# Parameter kinds: what an argument must be.
SIZED, TEXT, NUM, LIST, TEXT_LIST, PREDICATE, PATTERN = (
    "a string or a list", "a string", "a number", "a list", "a list of strings",
    "a lambda (x -> ...) returning a boolean", "a regular-expression string literal")


@dataclass(frozen=True)
class Function:
    name: str
    parameters: tuple[str, ...]
    returns: Type
    implementation: Callable[..., Any]
    summary: str
    required: int = -1  # how many parameters are required; -1 means all

    @property
    def min_arguments(self) -> int:
        return len(self.parameters) if self.required < 0 else self.required


class UnsafePattern(ValueError):
    """A regular expression that is invalid or could take exponential time."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a `matches` pattern, rejecting ones that could backtrack catastrophically."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UnsafePattern(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
    try:
        parsed = _sre_parser.parse(pattern)
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UnsafePattern(f"invalid regular expression: {exc}") from None
    _reject_nested_repeats(parsed, inside_repeat=False)
    return compiled


_REPEATS = {_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT}
_POSSESSIVE = getattr(_sre_constants, "POSSESSIVE_REPEAT", None)


def _reject_nested_repeats(parsed: Any, inside_repeat: bool) -> None:
    for op, argument in parsed:
        if op in _REPEATS or op == _POSSESSIVE:
            low, high, body = argument
            unbounded = high == _sre_constants.MAXREPEAT or high > 100
            if inside_repeat and unbounded:
                raise UnsafePattern("nested repetition like (a+)+ can take exponential time")
            if unbounded and _has_alternation(body):
                raise UnsafePattern("repeated alternation like (a|ab)* can take exponential time")
            _reject_nested_repeats(body, inside_repeat or unbounded)
        elif op == _sre_constants.GROUPREF or op == _sre_constants.GROUPREF_EXISTS:
            raise UnsafePattern("back-references are not allowed")
        elif op == _sre_constants.SUBPATTERN:
            _reject_nested_repeats(argument[-1], inside_repeat)
        elif op == _sre_constants.BRANCH:
            for branch in argument[1]:
                _reject_nested_repeats(branch, inside_repeat)
        elif op in (_sre_constants.ASSERT, _sre_constants.ASSERT_NOT):
            _reject_nested_repeats(argument[1], inside_repeat)
        elif op == getattr(_sre_constants, "ATOMIC_GROUP", None):
            _reject_nested_repeats(argument, inside_repeat)


def _has_alternation(parsed: Any) -> bool:
    for op, argument in parsed:
        if op == _sre_constants.BRANCH:
            return True
        if op == _sre_constants.SUBPATTERN and _has_alternation(argument[-1]):
            return True
    return False


def _matches(text: str, pattern: re.Pattern[str]) -> bool:
    return pattern.search(text[:MAX_MATCH_INPUT]) is not None


@lru_cache(maxsize=256)
def _lexicon_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(t.lower()) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


class WordList(tuple[str, ...]):
    """A lexicon's words: a tuple that hashes once. `mentions` looks its pattern up by the words on every
    evaluation, and hashing a 5,000-word lexicon each time cost more than the regex search itself."""

    def __hash__(self) -> int:
        cached = self.__dict__.get("hash")
        if cached is None:
            cached = self.__dict__["hash"] = tuple.__hash__(self)
        return cached


def mentions(text: str, terms: Sequence[str]) -> bool:
    """`mentions` of the language: whether ``text`` holds any of ``terms`` as a whole word or phrase.

    The same few ingredient strings ("eggs", "butter", "salt") come back on most items and every rule
    that reads them asks about the same lexicons, so answers are memoised by (text, words): a rule set
    over a million items then costs a dictionary lookup for most of its mentions.
    """
    if not terms:
        return False
    return _mentions_of(text, terms if isinstance(terms, WordList) else tuple(terms))


@lru_cache(maxsize=1 << 16)
def _mentions_of(text: str, words: tuple[str, ...]) -> bool:
    return _lexicon_pattern(words).search(text[:MAX_MATCH_INPUT].lower()) is not None


MENTIONS_MEMO_SIZE = 1 << 16


class _MentionsMemo(dict[str, bool]):
    """text -> whether it mentions the words; a miss searches and stores (cleared when full).

    A dict subclass so that a hit is one C-level lookup (`memo[text]` through the bound `__getitem__`),
    no Python frame: a rule set over a million inputs asks this a hundred million times."""

    def __init__(self, search: Callable[[str], Any]) -> None:
        super().__init__()
        self.search = search

    def __missing__(self, text: str) -> bool:
        if not isinstance(text, str):
            raise TypeError(f"mentions() needs a string, got {type(text).__name__}")
        if len(self) >= MENTIONS_MEMO_SIZE:
            self.clear()
        found = self[text] = self.search(text[:MAX_MATCH_INPUT].lower()) is not None
        return found


def mentions_memo(words: Sequence[str]) -> Callable[[str], bool]:
    """`mentions(text, words)` for one fixed word list, memoised by text (bounded: cleared when full).

    Used where the list is known when the expression is built (`mentions(x, lexicon.NAME)`) and by the
    local model's lexicon features, so both read a lexicon exactly as a rule does."""
    if not words:
        return lambda text: False
    return _MentionsMemo(_lexicon_pattern(tuple(words)).search).__getitem__


def _count(items: Sequence[Any], predicate: Callable[[Any], bool] | None = None) -> int:
    if predicate is None:
        return len(items)
    return sum(map(predicate, items))  # the predicate returns a bool


_WORD = re.compile(r"[\w'-]+")


FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("len", (SIZED,), INTEGER, len, "Number of characters of a string or items of a list."),
    Function("count", (LIST, PREDICATE), INTEGER, _count,
             "Number of items of a list, or of the items for which the lambda holds.", required=1),
    Function("any", (LIST, PREDICATE), BOOLEAN, lambda xs, p: any(map(p, xs)),
             "True when the lambda holds for at least one item."),
    Function("all", (LIST, PREDICATE), BOOLEAN, lambda xs, p: all(map(p, xs)),
             "True when the lambda holds for every item (and for an empty list)."),
    Function("lower", (TEXT,), STRING, str.lower, "The string in lower case."),
    Function("upper", (TEXT,), STRING, str.upper, "The string in upper case."),
    Function("strip", (TEXT,), STRING, str.strip, "The string without leading and trailing whitespace."),
    Function("words", (TEXT,), list_of(STRING), lambda s: _WORD.findall(s.lower()),
             "The lower-cased words of a string."),
    Function("contains", (TEXT, TEXT), BOOLEAN, lambda s, sub: sub in s,
             "True when the second string occurs in the first (case-sensitive)."),
    Function("startswith", (TEXT, TEXT), BOOLEAN, lambda s, p: s.startswith(p),
             "True when the first string starts with the second."),
    Function("endswith", (TEXT, TEXT), BOOLEAN, lambda s, p: s.endswith(p),
             "True when the first string ends with the second."),
    Function("matches", (TEXT, PATTERN), BOOLEAN, _matches,
             "True when the regular expression (a string literal) matches anywhere in the string. "
             "Patterns that could backtrack exponentially are rejected at compile time."),
    Function("mentions", (TEXT, TEXT_LIST), BOOLEAN, mentions,
             "True when the string contains any entry of the list as a whole word or phrase, "
             "ignoring case: mentions(\"brown rice\", [\"rice\"]) holds, mentions(\"licorice\", [\"rice\"]) "
             "does not."),
    Function("min", (NUM, NUM), NUMBER, min, "The smaller of two numbers."),
    Function("max", (NUM, NUM), NUMBER, max, "The larger of two numbers."),
    Function("abs", (NUM,), NUMBER, abs, "The absolute value of a number."),
)}
