"""What `taskc lsp` knows about a task file, as pure functions over its text and its IR (no LSP library).

The language server (`cli/cmd_lsp.py`) is a thin layer of pygls over this module: it compiles the
editor's buffer with `compile_source`, turns the diagnostics into editor positions with
`editor_diagnostics`, and answers completion, hover and go-to-definition with `completions`, `hover` and
`definition`. Positions are LSP's: 0-based lines, columns counted in the code units of the negotiated
encoding (UTF-16 unless the client asked otherwise), while taskc's spans count 1-based code points.

A buffer being edited is rarely valid YAML, so where the cursor is (which mapping, which key's value) is
read from the text's indentation by `cursor_context`, not from the parsed document; the names it
completes (classes, fields, lexicons, rationales) come from the IR of the latest compilation that got
that far, which the server keeps while the file is broken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from . import ir
from .diagnostics import Diagnostic, DiagnosticBag, Severity, Span
from .driver import CompileResult, compile_task
from .expr_types import METRIC_NAMES, PER_CLASS_METRICS
from .functions import FUNCTIONS, Function
from .loader import MAX_FILE_BYTES, JsonPath
from .structure import task_schema

SOURCE = "taskc"
ENCODINGS = ("utf-8", "utf-16", "utf-32")
_LEXICON_PREVIEW = 12  # entries a lexicon's hover shows


# -- compiling the buffer ----------------------------------------------------------------------------------

def compile_source(path: str | Path, text: str) -> CompileResult:
    """Compile an editor's unsaved ``text`` of the task file at ``path``, like `taskc check` compiles the file.

    The file on disk is not read (nor written: no temporary copy next to it), but the files the task names
    are found relative to ``path``, exactly as for the saved file."""
    path = Path(path)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:  # the same limit the loader puts on a file, checked before any parsing
        bag = DiagnosticBag()
        bag.error(Span(str(path), 1, 1), "E002", f"task file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes")
        return CompileResult(bag.sorted(), {})
    return compile_task(path, display_name=str(path), text=text, plan_data=False)


# -- positions ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Position:
    line: int  # 0-based
    character: int  # code units of the negotiated encoding


@dataclass(frozen=True)
class Range:
    start: Position
    end: Position


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` as LSP counts them (\\n, \\r\\n or \\r end a line; nothing else does)."""
    return _LINE_BREAK.split(text)


def _units(character: str, encoding: str) -> int:
    point = ord(character)
    if encoding == "utf-16":
        return 2 if point > 0xFFFF else 1
    if encoding == "utf-8":
        return 1 if point < 0x80 else 2 if point < 0x800 else 3 if point < 0x10000 else 4
    return 1


def encode_column(line: str, index: int, encoding: str = "utf-16") -> int:
    """The LSP character offset of code point ``index`` of ``line`` (past the end counts one unit each)."""
    if encoding == "utf-32":
        return index
    inside = line[: max(index, 0)]
    return sum(_units(c, encoding) for c in inside) + max(index - len(line), 0)


def decode_column(line: str, character: int, encoding: str = "utf-16") -> int:
    """The code-point index in ``line`` of the LSP character offset ``character`` (the inverse of
    `encode_column`; an offset inside a character's units stops before that character)."""
    if encoding == "utf-32":
        return min(max(character, 0), len(line))
    units = 0
    for index, c in enumerate(line):
        units += _units(c, encoding)
        if units > character:
            return index
    return len(line)


def span_range(span: Span, lines: Sequence[str], encoding: str = "utf-16") -> Range:
    """The LSP range of a taskc span (1-based code points, end exclusive; a missing end covers one column)."""
    end_line = span.end_line or span.line
    end_column = span.end_column or span.column + 1
    if (end_line, end_column) <= (span.line, span.column):
        end_line, end_column = span.line, span.column + 1
    return Range(_position(lines, span.line, span.column, encoding), _position(lines, end_line, end_column, encoding))


def _position(lines: Sequence[str], line: int, column: int, encoding: str) -> Position:
    line0 = max(line - 1, 0)
    text = lines[line0] if line0 < len(lines) else ""
    return Position(line0, encode_column(text, max(column - 1, 0), encoding))


