"""Stage 3a: parse expression text with the Lark LALR grammar in `spec/` into expression nodes.

Lark's errors are converted into `ExpressionSyntaxError` records (offset plus a
readable message) here, at the boundary, so that the caller can place them in
the task file. Size and nesting are bounded before any recursive walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import expr_nodes as n
from .user_cache import cache_directory

MAX_EXPRESSION_CHARS = 4000
MAX_EXPRESSION_DEPTH = 60

_READABLE_TERMINALS = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "COMPARE_OP": "a comparison",
    "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/' or '%'", "$END": "the end of the expression",
}


@dataclass(frozen=True)
class ExpressionSyntaxError(Exception):
    message: str
    start: int
    end: int
    hint: str | None = None


@lru_cache(maxsize=1)
def expression_parser() -> Lark:
    """The LALR parser, its tables loaded from the user's cache (`user_cache`) when a process built them.

    Building the tables costs ~0.1 s of every `taskc` process that compiles (a pre-commit hook checking
    one file, each run); Lark checks the cached tables against the grammar's hash and rebuilds (and
    rewrites) them when the grammar or its options changed, or the file is unreadable or damaged (a
    process reading it while another writes it just builds its own)."""
    grammar = resources.files("taskc.spec").joinpath("expressions.lark").read_text(encoding="utf-8")
    cache = _parser_cache_file()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                cache=str(cache) if cache else False)


def _parser_cache_file() -> Path | None:
    directory = cache_directory()
    return None if directory is None else directory / f"expressions-lark{lark.__version__}.tables"


def parse_expression(text: str) -> n.Expr:
    """Parse ``text``; raise `ExpressionSyntaxError` with an offset on any problem."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionSyntaxError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters", 0, 1)
    if not text.strip():
        raise ExpressionSyntaxError("expression is empty", 0, 1)
    _check_bracket_depth(text)
    try:
        tree = expression_parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except LarkError as exc:  # pragma: no cover - any other Lark failure is still a syntax error
        raise ExpressionSyntaxError(f"cannot parse expression: {exc}", 0, len(text)) from None
    _check_tree_depth(tree, text)
    return _Builder(text).build(tree)


def _check_bracket_depth(text: str) -> None:
    depth = 0
    for offset, char in enumerate(text):
        if char in "([":
            depth += 1
            if depth > MAX_EXPRESSION_DEPTH:
                raise ExpressionSyntaxError(f"expression nests deeper than {MAX_EXPRESSION_DEPTH} levels",
                                            offset, offset + 1)
        elif char in ")]":
            depth -= 1


