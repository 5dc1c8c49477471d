"""Stage 1: read a task file into plain data plus a map of source positions.

PyYAML's event stream is scanned first to enforce the resource limits (document
size, nesting depth, node count including alias expansion, allowed tags), so a
hostile file is rejected before anything recursive or expensive runs. The file
is then composed into nodes (never constructed with Python tags) and converted
into JSON-like data; every value and key gets a `Span`, addressed by its path
(``("rationales", 0, "rule")``), so that later stages can locate anything they
complain about. Duplicate keys, which PyYAML silently accepts, are errors here.
"""

from __future__ import annotations

import errno
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnostics import DiagnosticBag, Span
from .paths import UnsafeFileError, read_regular_file

if TYPE_CHECKING:  # PyYAML is imported where text is parsed: `taskc run` gets its task compiled elsewhere
    import yaml

JsonPath = tuple[str | int, ...]

MAX_FILE_BYTES = 2 * 1024 * 1024  # checked from the file's size, before anything is read
MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_EXPANDED_CHARS = 8 * 1024 * 1024  # scalar text after alias expansion (the file itself is at most 2 MiB)

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_ALLOWED_TAGS = _SCALAR_TAGS | {_CORE + "map", _CORE + "seq", "!"}


@dataclass(frozen=True)
class ScalarSource:
    """Where a scalar's text sits in the file, so that offsets inside it can be mapped back."""

    span: Span
    style: str | None


@dataclass
class SourceDocument:
    path: str
    text: str
    data: Any = None
    value_spans: dict[JsonPath, Span] = field(default_factory=dict)
    key_spans: dict[JsonPath, Span] = field(default_factory=dict)
    scalars: dict[JsonPath, ScalarSource] = field(default_factory=dict)
    parsed: bool = False

    @functools.cached_property
    def lines(self) -> list[str]:
        """The text's lines, split once: every located expression error looks into them."""
        return self.text.splitlines()

    def span_of(self, path: JsonPath) -> Span:
        """The span of the value at ``path``, or of its nearest located ancestor."""
        for cut in range(len(path), -1, -1):
            found = self.value_spans.get(path[:cut])
            if found is not None:
                return found
        return Span(self.path, 1, 1)

    def key_span_of(self, path: JsonPath) -> Span:
        return self.key_spans.get(path) or self.span_of(path)

    def offset_span(self, path: JsonPath, start: int, end: int) -> Span:
        """The span of characters ``start:end`` of the string scalar at ``path``."""
        scalar = self.scalars.get(path)
        if scalar is None:
            return self.span_of(path)
        positions = _scalar_positions(self.lines, scalar)
        if not positions:
            return scalar.span
        first = positions[min(start, len(positions) - 1)]
        last = positions[min(max(end - 1, start), len(positions) - 1)]
        return Span(self.path, first[0], first[1], last[0], last[1] + 1)


def _scalar_positions(lines: list[str], scalar: ScalarSource) -> list[tuple[int, int]]:
    """Approximate (line, column) of each character of a scalar's value.

    Exact for plain and quoted single-line scalars and for literal blocks; for
    folded or multi-line flow scalars the line breaks become one separator
    character, which is what YAML's folding does in the common case.
    """
    span = scalar.span
    positions: list[tuple[int, int]] = []
    block = scalar.style in ("|", ">")
    body = range(span.line + 1 if block else span.line, span.end_line + 1)
    block_indent: int | None = None
    for line_no in body:
        if line_no > len(lines):
            break
        raw = lines[line_no - 1]
        if block:
            if not raw.strip():
                positions.append((line_no, 1))
                continue
            indent = len(raw) - len(raw.lstrip())
            if block_indent is None:
                block_indent = indent
            if indent < block_indent:
                break  # the block ended: this line belongs to the next key
            start_col = block_indent + 1  # more-indented lines keep their extra spaces in the value
        elif line_no == span.line:
            start_col = span.column + (1 if scalar.style in ('"', "'") else 0)
        else:
            start_col = len(raw) - len(raw.lstrip()) + 1  # flow scalars fold leading whitespace away
        stripped = raw[start_col - 1 :].rstrip()
        positions.extend((line_no, start_col + i) for i in range(len(stripped)))
        positions.append((line_no, start_col + len(stripped)))  # the separator after the line
    return positions


