"""`taskc fmt`: rewrite task files in their canonical layout (or, with --check, say which are not)."""

from __future__ import annotations

import argparse
import difflib
import stat
import sys
from pathlib import Path

from taskc.compiler.formatting import FormatResult, format_file, format_text
from taskc.compiler.paths import write_atomic

from .output import print_diagnostics
from .spec_inputs import expand_specs

NAME = "fmt"
HELP = "format task files canonically, keeping comments and key order"
DESCRIPTION = """\
Give task files one canonical layout so that review diffs show meaning, not
whitespace: mappings indented by two spaces, sequence dashes two spaces under
their key, no trailing whitespace, no runs of blank lines, one final newline.
Comments, key order, quoting and block-scalar styles (| and >) are kept, and
lines are never re-wrapped. The result is checked to load to exactly the same
data as the original, so formatting never changes the compiled output.

Files are rewritten in place, keeping their permissions; a task file that is a
symbolic link is checked but not rewritten (format the file it points to). `-`
formats standard input to standard output."""
EPILOG = """\
examples:
  taskc fmt .                                 every *.task.yaml / *.task.yml below the directory
  taskc fmt examples/*.task.yaml
  taskc fmt --check examples/*.task.yaml      in CI or a pre-commit hook
  taskc fmt --diff examples/keto.task.yaml    show what would change, write nothing
  taskc fmt - < keto.task.yaml                for editors: stdin to stdout

exit status: 0 formatted (or already formatted), 1 a file is not formatted
(--check) or cannot be read as YAML, 2 usage error."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC",
                        help="task files, directories (searched for *.task.yaml), globs, or - for standard input")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a file is not formatted")
    parser.add_argument("--diff", action="store_true", help="write nothing; print what would change")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")


def run(args: argparse.Namespace) -> int:
    if "-" in args.specs and len(args.specs) > 1:
        print("taskc fmt: error: '-' (standard input) cannot be combined with files", file=sys.stderr)
        return 2
    if args.specs == ["-"]:
        return _format_stdin(args)
    specs = [spec.path for spec in expand_specs(args.specs)]  # directories and globs: their task files
    failed = unformatted = rewritten = 0
    for spec in specs:
        result = format_file(Path(spec), spec)
        if not result.ok:
            print_diagnostics(list(result.diagnostics), {spec: result.original}, "text")
            failed += 1
            continue
        if not result.changed:
            continue
        if args.diff:
            sys.stdout.write(_unified(result))
        if args.check or args.diff:
            unformatted += 1
            if not args.quiet:
                print(f"would reformat {spec}", file=sys.stderr)
            continue
        if Path(spec).is_symlink():  # renaming over the link would turn it into a regular file
            print(f"taskc fmt: error: {spec} is a symbolic link; not rewritten: run taskc fmt on the file it "
                  "points to", file=sys.stderr)
            failed += 1
            continue
        try:
            _write_atomically(Path(spec), result.formatted or "")
        except OSError as exc:
            print(f"taskc fmt: error: cannot write {spec}: {exc.strerror or exc}", file=sys.stderr)
            failed += 1
            continue
        unformatted += 1  # a file that could not be rewritten counts as failed only
        rewritten += 1
        if not args.quiet:
            print(f"reformatted {spec}", file=sys.stderr)
    if not args.quiet:
        print(_summary(len(specs), unformatted, rewritten, failed, args.check or args.diff), file=sys.stderr)
    return 1 if failed or (args.check and unformatted) else 0


def _format_stdin(args: argparse.Namespace) -> int:
    result = format_text(sys.stdin.read(), "<stdin>")
    if not result.ok:
        print_diagnostics(list(result.diagnostics), {"<stdin>": result.original}, "text")
        return 1
    if args.diff:
        sys.stdout.write(_unified(result))
    elif not args.check:
        sys.stdout.write(result.formatted or "")
    return 1 if args.check and result.changed else 0


def _unified(result: FormatResult) -> str:
    lines = difflib.unified_diff(result.original.splitlines(keepends=True),
                                 (result.formatted or "").splitlines(keepends=True),
                                 f"a/{result.name}", f"b/{result.name}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _write_atomically(path: Path, text: str) -> None:
    # Keep the file's permissions and owner, as an in-place edit would; lstat: write_atomic refuses a link.
    status = path.lstat()
    write_atomic(path, text.encode("utf-8"), mode=stat.S_IMODE(status.st_mode), owner=(status.st_uid, status.st_gid))


def _summary(files: int, unformatted: int, rewritten: int, failed: int, dry_run: bool) -> str:
    done = f"{unformatted} would be reformatted" if dry_run else f"{rewritten} reformatted"
    unchanged = files - unformatted - failed
    parts = [done, f"{unchanged} already formatted"]
    if failed:
        parts.append(f"{failed} with errors")
    return f"{files} task file{'s' if files != 1 else ''}: " + ", ".join(parts)