def _check_tree_depth(tree: Tree, text: str) -> None:
    stack: list[tuple[Tree | Token, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionSyntaxError(
                f"expression nests deeper than {MAX_EXPRESSION_DEPTH} levels", 0, len(text),
                "split it into several rationales or constraints")
        if isinstance(node, Tree):
            stack.extend((child, depth + 1) for child in node.children if child is not None)


def _syntax_error(exc: UnexpectedInput, text: str) -> ExpressionSyntaxError:
    offset = exc.pos_in_stream if exc.pos_in_stream is not None else len(text)
    if isinstance(exc, UnexpectedCharacters):
        char = text[offset] if offset < len(text) else ""
        hint = None
        if char == "=":
            hint = "use '==' to compare"
        elif char == ".":
            hint = "there is no attribute access; only lexicon.NAME uses a dot"
        elif char in "&|!":
            hint = "use 'and', 'or' and 'not'"
        return ExpressionSyntaxError(f"unexpected character {char!r}", offset, offset + 1, hint)
    if isinstance(exc, UnexpectedEOF):
        return ExpressionSyntaxError("expression ends too early", len(text), len(text) + 1,
                                     _expected_at_end(set(exc.expected)))
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            return ExpressionSyntaxError("expression ends too early", max(0, len(text) - 1), len(text),
                                         _expected_at_end(set(exc.expected)))
        start = token.start_pos if token.start_pos is not None else offset
        end = token.end_pos if token.end_pos is not None else start + 1
        hint = _expected(exc.expected)
        if token.value == ".":
            hint = "there is no attribute access; only lexicon.NAME uses a dot"
        elif token.value == "=":
            hint = "use '==' to compare"
        return ExpressionSyntaxError(f"unexpected {token.value!r}", start, end, hint)
    return ExpressionSyntaxError("syntax error", offset, offset + 1)


def _expected_at_end(names: set[str]) -> str | None:
    """At the end of the text, an unclosed bracket is by far the likeliest mistake: say so."""
    for terminal, closing in (("RPAR", ")"), ("RSQB", "]")):
        if terminal in names:
            return f"a closing '{closing}' is missing"
    return _expected(names)


def _expected(names: set[str] | frozenset[str] | None) -> str | None:
    if not names:
        return None
    parser = expression_parser()
    readable = set()
    for name in names:
        if name in _READABLE_TERMINALS:
            readable.add(_READABLE_TERMINALS[name])
            continue
        try:
            pattern = parser.get_terminal(name).pattern
            readable.add(f"'{pattern.value}'" if pattern.type == "str" else name.lower())
        except KeyError:
            readable.add(name.lower())
    shown = sorted(readable)
    return "expected " + (", ".join(shown[:8]) + (", ..." if len(shown) > 8 else ""))


class _Builder:
    """Converts Lark's parse tree into expression nodes (iterative depth was checked already)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def build(self, tree: Tree | Token) -> n.Expr:
        node = self._node(tree)
        if isinstance(node, n.Lambda):
            raise ExpressionSyntaxError("a lambda is only allowed as a function argument",
                                        node.start, node.end)
        return node

    def _node(self, tree: Tree | Token) -> n.Expr | n.Lambda:
        if isinstance(tree, Token):  # pragma: no cover - the grammar wraps every terminal
            raise ExpressionSyntaxError("unexpected token", tree.start_pos or 0, tree.end_pos or 0)
        start, end = tree.meta.start_pos, tree.meta.end_pos
        kind, kids = tree.data, tree.children
        if kind == "number":
            raw = str(kids[0])
            value: object = float(raw) if any(c in raw for c in ".eE") else int(raw)
            return n.Literal(value, start, end)
        if kind == "string":
            return n.Literal(_unquote(_token(kids[0])), start, end)
        if kind in ("true", "false"):
            return n.Literal(kind == "true", start, end)
        if kind == "name":
            return n.Name(str(kids[0]), start, end)
        if kind == "lexicon":
            return n.LexiconRef(str(kids[0]), start, end)
        if kind == "list":
            items = tuple(self.build(k) for k in kids if k is not None)
            return n.ListLiteral(items, start, end)
        if kind == "call":
            name_token, arguments = kids
            args = tuple(self._node(a) for a in arguments.children) if arguments is not None else ()
            return n.Call(str(name_token), args, start, end, _token(name_token).end_pos or end)
        if kind == "lambda_":
            return n.Lambda(str(kids[0]), self.build(kids[1]), start, end)
        if kind in ("not_", "neg"):
            return n.Unary("not" if kind == "not_" else "-", self.build(kids[0]), start, end)
        if kind == "index":
            return n.Index(self.build(kids[0]), self.build(kids[1]), start, end)
        if kind in ("compare", "arith"):
            left, op, right = kids
            return n.Binary(str(op), self.build(left), self.build(right), start, end, _token(op).start_pos or start)
        operators = {"and_": "and", "or_": "or", "implies": "implies", "in_": "in", "not_in": "not in"}
        if kind in operators:
            left, right = self.build(kids[0]), self.build(kids[-1])
            return n.Binary(operators[kind], left, right, start, end, _operator_offset(self.text, left, right))
        raise ExpressionSyntaxError(f"unsupported construct '{kind}'", start, end)  # pragma: no cover


def _token(child: object) -> Token:
    assert isinstance(child, Token), "the grammar puts a terminal here"
    return child


def _operator_offset(text: str, left: n.Expr, right: n.Expr) -> int:
    gap = text[left.end : right.start]
    return left.end + (len(gap) - len(gap.lstrip()))


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def _unquote(token: Token) -> str:
    """Decode a string literal: the quotes go, backslash escapes are resolved (\\b stays for regexes)."""
    raw = str(token)[1:-1]
    out: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)