def load_task_file(path: Path, display_name: str, bag: DiagnosticBag) -> SourceDocument | None:
    """Read and parse ``path``; report problems into ``bag`` and return None when unusable."""
    text = read_task_text(path, display_name, bag)
    return None if text is None else parse_task_text(text, display_name, bag)


def read_task_text(path: Path, display_name: str, bag: DiagnosticBag) -> str | None:
    """The text of ``path`` within the size limit, or None with the problem reported into ``bag``.

    The task file must be a regular file inside its own directory once links are resolved (a link to a
    sibling is fine, a link to /proc/self/environ or a secret elsewhere is not), and is never read when
    it is refused: the diagnostic carries no source line, so nothing of the file reaches the log."""
    where = Span(display_name, 1, 1)
    try:
        raw = read_regular_file(path, MAX_FILE_BYTES, inside=path.absolute().parent, what="task file")
    except UnsafeFileError as exc:
        if exc.errno == errno.EFBIG:
            bag.error(where, "E002", str(exc.strerror))
        else:
            bag.error(where, "E001", f"cannot read task file: {exc.strerror}",
                      "a task file must be a regular file inside its own directory (a link may point to one)")
        return None
    except OSError as exc:
        bag.error(where, "E001", f"cannot read task file: {exc.strerror or exc}")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bag.error(where, "E001", f"task file is not valid UTF-8 (byte {exc.start})")
        return None
    return text


def parse_task_text(text: str, display_name: str, bag: DiagnosticBag) -> SourceDocument:
    """Parse YAML text. The document is returned even on errors (for the source lines of
    diagnostics); ``parsed`` tells whether ``data`` is usable."""
    import yaml

    doc = SourceDocument(display_name, text.replace("\r\n", "\n"))
    if not _check_event_limits(doc, bag):
        return doc
    try:
        root = yaml.compose(doc.text, Loader=_safe_loader())
    except yaml.MarkedYAMLError as exc:
        bag.error(_mark_span(display_name, exc.problem_mark or exc.context_mark), "E001",
                  f"YAML syntax error: {exc.problem or exc.context}")
        return doc
    except yaml.YAMLError as exc:
        bag.error(Span(display_name, 1, 1), "E001", f"YAML error: {exc}")
        return doc
    if root is None:
        bag.error(Span(display_name, 1, 1), "E011", "task file is empty")
        return doc
    converter = _Converter(doc, bag)
    doc.data = converter.convert(root, ())
    doc.parsed = True
    return doc


