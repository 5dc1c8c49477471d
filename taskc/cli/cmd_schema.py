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
against. Point your editor at it, e.g. with a first line
  # yaml-language-server: $schema=path/to/task.schema.json"""
EPILOG = """\
examples:
  taskc schema > task.schema.json                 the schema, for an editor or a CI check
  taskc schema -o .vscode/task.schema.json         the same, written atomically
  taskc schema | python3 -m json.tool | less       read what a task file may contain

exit status: 0 written, 4 the output file cannot be written (2 if it is a directory)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def run(args: argparse.Namespace) -> int:
    text = json.dumps(task_schema(), indent=2, ensure_ascii=False) + "\n"
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