# -- diagnostics -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EditorDiagnostic:
    range: Range
    severity: int  # LSP's DiagnosticSeverity: 1 error, 2 warning
    code: str
    message: str
    source: str = SOURCE


def editor_diagnostics(diagnostics: Iterable[Diagnostic], text: str, display_name: str,
                       encoding: str = "utf-16") -> list[EditorDiagnostic]:
    """Every diagnostic of a compilation of ``text``, at its LSP range, with its hint after the message.

    A diagnostic located in another file (none is today) is shown at the top of the task file, its own
    location in front of the message, rather than dropped."""
    lines = split_lines(text)
    published = []
    for diag in diagnostics:
        message = diag.message + (f"\nhint: {diag.hint}" if diag.hint else "")
        span = diag.span
        if span.file != display_name:
            message = f"{span.file}:{span.line}:{span.column}: {message}"
            span = Span(display_name, 1, 1)
        published.append(EditorDiagnostic(span_range(span, lines, encoding),
                                          1 if diag.severity is Severity.ERROR else 2, diag.code, message))
    return published


# -- where the cursor is -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CursorContext:
    """Where the cursor sits in the YAML outline of the buffer.

    ``path`` addresses the mapping (or sequence item) the cursor is in, like a loader path:
    ``("rationales", 2)``. ``key`` is the key whose value holds the cursor, None where a key (or a
    sequence item) is typed, "" inside something else (a flow collection, a scalar item). ``before`` is
    the cursor line up to the cursor; ``typed`` the part of it that is the key or the value being typed."""

    path: JsonPath
    key: str | None
    before: str
    typed: str

    @property
    def at_key(self) -> bool:
        return self.key is None

    @property
    def value_path(self) -> JsonPath:
        return self.path if not self.key else self.path + (self.key,)


@dataclass
class _Open:
    """A key or a sequence item still open above the cursor, and the column it starts at."""

    column: int
    segment: str | int  # a key, or the index of a sequence item
    inline: bool  # a key with a value on its own line: more-indented lines below continue that value
    ended: bool = False  # a sequence item closed by a sibling at its column: the next `-` is item + 1


_DASH = re.compile(r"-(?:[ \t]+|$)")
_KEY = re.compile(r"""(?P<key>"[^"]*"|'[^']*'|[^\s#'"{\[\]},&*!|>%@`-][^#]*?)[ \t]*:(?:[ \t]+|$)(?P<value>.*)""")
_PARTIAL_KEY = re.compile(r"[\w.-]*")


def _unquote(key: str) -> str:
    return key[1:-1] if key[:1] in "\"'" else key


def _has_value(value: str) -> bool:
    stripped = value.strip()
    return bool(stripped) and not stripped.startswith("#")


def _is_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def cursor_context(lines: Sequence[str], line: int, index: int) -> CursorContext:
    """Where code point ``index`` of line ``line`` (0-based) sits: read from indentation alone, so a buffer
    that is not valid YAML yet (the usual state while typing) still has an outline."""
    stack: list[_Open] = []
    for text in lines[:line]:
        if text.startswith("---"):
            stack.clear()
        elif not (_is_blank(text) or text.startswith(("...", "%"))):
            _open_line(stack, text)
    current = lines[line] if line < len(lines) else ""
    before = current[:index]
    indent = len(current) - len(current.lstrip(" ")) if current.strip() else len(before)
    if stack and stack[-1].inline and indent > stack[-1].column:  # a continuation of the value above
        return CursorContext(tuple(o.segment for o in stack[:-1]), str(stack[-1].segment), before,
                             before.strip())
    rest = _enter(stack, indent, before[indent:], _DASH.match(current[indent:]) is not None)
    path = tuple(o.segment for o in stack if not o.ended)
    if (key := _KEY.match(rest)) is not None:
        path, rest = path + (_unquote(key.group("key")),), key.group("value")
        if not rest.lstrip().startswith(("{", "[")):
            return CursorContext(path[:-1], str(path[-1]), before, rest.strip())
    elif _PARTIAL_KEY.fullmatch(rest):
        return CursorContext(path, None, before, rest)
    return _flow_context(path, rest, before)


