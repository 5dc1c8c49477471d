"""`taskc check`: report every error and warning of one or more task files."""

from __future__ import annotations

import argparse

from taskc.compiler.driver import compile_task

from .output import add_format_argument, errors_only, print_diagnostics

NAME = "check"
HELP = "check task files and report every error and warning"
DESCRIPTION = """\
Check task files like a compiler checks a program: YAML syntax and limits, the
structure (against the JSON Schema of `taskc schema`), every rule, constraint
and pass criterion (parsed and type-checked), names (with "did you mean"),
files named by the task, and the prompt templates. Nothing is written.
Every error of a stage is reported in one run; the semantic checks run once
the structure is right, so a structure error hides them until it is fixed.

Diagnostics look like `file:line:col: error[CODE]: message`, with the source
line and a caret. Codes are listed in spec/reference.md."""
EPILOG = """\
examples:
  taskc check examples/keto.task.yaml
  taskc check --format json examples/*.task.yaml | jq '.[] | select(.severity=="error")'

exit status: 0 no errors (warnings allowed), 1 errors, 2 usage error."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="task files (*.task.yaml)")
    add_format_argument(parser)
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="allow files named by the task to live outside its directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only, no warnings or summary")


def run(args: argparse.Namespace) -> int:
    failed = False
    collected = []
    sources: dict[str, str] = {}
    for spec in args.specs:
        result = compile_task(spec, allow_outside=args.allow_outside_paths, plan_data=False)
        diagnostics = errors_only(result.diagnostics, args.quiet)
        collected.extend(diagnostics)
        sources.update(result.sources)
        failed |= not result.ok
        if args.format == "text":
            print_diagnostics(diagnostics, result.sources, "text", summary=False)
    if args.format == "json":
        print_diagnostics(collected, sources, "json")
    elif not args.quiet:
        import sys

        from taskc.compiler.diagnostics import summary_line

        files = len(args.specs)
        status = "failed" if failed else "ok"
        print(f"checked {files} task file{'s' if files != 1 else ''}: {summary_line(collected)} ({status})",
              file=sys.stderr)
    return 1 if failed else 0
