"""`taskc schema`: print the JSON Schema of task files (what editors complete keys from)."""

from __future__ import annotations

import argparse
import json
import sys

from taskc.compiler.structure import task_schema

NAME = "schema"
HELP = "print the JSON Schema of task files"
DESCRIPTION = """\
Print the JSON Schema (draft 2020-12) that `taskc check` validates task files
against. Point your editor at it, e.g. with a first line
  # yaml-language-server: $schema=path/to/task.schema.json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def run(args: argparse.Namespace) -> int:
    text = json.dumps(task_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0
