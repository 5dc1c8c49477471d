"""`taskc check`: report every error and warning of one or more task files."""

from __future__ import annotations

import argparse
import sys

from taskc.compiler.diagnostics import summary_line
from taskc.compiler.driver import compile_task

from .diagnostic_formats import render_github, render_sarif
from .output import errors_only, print_diagnostics
from .spec_inputs import STDIN, expand_specs

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
  taskc check .                                  every *.task.yaml / *.task.yml below the directory
  taskc check 'tasks/**/*.task.yaml'             a glob, expanded by taskc when the shell did not
  taskc check - --stdin-filename tasks/keto.task.yaml < buffer.yaml   an editor's unsaved text
  taskc check --format json examples/*.task.yaml | jq '.[] | select(.severity=="error")'
  taskc check --format github .                  errors as annotations on a pull request (GitHub Actions)
  taskc check --format sarif . > taskc.sarif     SARIF 2.1.0, for code-scanning tools

exit status: 0 no errors (warnings allowed), 1 errors, 2 usage error (also: a directory or
glob with no task file in it)."""

FORMATS = ("text", "json", "github", "sarif")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC",
                        help="task files, directories (searched for *.task.yaml), globs, or - for stdin")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text: compiler-style on stderr (default); json: an array on stdout; github: "
                             "workflow commands that GitHub shows as annotations; sarif: a SARIF 2.1.0 log")
    parser.add_argument("--stdin-filename", metavar="PATH",
                        help="the path the text read from - stands for: named in diagnostics, and the files the "
                             "task names are found next to it (default: <stdin> in the current directory)")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="allow files named by the task to live outside its directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only, no warnings or summary")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also name each task file checked, with its errors and warnings")


def run(args: argparse.Namespace) -> int:
    stdin_text = sys.stdin.read() if STDIN in args.specs else None
    inputs = expand_specs(args.specs, stdin_text, args.stdin_filename)
    failed = False
    collected = []
    sources: dict[str, str] = {}
    for spec in inputs:
        result = compile_task(spec.path, allow_outside=args.allow_outside_paths, text=spec.text, plan_data=False)
        diagnostics = errors_only(result.diagnostics, args.quiet)
        collected.extend(diagnostics)
        sources.update(result.sources)
        failed |= not result.ok
        if args.format == "text":
            print_diagnostics(diagnostics, result.sources, "text", summary=False)
        if args.verbose and not args.quiet:
            print(f"{spec.path}: {summary_line(result.diagnostics)}", file=sys.stderr)
    if args.format == "json":
        print_diagnostics(collected, sources, "json")
    elif args.format == "github":
        sys.stdout.write(render_github(collected))
    elif args.format == "sarif":
        sys.stdout.write(render_sarif(collected, [spec.path for spec in inputs]))
    if args.format in ("text", "github") and not args.quiet:
        files = len(inputs)
        status = "failed" if failed else "ok"
        print(f"checked {files} task file{'s' if files != 1 else ''}: {summary_line(collected)} ({status})",
              file=sys.stderr)
    return 1 if failed else 0
