"""The fixed function registry of the expression language: signature, meaning and implementation.

This table is the whole standard library an expression can reach. Adding a
function means adding one `Function` here (the checker, the evaluator and the
language reference all read this table); there is no other way to call code
from a task file.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache, reduce
from itertools import repeat
from operator import or_
from typing import Any, Literal

import re2

if sys.version_info >= (3, 11):
    from re import _constants as _sre_constants
    from re import _parser as _sre_parser
else:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_constants
    import sre_parse as _sre_parser

from . import user_cache
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
    """A `matches` pattern that is invalid, needs backtracking, or is too large to match quickly."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# -- `matches`: regular expressions in linear time -------------------------------------------------------
# Task files come from untrusted pull requests and `taskc check` runs their rules, so no pattern may take
# more than linear time. `matches` runs on RE2, which does not backtrack: its time is linear in the text
# whatever the pattern (times a factor that grows with the compiled pattern, whose size is capped). The
# language keeps Python `re`'s syntax and meaning: a pattern is parsed by `re`'s own parser, and its parse
# tree is written out in RE2's syntax with every character class spelled as the code points Python gives
# it (RE2's `\w`, `\d`, `\s` and `\b` are ASCII-only, its `$` is not Python's, and its `(?i)` folds case
# its own way).
#
# Each pattern becomes two RE2 programs. The *plain* one answers ASCII texts: there the classes shrink to
# their ASCII members and RE2's own assertions mean what Python's do (but for `$`, which in Python also
# holds before a last newline: an ASCII text with a newline goes to the other program). The *framed* one
# answers the other texts, rewritten so that each character c becomes three, "L c R". The frames are ASCII
# characters that say what Python's assertions and classes ask of c: L its kind (word: "a", digit: "0",
# space: " ", other: "-"; a newline that ends a line for `$`: "\n"), R whether c is a word character or a
# newline. Between two characters RE2's `\b`, `(?m:^)` and `(?m:$)` see two frames and answer as Python's
# `\b`, `^` and `$` do there; and a class such as `\w` is read off the frame instead of being spelled out
# as the 734 ranges of Unicode's word characters, which keeps programs small and matching fast.
# What RE2 cannot do at all (back-references, look-around) is refused at compile time with E028.

Ranges = tuple[tuple[int, int], ...]  # a set of code points: sorted, disjoint, inclusive ranges

