"""`taskc lsp`: a language server for task files over standard input and output, for editors.

The pygls glue only: what the server says (diagnostics at editor positions, completions, hover text,
definitions) comes from the pure functions of `taskc.compiler.lsp_support`. pygls is an optional
dependency (`pip install 'taskc-compiler[lsp]'`), imported only when the server starts, so the rest of the
command line works without it. Both pygls 1.3+ and 2.x are supported.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from taskc._version import __version__
from taskc.compiler import ir
from taskc.compiler.lsp_support import (
    CompletionEntry,
    EditorDiagnostic,
    Range,
    compile_source,
    completions,
    definition,
    editor_diagnostics,
    hover,
)

from .output import EXIT_USAGE

NAME = "lsp"
HELP = "run the language server for editors (LSP over stdio)"
DESCRIPTION = """\
Run a Language Server Protocol server on standard input and output, for
editors: the diagnostics of `taskc check` as you type (the unsaved text is
compiled, the files it names are read next to the task file), completion of
keys, classes, fields, lexicons and functions, hover text (a function's
reference, a lexicon's words, a rationale, a key's meaning) and go to
definition of lexicons, classes and fields. Start it from the editor, not by
hand; docs/editors.md shows VS Code and Neovim setups.

Needs the optional dependency pygls: pip install 'taskc-compiler[lsp]'."""
EPILOG = """\
examples:
  taskc lsp                                      what an editor runs (Neovim: vim.lsp.start)
  pip install 'taskc-compiler[lsp]'              install the server's dependency

