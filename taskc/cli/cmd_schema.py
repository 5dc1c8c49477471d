"""`taskc schema`: print the JSON Schema of task files (what editors complete keys from)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from taskc.compiler.paths import write_atomic
from taskc.compiler.structure import task_schema

NAME = "schema"
HELP = "print the JSON Schema of task files"
DESCRIPTION = """\
Print the JSON Schema (draft 2020-12) that `taskc check` validates task files
against. `--install` sets up a repository for editors that use
yaml-language-server (VS Code's YAML extension, Neovim's yamlls, Helix, Zed):
it writes the schema to .vscode/task.schema.json and maps every *.task.yaml
and *.task.yml to it in .vscode/settings.json (other settings are kept).
A single file can also name it on its first line, relative to the file:
  # yaml-language-server: $schema=../.vscode/task.schema.json"""
EPILOG = """\
examples:
  taskc schema --install                          completion and validation in this repository's editors
  taskc schema > task.schema.json                 the schema, for an editor or a CI check
  taskc schema -o .vscode/task.schema.json         the same, written atomically
  taskc schema | python3 -m json.tool | less       read what a task file may contain

exit status: 0 written, 4 the output file cannot be written (2 if it is a directory,
or --install names no directory)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--install", nargs="?", const=".", metavar="DIR",
                        help="write the schema and the editor settings into the repository at DIR (default: .)")


def run(args: argparse.Namespace) -> int:
    text = json.dumps(task_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.install is not None:
        return _install(Path(args.install), text)
    if args.output:
        target = Path(args.output)
        if target.is_dir():
            print(f"taskc: error: {target} is a directory; name a file", file=sys.stderr)
            return 2
        try:
            write_atomic(target, text.encode("utf-8"))
        except OSError as exc:
            print(f"taskc: error: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
            return 4
    else:
        sys.stdout.write(text)
    return 0


def _install(root: Path, text: str) -> int:
    from .editor_setup import install

    if not root.is_dir():
        print(f"taskc: error: {root} is not a directory; name the repository's top folder", file=sys.stderr)
        return 2
    try:
        result = install(root, text)
    except OSError as exc:
        print(f"taskc: error: cannot write {exc.filename or root}: {exc.strerror or exc}", file=sys.stderr)
        return 4
    for path in result.written:
        print(f"taskc: wrote {path}", file=sys.stderr)
    for path in result.unchanged:
        print(f"taskc: {path} is up to date", file=sys.stderr)
    for path, snippet in result.left_alone:
        print(f"taskc: warning: {path} is not plain JSON (comments?), so it was left as it is; add this to it:\n"
              f"{snippet}", file=sys.stderr)
    return 0