_LAST_CODE_POINT = sys.maxunicode
_ASCII_RANGE: Ranges = ((0, 0x7F),)
_NOTHING = r"[^\x00-\x{10ffff}]"
# RE2 instructions of a compiled pattern. A match takes time linear in the text, but the factor grows with
# the program when RE2's DFA gives way to its NFA (crafted patterns and texts): at this cap a crafted
# 10,000-character text costs up to about half a second; the examples' patterns need under 1,000.
_MAX_PROGRAM = 5_000
# Bytes one RE2 program may hold, its DFA's cache included (RE2's default is 8 MiB): a task file can hold
# many patterns. Past it RE2 runs its NFA, slower but within the bound above.
_MAX_MEMORY = 2 << 20
_MAX_REPEAT = _sre_constants.MAXREPEAT
_IGNORECASE, _ASCII = _sre_constants.SRE_FLAG_IGNORECASE, _sre_constants.SRE_FLAG_ASCII
_MULTILINE, _DOTALL = _sre_constants.SRE_FLAG_MULTILINE, _sre_constants.SRE_FLAG_DOTALL
_B_MATCHES_EMPTY = re.search(r"\B", "") is not None  # False up to Python 3.13: `\B` never holds in ""
_CATEGORIES = {
    _sre_constants.CATEGORY_DIGIT: r"\d", _sre_constants.CATEGORY_NOT_DIGIT: r"\D",
    _sre_constants.CATEGORY_SPACE: r"\s", _sre_constants.CATEGORY_NOT_SPACE: r"\S",
    _sre_constants.CATEGORY_WORD: r"\w", _sre_constants.CATEGORY_NOT_WORD: r"\W",
}
# The left frame of each kind of character, by (word, digit, space): ASCII word characters for word
# characters, so that RE2's `\b` between frames is Python's. Unicode has only the first four kinds.
_KIND_FRAMES = {
    (True, False, False): "a", (True, True, False): "0", (False, False, True): " ", (False, False, False): "-",
    (True, False, True): "b", (True, True, True): "1", (False, True, True): ",", (False, True, False): ".",
}
_WHY = "matches() runs without backtracking, in time linear in the text,"
_INSTEAD = "combine several matches() calls with and / or / not instead"
_LOOK_AROUND = "and it cannot look ahead or behind"
_UNSUPPORTED: dict[tuple[Any, int | None], tuple[str, str, str]] = {
    # (opcode, direction of a look-around): (what it is, how it starts in the source, why RE2 cannot run it)
    (_sre_constants.GROUPREF, None): ("back-reference", "backref", "and a back-reference needs backtracking"),
    (_sre_constants.GROUPREF_EXISTS, None): ("conditional group (?(...)", "(?(",
                                             "and a conditional group needs backtracking"),
    (_sre_constants.ASSERT, 1): ("look-ahead (?=...)", "(?=", _LOOK_AROUND),
    (_sre_constants.ASSERT, -1): ("look-behind (?<=...)", "(?<=", _LOOK_AROUND),
    (_sre_constants.ASSERT_NOT, 1): ("negative look-ahead (?!...)", "(?!", _LOOK_AROUND),
    (_sre_constants.ASSERT_NOT, -1): ("negative look-behind (?<!...)", "(?<!", _LOOK_AROUND),
}
_ATOMIC, _POSSESSIVE = (getattr(_sre_constants, name, None) for name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT"))
if _ATOMIC is not None:  # Python 3.11+; a syntax error before
    _UNSUPPORTED[_ATOMIC, None] = ("atomic group (?>...)", "(?>", "and an atomic group controls backtracking")
    _UNSUPPORTED[_POSSESSIVE, None] = ("possessive repetition", "possessive",
                                       "and a possessive repetition controls backtracking")


class LinearPattern:
    """A compiled `matches` pattern: Python `re`'s meaning, run by RE2 in time linear in the text."""

    __slots__ = ("pattern", "backtracking_risk", "_plain", "_framed", "_frame", "_newline_needs_frames",
                 "_on_empty", "_plain_match")

    def __init__(self, pattern: str, backtracking_risk: str | None, plain: Any, framed: Any,
                 frame: Callable[[str], str], newline_needs_frames: bool, on_empty: bool) -> None:
        self.pattern, self.backtracking_risk = pattern, backtracking_risk
        self._plain, self._framed, self._frame = plain, framed, frame
        self._newline_needs_frames, self._on_empty = newline_needs_frames, on_empty
        self._plain_match = _engine_match(plain)

    def search(self, text: str) -> Literal[True] | None:
        """Whether the pattern occurs anywhere in ``text``, answered as `re.Pattern.search` is (None when it
        does not) but without a match object: `matches` only asks whether there is one."""
        if not text:
            return True if self._on_empty else None
        if text.isascii() and not (self._newline_needs_frames and "\n" in text):
            encoded = text.encode("ascii")
            if self._plain_match is not None:
                return True if self._plain_match(_UNANCHORED, encoded, 0, len(encoded))[0][0] >= 0 else None
            found = self._plain.search(encoded)
        else:
            found = self._framed.search(self._frame(text).encode("utf-8", "surrogatepass"))
        return None if found is None else True

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"


_UNANCHORED = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
_UNANCHORED = getattr(_UNANCHORED, "UNANCHORED", None)


def _engine_match(compiled: Any) -> Callable[[Any, bytes, int, int], Any] | None:
    """The engine's own Match of a compiled pattern, when this google-re2 exposes it: on bytes it answers
    what `search` answers (the first span is (-1, -1) when nothing matches) without the wrapper's Python
    work per call (offset decoding, a generator), which cost more than the search itself. None: use `search`."""
    engine = getattr(compiled, "_regexp", None)
    match = getattr(engine, "Match", None)
    return match if _UNANCHORED is not None and callable(match) else None


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> LinearPattern:
    """Compile a `matches` pattern (Python `re` syntax) for RE2, refusing what cannot run in linear time."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UnsafePattern(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
    try:
        parsed = _sre_parser.parse(pattern)
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UnsafePattern(f"invalid regular expression: {exc}") from None
    try:
        return _Translation(pattern, parsed).compile()
    except RecursionError:
        raise UnsafePattern("pattern nests too deeply") from None


class _Translation:
    """One pattern's parse tree written out in RE2's syntax: for plain (ASCII) texts, for framed texts, and
    for the empty text (where RE2's `\\B` holds and Python's does not)."""

    def __init__(self, pattern: str, parsed: Any) -> None:
        self.pattern, self.parsed, self.flags = pattern, parsed, parsed.state.flags
        self.ascii_only = bool(self.flags & _ASCII)
        self.ends: set[bool] = set()  # for each `$`: whether it is multi-line
        self._survey(parsed, self.flags)
        if len(self.ends) > 1:
            raise UnsafePattern("$ both with and without the MULTILINE flag is not supported",
                                "use one flag for the whole pattern")
        self.framed = self.for_empty = False

    def compile(self) -> LinearPattern:
        plain = self._re2(self._sequence(self.parsed, self.flags))
        on_empty = plain.search(b"") is not None
        if not _B_MATCHES_EMPTY and _has_at(self.parsed, _sre_constants.AT_NON_BOUNDARY):
            self.for_empty = True
            on_empty = self._re2(self._sequence(self.parsed, self.flags)).search(b"") is not None
            self.for_empty = False
        self.framed = True
        # A framed match starts at a character's left frame: skip whole characters from the start.
        framed = self._re2(r"\A(?s:.{3})*(?:" + self._sequence(self.parsed, self.flags) + ")")
        every_newline_ends = True in self.ends
        return LinearPattern(self.pattern, _backtracking_risk(self.parsed), plain, framed,
                             _framer(self.ascii_only, every_newline_ends), False in self.ends, on_empty)

    def _re2(self, translated: str) -> Any:
        options = re2.Options()
        options.log_errors = False
        options.never_capture = True
        options.max_mem = _MAX_MEMORY
        try:
            regexp = re2.compile(translated.encode("utf-8", "surrogatepass"), options)
        except re2.error as exc:
            raise _engine_refusal(exc) from None
        if regexp.programsize > _MAX_PROGRAM:
            raise UnsafePattern(f"pattern is too large: {_WHY} and that time grows with the compiled pattern, "
                                f"here {regexp.programsize:,} instructions (at most {_MAX_PROGRAM:,})",
                                "repeat less, e.g. {1,20} rather than {1,200}")
        return regexp

    def _survey(self, parsed: Any, flags: int) -> None:
        for op, argument in parsed:
            direction = argument[0] if op in (_sre_constants.ASSERT, _sre_constants.ASSERT_NOT) else None
            if (op, direction) in _UNSUPPORTED:
                raise self._unsupported(op, direction)
            if op == _sre_constants.AT and argument == _sre_constants.AT_END:
                self.ends.add(bool(flags & _MULTILINE))
            if op == _sre_constants.SUBPATTERN and argument[1] & _ASCII and not flags & _ASCII:
                # Python's `re` itself answers such a group's `\w` and `\d` by either flag, depending on where
                # the group stands (CPython's search optimiser reads the pattern's flags there).
                raise UnsafePattern("a local ASCII flag (?a:...) is not supported",
                                    "write (?a) at the start of the pattern to make all of it ASCII-only")
            for inner, inner_flags in _children(op, argument, flags):
                self._survey(inner, inner_flags)

    def _unsupported(self, op: Any, direction: int | None) -> UnsafePattern:
        what, start, why = _UNSUPPORTED[op, direction]
        position = _position_of(self.pattern, start, bool(self.flags & _sre_constants.SRE_FLAG_VERBOSE))
        if position is not None and start == "backref":  # say which: \1, \12 or (?P=name)
            source = self.pattern[position:]
            what += " " + (source[:source.find(")") + 1] if source.startswith("(") else
                           source[:3] if source[2:3].isdigit() else source[:2])
        where = "" if position is None else f" at position {position}"
        return UnsafePattern(f"{what}{where} is not supported: {_WHY} {why}", _INSTEAD)

    def _sequence(self, parsed: Any, flags: int) -> str:
        return "".join(self._item(op, argument, flags) for op, argument in parsed)

    def _item(self, op: Any, argument: Any, flags: int) -> str:
        if op in (_sre_constants.LITERAL, _sre_constants.NOT_LITERAL, _sre_constants.ANY, _sre_constants.IN):
            points = _character_set(op, _hashable(argument), flags & (_IGNORECASE | _ASCII | _DOTALL))
            return _framed_class(points, self.ascii_only) if self.framed else _plain_class(points)
        if op == _sre_constants.BRANCH:
            return "(?:" + "|".join(self._sequence(branch, flags) for branch in argument[1]) + ")"
        if op == _sre_constants.SUBPATTERN:
            _group, add, remove, body = argument
            return "(?:" + self._sequence(body, (flags | add) & ~remove) + ")"
        if op in (_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT):  # greedy or lazy: the same yes or no
            low, high, body = argument
            count = f"{{{low},}}" if high == _MAX_REPEAT else f"{{{low}}}" if low == high else f"{{{low},{high}}}"
            return "(?:" + self._sequence(body, flags) + ")" + count
        if op == _sre_constants.AT:
            return self._assertion(argument, flags)
        raise UnsafePattern(f"{op} is not supported by matches()")  # pragma: no cover - _survey saw them all

    def _assertion(self, at: Any, flags: int) -> str:
        multiline = bool(flags & _MULTILINE)
        if at == _sre_constants.AT_BEGINNING:
            return "(?m:^)" if multiline else r"\A"
        if at == _sre_constants.AT_BEGINNING_STRING:
            return r"\A"
        if at == _sre_constants.AT_END_STRING:
            return r"\z"
        if at == _sre_constants.AT_END:
            # Python's `$` holds at the end and before a last newline. Plain texts with this `$` have none;
            # in a framed text the last newline (or, multi-line, every newline) has "\n" as its left frame.
            return "(?m:$)" if multiline or self.framed else r"\z"
        if at == _sre_constants.AT_BOUNDARY:
            return r"\b"
        return _NOTHING if self.for_empty else r"\B"


def _children(op: Any, argument: Any, flags: int) -> list[tuple[Any, int]]:
    """The sub-patterns of one parse-tree item, with the flags in force inside them."""
    if op == _sre_constants.BRANCH:
        return [(branch, flags) for branch in argument[1]]
    if op == _sre_constants.SUBPATTERN:
        return [(argument[3], (flags | argument[1]) & ~argument[2])]
    if op in (_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT):
        return [(argument[2], flags)]
    return []


def _has_at(parsed: Any, at: Any) -> bool:
    return any((op == _sre_constants.AT and argument == at)
               or any(_has_at(inner, at) for inner, _flags in _children(op, argument, 0))
               for op, argument in parsed)


def _hashable(argument: Any) -> Any:
    return tuple((op, value) for op, value in argument) if isinstance(argument, list) else argument


def _engine_refusal(exc: Exception) -> UnsafePattern:
    message = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    if "repetition" in message:
        fragment = message.rpartition(": ")[2]
        return UnsafePattern(f"repetition {fragment} is too large: {_WHY} and counts at most 1000 repetitions, "
                             "nested ones multiplied", "repeat less, e.g. {1,20} rather than {1,200}")
    if "too large" in message or "too deep" in message:
        return UnsafePattern(f"pattern is too large: {_WHY} within a bounded size")
    return UnsafePattern(f"pattern is not supported: {message}")  # pragma: no cover - RE2 takes all we write


# -- character sets ---------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _character_set(op: Any, argument: Any, flags: int) -> Ranges:
    """The code points one character of the pattern matches, as Python's `re` decides under these flags."""
    if op == _sre_constants.ANY:
        return ((0, _LAST_CODE_POINT),) if flags & _DOTALL else _complement(((10, 10),))
    if op == _sre_constants.LITERAL:
        exact: Ranges = ((argument, argument),)
    elif op == _sre_constants.NOT_LITERAL:
        exact = _complement(((argument, argument),))
    else:
        parts: list[tuple[int, int]] = []
        for kind, value in argument:
            if kind == _sre_constants.LITERAL:
                parts.append((value, value))
            elif kind == _sre_constants.RANGE:
                parts.append(value)
            elif kind == _sre_constants.CATEGORY:
                parts.extend(_category(_CATEGORIES[value], bool(flags & _ASCII)))
        exact = _normalized(parts)
        if any(kind == _sre_constants.NEGATE for kind, _value in argument):
            exact = _complement(exact)
    if not flags & _IGNORECASE:
        return exact
    # Ignoring case changes the answer for cased characters only: ask Python's `re` about each of those.
    single = re.compile(("(?ai)" if flags & _ASCII else "(?i)") + _python_class(op, argument))
    cased = _cased_characters()
    found = [(point, point) for point in cased if single.fullmatch(chr(point))]
    uncased = _intersection(exact, _complement(_normalized([(point, point) for point in cased])))
    return _normalized(list(uncased) + found)


def _python_class(op: Any, argument: Any) -> str:
    """One character of the pattern spelled again in Python's syntax, to ask `re` about it."""
    def spelled(point: int) -> str:
        return f"\\U{point:08x}"

    if op == _sre_constants.LITERAL:
        return spelled(argument)
    if op == _sre_constants.NOT_LITERAL:
        return f"[^{spelled(argument)}]"
    inside: list[str] = []
    for kind, value in argument:
        if kind == _sre_constants.NEGATE:
            inside.insert(0, "^")
        elif kind == _sre_constants.LITERAL:
            inside.append(spelled(value))
        elif kind == _sre_constants.RANGE:
            inside.append(f"{spelled(value[0])}-{spelled(value[1])}")
        else:
            inside.append(_CATEGORIES[value])
    return "[" + "".join(inside) + "]"


def _plain_class(points: Ranges) -> str:
    return _re2_class(_intersection(points, _ASCII_RANGE))


@lru_cache(maxsize=4096)
def _framed_class(points: Ranges, ascii_only: bool) -> str:
    """A class over framed characters: for each kind of character, its left frame, then the members of
    that kind (any character, when the class holds the whole kind), then the right frame."""
    whole, parts = "", []
    for frames, kind in _kinds(ascii_only):
        inside = _intersection(points, kind)
        if inside == kind:
            whole += frames
        elif inside:
            # The left frame already says the character is of this kind: spell what is in the class or
            # what of the kind is not, whichever is shorter.
            outside = _intersection(kind, _complement(inside))
            members = _re2_class(inside) if len(inside) <= len(outside) else "[^" + _re2_class(outside)[1:]
            parts.append(_re2_class(_points_of(frames)) + members)
    if whole:
        parts.insert(0, _re2_class(_points_of(whole)) + "(?s:.)")
    if not parts:
        return _NOTHING
    return ("(?:" + "|".join(parts) + ")" if len(parts) > 1 else parts[0]) + r"[\na ]"


def _points_of(characters: str) -> Ranges:
    return _normalized([(ord(c), ord(c)) for c in characters])


def _re2_class(points: Ranges) -> str:
    """A set of code points in RE2's syntax, always as a bracketed class."""
    def spelled(point: int) -> str:
        return chr(point) if chr(point).isascii() and chr(point).isalnum() else f"\\x{{{point:x}}}"

    if not points:
        return _NOTHING
    return "[" + "".join(spelled(lo) if lo == hi else f"{spelled(lo)}-{spelled(hi)}" for lo, hi in points) + "]"


@cache
def _category(escape: str, ascii_only: bool) -> Ranges:
    """`\\d`, `\\s`, `\\w` or their complements as Python's `re` has them, read off `re` itself."""
    if escape.isupper():
        return _complement(_category(escape.lower(), ascii_only))
    return _categories(ascii_only)[escape]


@cache
def _categories(ascii_only: bool) -> dict[str, Ranges]:
    """The code point ranges of `\\d`, `\\s` and `\\w`. Reading all of Unicode takes ~0.15 s, so the answer
    is kept in the user's cache, keyed by this Python's version and Unicode database."""
    if ascii_only:
        return _read_categories(ascii_only)
    key = f"{sys.implementation.cache_tag} {sys.version} unicode {unicodedata.unidata_version}"
    stored = user_cache.read_json("regex-categories.json", key)
    if _well_formed(stored):
        return {escape: tuple((lo, hi) for lo, hi in ranges) for escape, ranges in stored.items()}
    categories = _read_categories(ascii_only)
    user_cache.write_json("regex-categories.json", key, categories)
    return categories


def _well_formed(stored: Any) -> bool:
    return isinstance(stored, dict) and set(stored) == {r"\d", r"\s", r"\w"} and all(
        isinstance(ranges, list) and all(isinstance(r, list) and len(r) == 2 and all(
            isinstance(end, int) and 0 <= end <= _LAST_CODE_POINT for end in r) and r[0] <= r[1] for r in ranges)
        for ranges in stored.values())


def _read_categories(ascii_only: bool) -> dict[str, Ranges]:
    # All of Unicode in one string, through UTF-32: a join of 1.1 million `chr` takes 0.25 s. Under the
    # ASCII flag `re` matches these escapes on ASCII characters only, so the first 128 are all there is to read.
    last = 0x7F if ascii_only else _LAST_CODE_POINT
    every = array("I", range(last + 1)).tobytes().decode(f"utf-32-{sys.byteorder[0]}e", "surrogatepass")
    prefix = "(?a)" if ascii_only else ""
    return {escape: tuple((m.start(), m.end() - 1) for m in re.finditer(prefix + escape + "+", every))
            for escape in (r"\d", r"\s", r"\w")}


@cache
def _kinds(ascii_only: bool) -> tuple[tuple[str, Ranges], ...]:
    """Each kind of character there is, with its left frames and its code points. A newline's kind has
    "\\n" as a second left frame: the one a newline gets where it ends a line for `$`."""
    word, digit, space = (_category(escape, ascii_only) for escape in (r"\w", r"\d", r"\s"))
    kinds = []
    for (is_word, is_digit, is_space), frame in _KIND_FRAMES.items():
        points = reduce(_intersection, (have if wanted else _complement(have)
                                        for have, wanted in ((word, is_word), (digit, is_digit), (space, is_space))))
        if points:
            holds_newline = bool(_intersection(points, ((10, 10),)))
            kinds.append((frame + "\n" if holds_newline else frame, points))
    return tuple(kinds)


@cache
def _framer(ascii_only: bool, every_newline_ends: bool) -> Callable[[str], str]:
    """How a text is framed for one kind of pattern: every character c becomes "L c R" (see above)."""
    finders = tuple(re.compile(("(?a)" if ascii_only else "") + escape) for escape in (r"\w", r"\d", r"\s"))

    class Frames(dict[int, str]):
        def __missing__(self, point: int) -> str:
            character = chr(point)
            is_word, is_digit, is_space = (finder.fullmatch(character) is not None for finder in finders)
            if character == "\n":
                framed = ("\n" if every_newline_ends else _KIND_FRAMES[False, False, True]) + "\n\n"
            else:
                right = "a" if is_word else " "
                framed = _KIND_FRAMES[is_word, is_digit, is_space] + character + right
            self[point] = framed
            return framed

    frames = Frames()

    def frame(text: str) -> str:
        if not every_newline_ends and text.endswith("\n"):  # Python's `$` holds before a last newline
            return text[:-1].translate(frames) + "\n\n\n"
        return text.translate(frames)

    return frame


@cache
def _cased_characters() -> tuple[int, ...]:
    """Every character that has a case or is one: outside these, ignoring case changes no answer of `re`,
    which decides case with these same functions of its C module."""
    import _sre

    cased = {point for point in range(_LAST_CODE_POINT + 1) if _sre.unicode_iscased(point)}
    images = {_sre.unicode_tolower(point) for point in cased}
    images.update(ord(upper) for point in cased if len(upper := chr(point).upper()) == 1)
    return tuple(sorted(cased | images))


def _normalized(ranges: Sequence[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _complement(ranges: Ranges) -> Ranges:
    gaps, start = [], 0
    for lo, hi in ranges:
        if lo > start:
            gaps.append((start, lo - 1))
        start = hi + 1
    if start <= _LAST_CODE_POINT:
        gaps.append((start, _LAST_CODE_POINT))
    return tuple(gaps)


def _intersection(first: Ranges, second: Ranges) -> Ranges:
    both, i, j = [], 0, 0
    while i < len(first) and j < len(second):
        lo, hi = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if lo <= hi:
            both.append((lo, hi))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return tuple(both)


# -- where in the source ----------------------------------------------------------------------------------

def _position_of(pattern: str, start: str, verbose: bool) -> int | None:
    """Where in the source the first construct that begins with ``start`` is (outside classes and escapes)."""
    i, in_class = 0, False
    while i < len(pattern):
        character = pattern[i]
        if character == "\\":
            if start == "backref" and not in_class and _is_back_reference(pattern, i):
                return i
            i += 2
            continue
        if in_class:
            in_class = character != "]"
        elif character == "[":
            in_class = True
            i += 1
            i += pattern.startswith("^", i)
            i += pattern.startswith("]", i)  # a "]" first in a class is a literal
            continue
        elif verbose and character == "#":
            end = pattern.find("\n", i)
            i = len(pattern) if end < 0 else end
            continue
        elif start == "backref" and pattern.startswith("(?P=", i):
            return i
        elif start == "possessive":
            if character in "*+?}" and pattern.startswith("+", i + 1):
                return i
        elif any(pattern.startswith(prefix, i) for prefix in start.split("|")):
            return i
        i += 1
    return None


def _is_back_reference(pattern: str, i: int) -> bool:
    """Whether the escape at ``i`` is a group reference (\\1 to \\99), not an octal escape such as \\101."""
    digits = pattern[i + 1:i + 4]
    if not digits[:1].isdigit() or digits[:1] == "0":
        return False
    return not (len(digits) == 3 and all(d in "01234567" for d in digits))


_REPEATS = {_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT}


def _backtracking_risk(parsed: Any, inside_repeat: bool = False) -> str | None:
    """What in the pattern would take exponential time on a backtracking engine such as Python's `re`.

    RE2 runs these shapes in linear time, so this is no defence any more; the checker still reports them
    (E028) because the language reference refuses them."""
    for op, argument in parsed:
        if op in _REPEATS:
            _low, high, body = argument
            unbounded = high == _MAX_REPEAT or high > 100
            if inside_repeat and unbounded:
                return "nested repetition like (a+)+ can take exponential time"
            if unbounded and _has_alternation(body):
                return "repeated alternation like (a|ab)* can take exponential time"
            risk = _backtracking_risk(body, inside_repeat or unbounded)
        elif op == _sre_constants.SUBPATTERN:
            risk = _backtracking_risk(argument[-1], inside_repeat)
        elif op == _sre_constants.BRANCH:
            risk = next(filter(None, (_backtracking_risk(branch, inside_repeat) for branch in argument[1])), None)
        else:
            continue
        if risk:
            return risk
    return None


def _has_alternation(parsed: Any) -> bool:
    for op, argument in parsed:
        if op == _sre_constants.BRANCH:
            return True
        if op == _sre_constants.SUBPATTERN and _has_alternation(argument[-1]):
            return True
    return False


def _matches(text: str, pattern: LinearPattern) -> bool:
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
_RUN_SPLIT = re.compile(r"([\w-]+)")  # split keeps the runs as well as what lies between them


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
        # [gap, run, gap, run, ..., gap]: the runs, and between runs k and k+1 the text that separates them
        parts = _RUN_SPLIT.split(lowered)
        tokens = parts[1::2]
        heads = self._heads
        mask = reduce(or_, map(self._words.get, tokens, repeat(0, len(tokens))), 0)
        if heads and not heads.keys().isdisjoint(tokens):
            phrases, count = self._phrases, len(tokens)
            for first, token in enumerate(tokens):
                longest = heads.get(token)
                if longest:
                    stretch = token
                    for last in range(first + 1, min(first + longest, count)):
                        stretch += parts[2 * last] + tokens[last]  # exactly lowered[start of first:end of last]
                        mask |= phrases.get(stretch, 0)
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
             "True when the regular expression (a string literal, in Python's `re` syntax and meaning) matches "
             "anywhere in the string, in time linear in the string: back-references and look-around are "
             "rejected at compile time, and so are patterns that could backtrack exponentially."),
    Function("mentions", (TEXT, TEXT_LIST), BOOLEAN, mentions,
             "True when the string contains any entry of the list as a whole word or phrase, "
             "ignoring case: mentions(\"brown rice\", [\"rice\"]) holds, mentions(\"licorice\", [\"rice\"]) "
             "does not."),
    Function("min", (NUM, NUM), NUMBER, min, "The smaller of two numbers."),
    Function("max", (NUM, NUM), NUMBER, max, "The larger of two numbers."),
    Function("abs", (NUM,), NUMBER, abs, "The absolute value of a number."),
)}