def _flow_context(path: JsonPath, rest: str, before: str) -> CursorContext:
    """The context inside a flow collection that opens on the cursor line (``input: {dish: Pizza, ingr``);
    ``path`` addresses the collection. Anything else is a value taskc completes nothing in."""
    frames: list[list[Any]] = []  # per open collection: [key typed in it (or None), index (or None)]
    start, quote, escaped = 0, "", False
    for i, c in enumerate(rest):
        if quote:
            if escaped:
                escaped = False
            elif c == "\\" and quote == '"':
                escaped = True
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "{[":
            frames.append([None, None if c == "{" else 0])
            start = i + 1
        elif c in "}]":
            if frames:
                frames.pop()
            start = i + 1
        elif c == "," and frames:
            frames[-1][0] = None
            if frames[-1][1] is not None:
                frames[-1][1] += 1
            start = i + 1
        elif (c == ":" and frames and frames[-1][1] is None and frames[-1][0] is None
              and rest[i + 1: i + 2] in ("", " ", ",", "}")):
            frames[-1][0] = _unquote(rest[start:i].strip())
            start = i + 1
    typed = rest[start:].strip()
    if not frames or quote or any(key is None and index is None for key, index in frames[:-1]):
        return CursorContext(path, "", before, typed)  # a closed collection, a string, a collection as a key
    for key, index in frames[:-1]:
        path += (index,) if index is not None else (key,)
    key, index = frames[-1]
    if index is not None:
        return CursorContext(path + (index,), None, before, typed)
    return CursorContext(path, key, before, typed)


def _open_line(stack: list[_Open], text: str) -> None:
    indent = len(text) - len(text.lstrip(" "))
    if stack and stack[-1].inline and indent > stack[-1].column:
        return  # more of a multi-line value (block scalar, folded plain scalar, flow collection)
    rest = _enter(stack, indent, text[indent:], _DASH.match(text[indent:]) is not None)
    if (key := _KEY.match(rest)) is not None:
        stack.append(_Open(len(text) - len(rest), _unquote(key.group("key")), _has_value(key.group("value"))))


def _enter(stack: list[_Open], indent: int, rest: str, dash_line: bool) -> str:
    """Close what a line at ``indent`` ends, open the sequence items its `- ` (or `- - `) starts, and return
    the text after them."""
    _close(stack, indent, dash_line)
    column = indent
    while (dash := _DASH.match(rest)) is not None:
        _push_item(stack, column)
        column += dash.end()
        rest = rest[dash.end():]
    return rest


def _close(stack: list[_Open], indent: int, dash: bool) -> None:
    """Close what a line at ``indent`` ends. A `-` line keeps a key at its own column open (YAML lets a
    sequence sit at its key's indentation) and marks a sibling item as ended, so that the item the line
    starts takes the next index."""
    while stack:
        top = stack[-1]
        if top.column < indent or (dash and top.column == indent and isinstance(top.segment, str)
                                   and not top.inline):
            return
        if dash and top.column == indent and isinstance(top.segment, int):
            top.ended = True
            return
        stack.pop()


def _push_item(stack: list[_Open], column: int) -> None:
    if stack and stack[-1].ended and stack[-1].column == column:
        stack[-1] = _Open(column, int(stack[-1].segment) + 1, False)
    else:
        stack.append(_Open(column, 0, False))


def expression_context(context: CursorContext) -> str | None:
    """The expression context (``rule``, ``constraint``, ``criterion``) of the value under the cursor."""
    path, key = context.path, context.key
    if len(path) == 2 and isinstance(path[1], int) and key is not None:
        if path[0] == "rationales" and key == "rule":
            return "rule"
        if path[0] == "constraints" and key == "check":
            return "constraint"
    if path == ("eval",) and key == "pass":
        return "criterion"
    return None


# -- the JSON Schema, by path ------------------------------------------------------------------------------

@cache
def _schema() -> dict[str, Any]:
    return task_schema()


