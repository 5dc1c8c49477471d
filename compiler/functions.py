"""The fixed function registry of the expression language: signature, meaning and implementation.

This table is the whole standard library an expression can reach. Adding a
function means adding one `Function` here (the checker, the evaluator and the
language reference all read this table); there is no other way to call code
from a task file.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, reduce
from itertools import repeat
from operator import or_
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

    This is the definition; `mentions(x, lexicon.NAME)` in an expression is answered by the task's
    `LexiconIndex`, which a test holds to this function."""
    if not terms:
        return False
    words = terms if isinstance(terms, WordList) else tuple(terms)
    return _lexicon_pattern(words).search(text[:MAX_MATCH_INPUT].lower()) is not None


LEXICON_INDEX_SIZE = 1 << 16  # texts remembered by a lexicon index before it starts afresh
_RUN = re.compile(r"[\w-]+")


class LexiconIndex(dict[str, int]):
    """text -> bit mask of the lexicons it mentions (bit k: the k-th lexicon), as `mentions` decides.

    Every `mentions(x, lexicon.NAME)` of a task's rules, and the local model's lexicon features, read
    one index: a text is looked at once, for all lexicons, however many rules ask about it, and a text
    seen before is one C-level dict lookup (`index[text]`), no Python frame.

    Looking at a text does not run one regular expression per lexicon. A lexicon entry mentioned with
    `mentions`' boundaries ((?<![\\w-]) before, (?![\\w-]) after) starts where a run of word characters
    and hyphens starts and ends where one ends; so the text's runs are found once, and every stretch of
    up to K runs (K: the most runs in one entry) is looked up in a table of entries -> lexicon bits.
    Entries that begin or end with another character ("(optional)") are searched with the pattern as
    before. Both ways give the answers of `mentions`; a test holds them to it on random texts.
    """

    def __init__(self, lexicons: Mapping[str, Sequence[str]]) -> None:
        super().__init__()
        self.names = tuple(lexicons)
        self.bits = {name: 1 << k for k, name in enumerate(self.names)}
        self._words: dict[str, int] = {}  # one-run entries -> lexicon bits
        self._phrases: dict[str, int] = {}  # entries of several runs -> lexicon bits
        self._heads: dict[str, int] = {}  # first run of a phrase -> the most runs a phrase starting so has
        self._searched: list[tuple[int, Callable[[str], Any]]] = []
        for name, words in lexicons.items():
            bit = self.bits[name]
            odd = {w.lower() for w in words if not (_RUN.fullmatch(w[:1]) and _RUN.fullmatch(w[-1:]))}
            if odd:
                self._searched.append((bit, _lexicon_pattern(tuple(sorted(odd))).search))
            for word in words:
                entry = word.lower()
                if not entry or entry in odd:
                    continue
                runs = _RUN.findall(entry)
                if len(runs) == 1:
                    self._words[entry] = self._words.get(entry, 0) | bit
                else:
                    self._phrases[entry] = self._phrases.get(entry, 0) | bit
                    self._heads[runs[0]] = max(self._heads.get(runs[0], 0), len(runs))

    def holds(self, name: str) -> Callable[[str], bool]:
        """`mentions(text, lexicon.NAME)` as a function of the text."""
        bit, lookup = self.bits[name], self.__getitem__
        return lambda text: bool(lookup(text) & bit)

    def __missing__(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"mentions() needs a string, got {type(text).__name__}")
        lowered = text[:MAX_MATCH_INPUT].lower()
        tokens = _RUN.findall(lowered)
        heads = self._heads
        mask = reduce(or_, map(self._words.get, tokens, repeat(0, len(tokens))), 0)
        if heads and not heads.keys().isdisjoint(tokens):
            spans = [(m.start(), m.end()) for m in _RUN.finditer(lowered)]
            phrases = self._phrases
            for first, token in enumerate(tokens):
                longest = heads.get(token)
                if longest:
                    start = spans[first][0]
                    for last in range(first + 1, min(first + longest, len(spans))):
                        mask |= phrases.get(lowered[start:spans[last][1]], 0)
        for bit, search in self._searched:
            if not mask & bit and search(lowered):
                mask |= bit
        if len(self) >= LEXICON_INDEX_SIZE:
            self.clear()
        self[text] = mask
        return mask


@lru_cache(maxsize=64)
def _index_of(lexicons: tuple[tuple[str, tuple[str, ...]], ...]) -> LexiconIndex:
    return LexiconIndex(dict(lexicons))


def lexicon_index(lexicons: Mapping[str, Sequence[str]]) -> LexiconIndex:
    """The one index of a set of lexicons (shared by every expression and feature built over them)."""
    return _index_of(tuple((name, tuple(words)) for name, words in lexicons.items()))


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
