"""`taskc diff`: what a change of a task file does, for review (two files, or a git revision vs the tree).

Both versions are compiled by the same façade as `taskc compile`; the
comparison is `compiler.semantic_diff`, the output `compiler.diff_render`.
With `--git REV`, the old version is read with `git show REV:path` — the task
file and every file it names (lexicon files, templates, pool, gold set) — into
a temporary directory that mirrors the repository's layout, so relative paths
resolve exactly as they did at that revision; nothing is checked out.
"""

from __future__ import annotations

import argparse
import posixpath
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskc.compiler.diagnostics import DiagnosticBag, ExitStatus, TaskcError
from taskc.compiler.diff_render import FORMATS, render
from taskc.compiler.driver import CompileResult, compile_task, named_files
from taskc.compiler.loader import load_task_file
from taskc.compiler.semantic_diff import diff_compiled

from .output import add_prices_argument, load_prices, print_diagnostics, use_color

NAME = "diff"
HELP = "show what a change of a task file does: rationales, prompts, plan and cost"
DESCRIPTION = """\
Compile two versions of a task file and show the difference in meaning:
fields, classes, lexicon words, rationales, constraints and the pass criterion
added, removed or changed (matched by name and id, not by position); a unified
diff of every rendered prompt that changed; the plan's delta (LLM calls,
examples per class, ESTIMATED tokens and cost, calls that need new LLM work);
finetune.json and eval.json changes; data and template files whose content
changed.

  taskc diff OLD.task.yaml NEW.task.yaml
  taskc diff --git REV SPEC     SPEC as it is at git revision REV (with the files
                                it names, read by `git show`) against the working tree"""
EPILOG = """\
examples:
  taskc diff examples/keto.task.yaml /tmp/keto-edited.task.yaml
  taskc diff --git HEAD examples/keto.task.yaml
  taskc diff --git origin/main examples/keto.task.yaml --format markdown > comment.md

exit status: 0 no semantic change, 1 changes, 2 errors (a task file with errors on
either side, a git problem, or a usage error)."""

EXIT_SAME, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC",
                        help="OLD NEW task files, or one SPEC with --git")
    parser.add_argument("--git", metavar="REV", help="compare SPEC at git revision REV with the working tree")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (default; coloured on a terminal), markdown (a pull-request comment), json")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the text format: auto (only on a terminal, default), always, never")
    parser.add_argument("-U", "--context", type=int, default=3, metavar="N",
                        help="lines of context in prompt diffs (default 3)")
    add_prices_argument(parser)
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="allow files named by the task to live outside its directory")


def run(args: argparse.Namespace) -> int:
    if args.git is None and len(args.specs) != 2:
        return _usage("give two task files (OLD NEW), or --git REV and one task file")
    if args.git is not None and len(args.specs) != 1:
        return _usage("with --git REV give exactly one task file")
    if args.context < 0:
        return _usage("--context must be 0 or more")
    prices = load_prices(args.prices)
    options: dict[str, Any] = {"allow_outside": args.allow_outside_paths, "prices": prices}
    if args.git is not None:
        with tempfile.TemporaryDirectory(prefix="taskc-diff-") as scratch:
            try:
                old_path, old_label = materialise_revision(args.git, Path(args.specs[0]), Path(scratch))
            except GitError as exc:
                print(f"taskc: error: {exc}", file=sys.stderr)
                return exc.exit_status
            old = compile_task(old_path, display_name=old_label, **options)
        new_label = args.specs[0]
    else:
        old_label, new_label = args.specs
        old = compile_task(old_label, **options)
    new = compile_task(new_label, **options)
    if not _both_compiled(old, new):
        return EXIT_ERROR
    assert old.compiled is not None and new.compiled is not None
    diff = diff_compiled(old.compiled, new.compiled, old_label, new_label, context_lines=args.context)
    color = args.color == "always" or (args.color == "auto" and use_color(sys.stdout))
    sys.stdout.write(render(diff, args.format, color=color))
    return EXIT_CHANGED if diff.has_changes else EXIT_SAME


def _usage(message: str) -> int:
    print(f"taskc diff: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _both_compiled(old: CompileResult, new: CompileResult) -> bool:
    ok = True
    for result in (old, new):
        if result.compiled is None:
            print_diagnostics(result.diagnostics, result.sources, "text")
            ok = False
    if not ok:
        print("taskc diff: error: fix the errors above; nothing was compared", file=sys.stderr)
    return ok


# -- reading a revision with git -------------------------------------------------------------------

class GitError(TaskcError):
    """A revision that git cannot give (not a repository, an unknown revision, git missing)."""

    exit_status = ExitStatus.USAGE  # diff's own "error" status: 1 already means "the task changed"


@dataclass(frozen=True)
class _Repository:
    spec_dir: Path
    prefix: str  # the spec's directory relative to the repository root, "" or ending in "/"

    def show(self, revision: str, repo_path: str) -> bytes | None:
        """The bytes of ``repo_path`` at ``revision``, or None when the file is not there."""
        done = _git(self.spec_dir, "cat-file", "-e", f"{revision}:{repo_path}", check=False)
        if done.returncode != 0:
            return None
        return _git(self.spec_dir, "show", f"{revision}:{repo_path}").stdout


def materialise_revision(revision: str, spec: Path, scratch: Path) -> tuple[Path, str]:
    """Write the task file at ``revision``, and the files it names, under ``scratch`` in the repo layout.

    Returns the path of the old task file and its label (``REV:path/in/repo``).
    """
    if not revision or revision.startswith("-"):
        raise GitError(f"'{revision}' is not a git revision")
    spec_dir = spec.resolve().parent
    if not spec_dir.is_dir():
        raise GitError(f"directory of {spec} does not exist")
    prefix = _git(spec_dir, "rev-parse", "--show-prefix").stdout.decode("utf-8").strip()
    if _git(spec_dir, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", check=False).returncode:
        raise GitError(f"unknown git revision '{revision}'")
    repository = _Repository(spec_dir, prefix)
    spec_in_repo = posixpath.join(prefix, spec.name)
    text = repository.show(revision, spec_in_repo)
    if text is None:
        raise GitError(f"{spec_in_repo} does not exist at revision {revision}")
    old_spec = _write(scratch, spec_in_repo, text)
    label = f"{revision}:{spec_in_repo}"
    for relative in _named_files(old_spec, label):
        in_repo = posixpath.normpath(posixpath.join(prefix, relative))
        if posixpath.isabs(relative) or in_repo == ".." or in_repo.startswith("../"):
            continue  # outside the repository: the compiler reports it, as it would for the working tree
        content = repository.show(revision, in_repo)
        if content is not None:  # a missing file is reported by the compiler with the task file's position
            _write(scratch, in_repo, content)
    return old_spec, label


def _named_files(spec: Path, label: str) -> list[str]:
    doc = load_task_file(spec, label, DiagnosticBag())
    return named_files(doc.data if doc is not None else None)


def _write(root: Path, repo_path: str, content: bytes) -> Path:
    target = root / repo_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return target


def _git(cwd: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *arguments], capture_output=True, timeout=60)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {arguments[0]} timed out") from None
    if check and done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {arguments[0]} failed: {message[-1] if message else 'exit ' + str(done.returncode)}")
    return done