exit status: 0 the editor ended the session, 2 pygls is not installed."""

INSTALL_COMMAND = "pip install 'taskc-compiler[lsp]'"
DEBOUNCE_SECONDS = 0.3  # typing pauses this long before the buffer is compiled
TRIGGER_CHARACTERS = [".", '"', "'", "[", ":"]
TASK_FILE_SUFFIXES = (".task.yaml", ".task.yml")  # other YAML files the editor opens are left alone

_T = TypeVar("_T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true",
                        help="talk over standard input and output (the only transport; editors often pass it)")


def run(args: argparse.Namespace) -> int:
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError:
        print(f"taskc: error: `taskc lsp` needs pygls, an optional dependency; install it with: {INSTALL_COMMAND}",
              file=sys.stderr)
        return EXIT_USAGE
    TaskLanguageServer().start()
    return 0


class TaskLanguageServer:
    """One pygls server and what it remembers per open document: the pending compilation and the IR of
    the latest compilation that got that far (completion and hover keep using it while the file is broken)."""

    def __init__(self) -> None:
        from lsprotocol import types

        try:
            server_module = importlib.import_module("pygls.lsp.server")  # pygls 2
        except ImportError:  # pragma: no cover - pygls 1.x
            server_module = importlib.import_module("pygls.server")

        self.types = types
        self.server: Any = server_module.LanguageServer("taskc", __version__)
        self.tasks: dict[str, ir.TaskIR] = {}
        self.pending: dict[str, asyncio.Future[None]] = {}
        # one compilation at a time, off the event loop, so that hover and completion answer meanwhile
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskc-compile")
        self._register()

    def start(self) -> None:
        self.server.start_io()

    def _register(self) -> None:
        types, feature = self.types, self.server.feature

        @feature(types.TEXT_DOCUMENT_DID_OPEN)
        async def did_open(params: Any) -> None:
            self._schedule(params.text_document.uri, 0)

        @feature(types.TEXT_DOCUMENT_DID_CHANGE)
        async def did_change(params: Any) -> None:
            self._schedule(params.text_document.uri, DEBOUNCE_SECONDS)

        @feature(types.TEXT_DOCUMENT_DID_SAVE)
        async def did_save(params: Any) -> None:
            self._schedule(params.text_document.uri, 0)

        @feature(types.TEXT_DOCUMENT_DID_CLOSE)
        async def did_close(params: Any) -> None:
            uri = params.text_document.uri
            if (pending := self.pending.pop(uri, None)) is not None:
                pending.cancel()
            self.tasks.pop(uri, None)
            self._publish(uri, [], None)

        @feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS))
        def completion(params: Any) -> Any:
            entries = self._answer(params, completions)
            if entries is None:
                return None
            return types.CompletionList(is_incomplete=False, items=[self._completion_item(e) for e in entries])

        @feature(types.TEXT_DOCUMENT_HOVER)
        def on_hover(params: Any) -> Any:
            found = self._answer(params, hover)
            if found is None:
                return None
            return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=found.markdown),
                               range=self._range(found.range))

        @feature(types.TEXT_DOCUMENT_DEFINITION)
        def on_definition(params: Any) -> Any:
            found = self._answer(params, definition)
            return None if found is None else types.Location(uri=params.text_document.uri, range=self._range(found))

    def _answer(self, params: Any, question: Callable[[str, int, int, ir.TaskIR | None, str], _T]) -> _T | None:
        """``question`` asked about the position of a request, on the buffer's text and the latest IR."""
        uri, position = params.text_document.uri, params.position
        if not _is_task_file(uri):
            return None
        return question(self._text(uri), position.line, position.character, self.tasks.get(uri), self._encoding())

    # -- diagnostics ------------------------------------------------------------------------------------

    def _schedule(self, uri: str, delay: float) -> None:
        """Compile ``uri`` after ``delay`` seconds, replacing a compilation still waiting (the debounce)."""
        if not _is_task_file(uri):
            return
        if (previous := self.pending.pop(uri, None)) is not None:
            previous.cancel()
        self.pending[uri] = asyncio.ensure_future(self._check(uri, delay))

    async def _check(self, uri: str, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            document = self.server.workspace.get_text_document(uri)
            text, version, path = document.source, document.version, self._path(uri)
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.executor, compile_source, path, text)
        except asyncio.CancelledError:
            return  # a newer change came in: its own compilation publishes
        finally:
            if self.pending.get(uri) is asyncio.current_task():
                del self.pending[uri]
        if result.task is not None:
            self.tasks[uri] = result.task
        self._publish(uri, editor_diagnostics(result.diagnostics, text, str(path), self._encoding()), version)

    def _publish(self, uri: str, diagnostics: list[EditorDiagnostic], version: int | None) -> None:
        types = self.types
        params = types.PublishDiagnosticsParams(uri=uri, version=version, diagnostics=[
            types.Diagnostic(range=self._range(d.range), message=d.message, code=d.code, source=d.source,
                             severity=types.DiagnosticSeverity(d.severity))
            for d in diagnostics])
        send = getattr(self.server, "text_document_publish_diagnostics", None)
        if send is not None:
            send(params)  # pygls 2
        else:  # pragma: no cover - pygls 1.x
            self.server.lsp.publish_diagnostics(params)

    # -- conversions ------------------------------------------------------------------------------------

    def _text(self, uri: str) -> str:
        return str(self.server.workspace.get_text_document(uri).source)

    def _path(self, uri: str) -> Path:
        """The task file's path, for the files it names (a buffer of another scheme: in the server's
        directory)."""
        from pygls.uris import to_fs_path

        path = to_fs_path(uri) if uri.startswith("file:") else None
        return Path(path) if path else Path.cwd() / uri.rsplit("/", 1)[-1]

    def _encoding(self) -> str:
        """The position encoding agreed with the client at initialize (LSP's default: UTF-16)."""
        encoding = getattr(self.server.workspace, "position_encoding", None)
        return str(getattr(encoding, "value", encoding) or "utf-16")

    def _range(self, found: Range) -> Any:
        types = self.types
        return types.Range(start=types.Position(line=found.start.line, character=found.start.character),
                           end=types.Position(line=found.end.line, character=found.end.character))

    def _completion_item(self, entry: CompletionEntry) -> Any:
        types = self.types
        documentation = (types.MarkupContent(kind=types.MarkupKind.Markdown, value=entry.documentation)
                         if entry.documentation else None)
        return types.CompletionItem(label=entry.label, kind=getattr(types.CompletionItemKind, entry.kind),
                                    detail=entry.detail or None, documentation=documentation,
                                    insert_text=entry.insert_text)


def _is_task_file(uri: str) -> bool:
    """Whether the editor's document is a task file, by its name: a client that attaches the server to
    every YAML file (as generic VS Code clients do) gets nothing for docker-compose.yml."""
    return uri.split("?", 1)[0].lower().endswith(TASK_FILE_SUFFIXES)