def _check_event_limits(doc: SourceDocument, bag: DiagnosticBag) -> bool:
    """Walk the event stream (iterative, cheap) and enforce depth, node and tag limits.

    An alias counts as many nodes, and as much scalar text, as the anchored subtree it repeats, so an
    alias bomb ("billion laughs", or one big scalar repeated) is stopped after ``MAX_NODES`` expanded
    nodes or ``MAX_EXPANDED_CHARS`` expanded characters, long before anything is expanded in memory.
    """
    import yaml

    nodes = expanded = 0  # nodes, and characters of scalars, after alias expansion
    anchor_sizes: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, characters) it stands for
    open_collections: list[list[Any]] = []  # [anchor, expanded nodes, expanded characters] per open collection
    try:
        for event in yaml.parse(doc.text, Loader=_safe_loader()):
            span = _event_span(doc.path, event)
            added = characters = 0
            if isinstance(event, yaml.AliasEvent):
                added, characters = anchor_sizes.get(event.anchor or "", (1, 0))
            elif isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                tag = event.tag
                if tag is not None and tag not in _ALLOWED_TAGS:
                    bag.error(span, "E002", f"YAML tag '{tag}' is not allowed in a task file",
                              "task files are plain data: remove the tag")
                    return False
                added = 1
                if isinstance(event, yaml.ScalarEvent):
                    characters = len(event.value)
                    if event.anchor:
                        anchor_sizes[event.anchor] = (1, characters)
            for collection in open_collections:
                collection[1] += added
                collection[2] += characters
            nodes += added
            expanded += characters
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                open_collections.append([event.anchor, 1, 0])
                if len(open_collections) > MAX_DEPTH:
                    bag.error(span, "E002", f"nesting is deeper than {MAX_DEPTH} levels")
                    return False
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)) and open_collections:
                anchor, size, text = open_collections.pop()
                if anchor:
                    anchor_sizes[anchor] = (size, text)
            if nodes > MAX_NODES:
                bag.error(span, "E002",
                          f"task file expands to more than {MAX_NODES} YAML nodes (an alias counts once "
                          "per use)", "this looks like an alias bomb; write the data out instead")
                return False
            if expanded > MAX_EXPANDED_CHARS:
                bag.error(span, "E002",
                          f"task file expands to more than {MAX_EXPANDED_CHARS:,} characters of text (an alias "
                          "counts its anchor's text once per use)", "this looks like an alias bomb; write the data "
                          "out instead")
                return False
    except yaml.MarkedYAMLError as exc:
        span = _mark_span(doc.path, exc.problem_mark or exc.context_mark)
        problem = exc.problem or exc.context or "unreadable YAML"
        if "nesting depth" in problem:  # LibYAML's own guard fires before ours can
            bag.error(span, "E002", f"nesting is deeper than {MAX_DEPTH} levels")
        else:
            bag.error(span, "E001", f"YAML syntax error: {problem}")
        return False
    except yaml.YAMLError as exc:
        bag.error(Span(doc.path, 1, 1), "E001", f"YAML error: {exc}")
        return False
    return True


def _event_span(file: str, event: Any) -> Span:
    return _mark_span(file, event.start_mark)


@functools.cache
def _safe_loader() -> Any:
    """LibYAML's C parser when PyYAML was built with it (the usual wheels are): ~10x faster, same events."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _mark_span(file: str, mark: Any) -> Span:
    """Where a YAML mark points (0-based line and column), or the file's start when there is none."""
    return Span(file, mark.line + 1, mark.column + 1) if mark else Span(file, 1, 1)


class _Converter:
    """Turns composed YAML nodes into JSON-like data, recording spans and duplicate keys."""

    def __init__(self, doc: SourceDocument, bag: DiagnosticBag) -> None:
        import yaml

        self.yaml = yaml  # imported here, once per parse (see the module's imports)
        self.doc = doc
        self.bag = bag
        self.constructor = yaml.constructor.SafeConstructor()

    def span(self, node: yaml.Node) -> Span:
        start, end = node.start_mark, node.end_mark
        return Span(self.doc.path, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def convert(self, node: yaml.Node, path: JsonPath) -> Any:
        span = self.doc.value_spans[path] = self.span(node)
        if isinstance(node, self.yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, self.yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node, path, span)

    def _mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _CORE + "merge":
                self.bag.error(self.span(key_node), "E002", "YAML merge keys ('<<') are not supported",
                               "write the keys out")
                continue
            if not isinstance(key_node, self.yaml.ScalarNode):
                self.bag.error(self.span(key_node), "E012", "mapping keys must be plain strings")
                continue
            key = str(key_node.value)
            if key in result:
                first = self.doc.key_spans[path + (key,)]
                self.bag.error(self.span(key_node), "E003", f"duplicate key '{key}'",
                               f"first defined at line {first.line}")
                continue
            self.doc.key_spans[path + (key,)] = self.span(key_node)
            result[key] = self.convert(value_node, path + (key,))
        return result

    def _scalar(self, node: yaml.Node, path: JsonPath, span: Span) -> Any:
        self.doc.scalars[path] = ScalarSource(span, getattr(node, "style", None))
        if node.tag in (_CORE + "timestamp", _CORE + "str") or node.tag == "!":
            return str(node.value)
        try:
            return self.constructor.construct_object(node, deep=True)
        except (self.yaml.YAMLError, ValueError, OverflowError) as exc:
            self.bag.error(span, "E001", f"cannot read scalar: {exc}")
            return None