def _alternatives(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [node]
    for combinator in ("oneOf", "anyOf", "allOf"):
        for option in node.get(combinator) or ():
            if isinstance(option, Mapping):
                found.extend(_alternatives(option))
    return found


def schema_nodes(path: JsonPath) -> list[Mapping[str, Any]]:
    """The schema nodes (alternatives of a ``oneOf`` included) that describe the value at ``path``."""
    nodes: list[Mapping[str, Any]] = [_schema()]
    for segment in path:
        following: list[Mapping[str, Any]] = []
        for node in nodes:
            for option in _alternatives(node):
                if isinstance(segment, int):
                    child = option.get("items")
                else:
                    child = (option.get("properties") or {}).get(segment, option.get("additionalProperties"))
                if isinstance(child, Mapping):
                    following.append(child)
        nodes = following
    return nodes


def schema_keys(path: JsonPath) -> dict[str, Mapping[str, Any]]:
    """The keys the schema names for the mapping at ``path``, in the schema's order, with their schemas."""
    keys: dict[str, Mapping[str, Any]] = {}
    for node in schema_nodes(path):
        for option in _alternatives(node):
            for key, child in (option.get("properties") or {}).items():
                keys.setdefault(key, child)
    return keys


def _required(path: JsonPath) -> set[str]:
    return {key for node in schema_nodes(path) for option in _alternatives(node) for key in option.get("required", ())}


def _description(node: Mapping[str, Any]) -> str:
    for option in _alternatives(node):
        if option.get("description"):
            return str(option["description"])
    return ""


def _type_name(node: Mapping[str, Any]) -> str:
    types = [str(o["type"]) for o in _alternatives(node) if "type" in o]
    return " or ".join(dict.fromkeys(types))


def _enum_values(path: JsonPath) -> list[str]:
    values: list[str] = []
    for node in schema_nodes(path):
        for option in _alternatives(node):
            values += [str(v) for v in option.get("enum", ()) if str(v) not in values]
    return values


# -- completion --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompletionEntry:
    label: str
    kind: str  # a member name of LSP's CompletionItemKind: Class, Field, Function, Property, ...
    detail: str = ""
    documentation: str = ""  # Markdown
    insert_text: str | None = None


_LEXICON_REF = re.compile(r"lexicon\.(\w*)$")
_CLASS_STRING = re.compile(r"(?:\blabel\s*[!=]=\s*|\b(?:" + "|".join(PER_CLASS_METRICS) + r")\[\s*)[\"'](\w*)$")
_WORD = re.compile(r"\w+")


def function_signature(function: Function) -> str:
    """``count(a list [, a lambda ...]) → integer``: the reference's way of writing a signature."""
    required = ", ".join(function.parameters[: function.min_arguments])
    optional = ", ".join(function.parameters[function.min_arguments:])
    if optional:
        required = f"{required} [, {optional}]" if required else f"[{optional}]"
    return f"{function.name}({required}) → {function.returns}"


def function_reference(function: Function) -> str:
    """The Markdown reference of a function: signature, meaning and parameters."""
    parameters = "\n".join(
        f"{i}. {kind}{'' if i <= function.min_arguments else ' (optional)'}"
        for i, kind in enumerate(function.parameters, 1))
    return f"```\n{function_signature(function)}\n```\n\n{function.summary}\n\nParameters:\n{parameters}"


def _in_string(before: str) -> bool:
    """Whether the end of ``before`` is inside a string literal of an expression (one line's view)."""
    quote: str | None = None
    escaped = False
    for c in before:
        if escaped:
            escaped = False
        elif c == "\\" and quote:
            escaped = True
        elif quote is None and c == "#":
            return False  # a comment: not a string, and nothing to complete either
        elif c in "\"'":
            quote = None if quote == c else quote or c
    return quote is not None


def completions(text: str, line: int, character: int, task: ir.TaskIR | None,
                encoding: str = "utf-16") -> list[CompletionEntry]:
    """What may be typed at the cursor: keys of the mapping, a class, a lexicon, a field, a function..."""
    lines = split_lines(text)
    current = lines[line] if line < len(lines) else ""
    context = cursor_context(lines, line, decode_column(current, character, encoding))
    before = context.before
    expression = expression_context(context)
    if expression is not None:
        return _expression_completions(expression, before, task)
    if context.at_key:
        return _key_completions(context.path)
    if context.key == "" or not _PARTIAL_KEY.fullmatch(context.typed):
        return []  # inside a flow collection or a longer value: nothing sensible to offer
    lead = " " if before.endswith(":") else ""  # completing right after the colon: keep YAML's space
    if _is_class_value(context):
        return [_class_entry(c, lead) for c in task.classes] if task else []
    nodes = schema_nodes(context.value_path)
    kind = _type_name(nodes[0]) if nodes else ""
    return [CompletionEntry(v, "EnumMember", kind, insert_text=lead + v) for v in _enum_values(context.value_path)]


def _is_class_value(context: CursorContext) -> bool:
    path, key = context.path, context.key
    return (path[:1] == ("rationales",) and len(path) == 2 and key == "class") or (
        len(path) == 4 and path[0] == "rationales" and path[2] == "examples" and key == "label")


def _class_entry(task_class: ir.TaskClass, lead: str = "") -> CompletionEntry:
    return CompletionEntry(task_class.name, "Class", "class", task_class.description, lead + task_class.name)


def _key_completions(path: JsonPath) -> list[CompletionEntry]:
    if path and isinstance(path[-1], int) and _enum_values(path):  # an item of a list of fixed words
        return [CompletionEntry(v, "EnumMember", "value") for v in _enum_values(path)]
    required = _required(path)
    return [CompletionEntry(key, "Property", _type_name(node) + (" (required)" if key in required else ""),
                            _description(node), f"{key}: ")
            for key, node in schema_keys(path).items()]


def _expression_completions(context: str, before: str, task: ir.TaskIR | None) -> list[CompletionEntry]:
    if _CLASS_STRING.search(before) is not None:
        return [_class_entry(c) for c in task.classes] if task else []
    if _in_string(before):
        return []
    if _LEXICON_REF.search(before) is not None:
        return [_lexicon_entry(lexicon) for lexicon in task.lexicons] if task else []
    entries: list[CompletionEntry] = []
    if context in ("rule", "constraint") and task is not None:
        entries += [CompletionEntry(f.name, "Field", f.type, f.description) for f in task.fields]
    if context in ("rule", "constraint"):
        entries.append(CompletionEntry("lexicon", "Module", "lexicon.NAME", "A word list of `lexicons`."))
    if context == "constraint":
        entries.append(CompletionEntry("label", "Variable", "the class label", "The example's class."))
    if context == "criterion":
        entries += [CompletionEntry(name, "Variable", "per-class metric" if name in PER_CLASS_METRICS else "number",
                                    f'`{name}["CLASS"]`' if name in PER_CLASS_METRICS else "")
                    for name in METRIC_NAMES]
    entries += [CompletionEntry(f.name, "Function", function_signature(f), f.summary) for f in FUNCTIONS.values()]
    return entries


def _lexicon_entry(lexicon: ir.Lexicon) -> CompletionEntry:
    size = len(lexicon.words)
    return CompletionEntry(lexicon.name, "Reference", f"lexicon, {size} entr{'y' if size == 1 else 'ies'}",
                           _lexicon_summary(lexicon))


def _lexicon_summary(lexicon: ir.Lexicon) -> str:
    source = f" (from `{lexicon.file}`)" if lexicon.file else ""
    shown = ", ".join(lexicon.words[:_LEXICON_PREVIEW])
    more = ", …" if len(lexicon.words) > _LEXICON_PREVIEW else ""
    count = len(lexicon.words)
    return f"**lexicon `{lexicon.name}`**: {count} entr{'y' if count == 1 else 'ies'}{source}\n\n{shown}{more}"


# -- hover and definition ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class HoverText:
    markdown: str
    range: Range


@dataclass(frozen=True)
class _Word:
    text: str
    start: int  # code points
    end: int
    line: str
    context: CursorContext


def _word_at(lines: Sequence[str], line: int, character: int, encoding: str) -> _Word | None:
    current = lines[line] if line < len(lines) else ""
    index = decode_column(current, character, encoding)
    for match in _WORD.finditer(current):
        if match.start() <= index <= match.end():
            return _Word(match.group(), match.start(), match.end(), current,
                         cursor_context(lines, line, match.start()))
    return None


def _word_range(word: _Word, line: int, encoding: str) -> Range:
    return Range(Position(line, encode_column(word.line, word.start, encoding)),
                 Position(line, encode_column(word.line, word.end, encoding)))


def _is_key(word: _Word) -> bool:
    return word.context.at_key and word.line[word.end:].lstrip(" \t\"'").startswith(":")


def _by_name(items: Iterable[Any], name: str) -> Any:
    return next((item for item in items if item.name == name), None)


def hover(text: str, line: int, character: int, task: ir.TaskIR | None,
          encoding: str = "utf-16") -> HoverText | None:
    """The reference text of what is under the cursor: a function, a lexicon, a key, a rationale, a class."""
    lines = split_lines(text)
    word = _word_at(lines, line, character, encoding)
    if word is None:
        return None
    markdown = _hover_markdown(word, task)
    return HoverText(markdown, _word_range(word, line, encoding)) if markdown else None


def _hover_markdown(word: _Word, task: ir.TaskIR | None) -> str | None:
    name, context = word.text, word.context
    if task is not None and word.line[: word.start].endswith("lexicon."):
        lexicon = _by_name(task.lexicons, name)
        return _lexicon_summary(lexicon) if lexicon else None
    if name in FUNCTIONS and word.line[word.end:].lstrip().startswith("(") and not _is_key(word):
        return function_reference(FUNCTIONS[name])
    if _is_key(word):
        return _key_markdown(context.path, name, task)
    if task is None:
        return None
    rationale = next((r for r in task.rationales if r.id == name), None)
    if rationale is not None:
        rule = "with a rule" if rationale.rule else "no rule"
        return f"**rationale `{rationale.id}`** → class `{rationale.class_name}` ({rule})\n\n{rationale.text}"
    if (task_class := _by_name(task.classes, name)) is not None:
        return f"**class `{task_class.name}`**\n\n{task_class.description}"
    if expression_context(context) in ("rule", "constraint") and (field := _by_name(task.fields, name)):
        return _field_markdown(field)
    return None


def _key_markdown(path: JsonPath, key: str, task: ir.TaskIR | None) -> str | None:
    if task is not None and path == ("classes",) and (task_class := _by_name(task.classes, key)):
        return f"**class `{task_class.name}`**\n\n{task_class.description}"
    if task is not None and path == ("lexicons",) and (lexicon := _by_name(task.lexicons, key)):
        return _lexicon_summary(lexicon)
    if task is not None and path == ("input",) and (field := _by_name(task.fields, key)):
        return _field_markdown(field)
    node = schema_keys(path).get(key)
    if node is None:
        return None
    kind = _type_name(node)
    required = " (required)" if key in _required(path) else ""
    return f"**`{key}`**{': ' + kind if kind else ''}{required}\n\n{_description(node)}".rstrip()


def _field_markdown(field: ir.InputField) -> str:
    optional = ", optional" if field.optional else ""
    return f"**input field `{field.name}`**: {field.type}{optional}\n\n{field.description}".rstrip()


def definition(text: str, line: int, character: int, task: ir.TaskIR | None,
               encoding: str = "utf-16") -> Range | None:
    """Where the name under the cursor is defined in the task file: a lexicon (from `lexicon.NAME`), a class
    (from `class: X`, `label: X` or a quoted class name in an expression), an input field (in an
    expression)."""
    if task is None:
        return None
    lines = split_lines(text)
    word = _word_at(lines, line, character, encoding)
    if word is None or _is_key(word):
        return None
    target: Any = None
    if word.line[: word.start].endswith("lexicon."):
        target = _by_name(task.lexicons, word.text)
    elif _is_class_value(word.context) or word.line[word.start - 1: word.start] in ("\"", "'"):
        target = _by_name(task.classes, word.text)
    elif expression_context(word.context) in ("rule", "constraint"):
        target = _by_name(task.fields, word.text)
    return span_range(target.span, lines, encoding) if target is not None else None


__all__ = [
    "CompletionEntry", "CursorContext", "EditorDiagnostic", "HoverText", "Position", "Range", "compile_source",
    "completions", "cursor_context", "decode_column", "definition", "editor_diagnostics", "encode_column",
    "expression_context", "function_reference", "function_signature", "hover", "schema_keys", "span_range",
    "split_lines",
]
