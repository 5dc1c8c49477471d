"""`taskc predict`: label new inputs with the predictor a run trained, streaming, at scale."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from taskc.compiler import counted
from taskc.compiler.diagnostics import TaskcError
from taskc.compiler.driver import compile_task

if TYPE_CHECKING:
    from taskc.runtime.serving import ServingStats

from .extras import missing_run_extra
from .output import EXIT_INPUT_ERRORS, EXIT_OK, EXIT_RUNTIME_FAILURE, EXIT_USAGE, errors_only, print_diagnostics

NAME = "predict"
HELP = "label new inputs (JSONL) with the predictor a run trained"
DESCRIPTION = """\
Apply a run's trained predictor to new inputs: one JSON object per line with
the task's input fields, the way the pool is written. Each input gets one
JSON line, in input order:

  {"line": 7, "id": "a12", "label": "keto", "confidence": 0.93,
   "predictor": "labeling_functions", "rules": {"fat_and_protein": "keto"}}

"line" is the input's line number; "id" is copied when the input has one;
"predictor" says who decided (for the cascade rules_then_model: the rules
where one fired, else local_model); "rules" are the rules that fired.

RUN_DIR is what `taskc run` wrote (runs/<task> by default). The predictor is
the run's primary (eval.primary) unless --predictor says otherwise; the task
file is the one the run was trained from (recorded in RUN_DIR/model), or
--spec. A model trained for another version of the task (its fields,
classes, lexicons or rules changed since: the spec hash differs) is refused:
run `taskc run` again.

Input is read and answered in batches, so memory stays flat on millions of
lines. A bad line (not JSON, a missing field, a wrong type) is reported as
file:line: message on stderr and skipped, or stops the command with
--on-error stop (the answers before it are kept)."""
EPILOG = """\
examples:
  taskc predict runs/keto new_dishes.jsonl -o labelled.jsonl
  cat menu.jsonl | taskc predict runs/keto - | jq -r .label
  taskc predict runs/keto big.jsonl -o out.jsonl --on-error stop
  taskc predict runs/keto new.jsonl --predictor local_model --spec examples/keto.task.yaml
  OPENAI_BASE_URL=http://localhost:8000/v1 taskc predict runs/keto new.jsonl --predictor finetuned

exit status:
  0  every input was answered (with --on-error skip: bad lines skipped, counted on stderr)
  1  the task file has errors, the predictor is missing or was trained for another
     version of the task, the input cannot be read, or a bad line with --on-error stop
  2  usage error
  4  the output cannot be written (no such directory, disk full), or the embeddings
     endpoint of an embeddings student failed"""

PROGRESS_EVERY = 2.0  # seconds between progress lines on stderr
MAX_SHOWN_PROBLEMS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run's directory (what `taskc run -o` names)")
    parser.add_argument("input", metavar="INPUT.jsonl", help="inputs, one JSON object per line; - reads stdin")
    parser.add_argument("-o", "--output", metavar="OUT.jsonl",
                        help="write the answers here (atomically, when done) instead of stdout")
    parser.add_argument("--predictor", choices=("rules_then_model", "local_model", "labeling_functions",
                                                "rules_then_finetuned", "finetuned"),
                        help="serve this predictor instead of the run's primary (finetuned and "
                             "rules_then_finetuned: the run's finetune.provider student, when it trained one)")
    parser.add_argument("--base-url", metavar="URL",
                        help="the OpenAI-compatible endpoint an embeddings student embeds new inputs with "
                             "(default: OPENAI_BASE_URL; the key comes from OPENAI_API_KEY)")
    parser.add_argument("--spec", metavar="SPEC", help="the task file (default: the one the run was trained from)")
    parser.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                        help="on a bad input line: skip it (default) or stop")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")


def run(args: argparse.Namespace) -> int:
    if (missing := missing_run_extra(NAME)) is not None:
        print(f"taskc: error: {missing}", file=sys.stderr)
        return EXIT_USAGE
    from taskc.runtime.datafiles import input_lines
    from taskc.runtime.labeling import labeling_functions
    from taskc.runtime.predictor import (
        STUDENT_PREDICTORS,
        PredictorError,
        load_predictors,
        read_manifest,
        spec_path_of,
    )
    from taskc.runtime.serving import StopServing, serve

    model_dir = Path(args.run_dir) / "model"
    if not Path(args.run_dir).is_dir():
        print(f"taskc: error: {args.run_dir}: not a directory (RUN_DIR is what `taskc run` wrote, runs/<task> by "
              "default)", file=sys.stderr)
        return EXIT_USAGE
    try:
        manifest = read_manifest(model_dir)
        spec = Path(args.spec) if args.spec else spec_path_of(model_dir, manifest)
        if not args.spec and not spec.is_file():
            raise PredictorError(f"the task file the run was trained from is gone ({spec}); pass --spec SPEC")
        compiled = compile_task(str(spec), emit=False)  # the IR is all predict needs: no prompts, no plan
        print_diagnostics(errors_only(compiled.diagnostics, True), compiled.sources, "text")
        if not compiled.ok or compiled.task is None:
            return EXIT_INPUT_ERRORS
        task = compiled.task
        name = args.predictor or manifest.get("primary")
        with_student = name in STUDENT_PREDICTORS  # the client (openai, ~1.5 s to import) only when it is used
        predictors = load_predictors(model_dir, task, labeling_functions(task),
                                     _embedder_factory(args, task) if with_student else None,
                                     with_student=with_student)
        if name not in predictors.available:
            raise PredictorError(f"the run's primary predictor is '{name}', which `taskc predict` cannot serve "
                                 f"offline; pass --predictor with one of {', '.join(predictors.available)}")
    except TaskcError as exc:  # RUN_DIR is this command's input: a run it cannot serve is an input error
        print(f"taskc: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERRORS

    display = "<stdin>" if args.input == "-" else args.input
    problems: list[str] = []

    def on_bad_line(problem: str) -> None:
        problems.append(problem)
        if len(problems) <= MAX_SHOWN_PROBLEMS:
            print(f"taskc: {problem}", file=sys.stderr)
        if args.on_error == "stop":
            raise StopServing

    progress = _Progress(display, quiet=args.quiet)
    try:
        with input_lines(args.input) as lines, _Output(args.output) as out:
            stats = serve(lines, display, predictors, str(name), out.write, on_bad_line, progress.update)
            if args.on_error == "stop" and problems:
                out.keep_partial()
    except TaskcError as exc:  # the input file (1), or e.g. the embeddings endpoint failed (4): the error says
        print(f"taskc: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        print(f"taskc: error: cannot write {exc.filename or args.output or 'stdout'}: {exc.strerror or exc}; "
              "nothing half-written was left behind", file=sys.stderr)
        return EXIT_RUNTIME_FAILURE
    progress.done()
    if len(problems) > MAX_SHOWN_PROBLEMS:
        more = len(problems) - MAX_SHOWN_PROBLEMS
        print(f"taskc: ... and {counted(more, 'more problem')}", file=sys.stderr)
    if not args.quiet:
        labels = ", ".join(f"{label} {count:,}" for label, count in sorted(stats.by_label.items()))
        rate = stats.predicted / stats.seconds if stats.seconds else 0.0
        if args.on_error == "stop" and problems:
            skipped = f"; stopped at the first bad line ({problems[0].split(': ')[0]})"
        else:
            skipped = f"; {stats.bad:,} bad line{'s' if stats.bad != 1 else ''} skipped" if stats.bad else ""
        where = f" → {args.output}" if args.output else ""
        print(f"taskc: predicted {stats.predicted:,} of {stats.lines:,} line{'s' if stats.lines != 1 else ''} with "
              f"{name} ({labels}) in "
              f"{stats.seconds:.1f} s ({rate:,.0f}/s){skipped}{where}", file=sys.stderr)
    if args.on_error == "stop" and problems:
        return EXIT_INPUT_ERRORS
    return EXIT_OK


def _embedder_factory(args: argparse.Namespace, task: Any) -> Callable[[str], Any] | None:
    """How an embeddings student embeds new inputs: the endpoint of --base-url / OPENAI_BASE_URL, in batches
    of the task's finetune.inputs_per_request (vectors kept in memory only: a million lines would not fit
    the run's cache). None when no endpoint is configured."""
    from taskc.runtime.embeddings import Embedder
    from taskc.runtime.provider import provider_settings_from_env

    settings = provider_settings_from_env(args.base_url)
    if settings is None:
        return None
    return lambda model: Embedder(settings, model, per_request=task.finetune.inputs_per_request)


class _Output:
    """stdout, or a file written atomically: answers go to a temporary file beside it that replaces it
    at the end, so a crash or Ctrl-C never leaves half an output (with --on-error stop, the answers up to
    the bad line are kept)."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.partial_ok = False

    def __enter__(self) -> _Output:
        if self.path is None:
            self.stream: TextIO = sys.stdout
        else:
            handle, self.temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                                      dir=self.path.parent.resolve())
            self.stream = os.fdopen(handle, "w", encoding="utf-8")
        return self

    def write(self, text: str) -> None:
        self.stream.write(text)

    def keep_partial(self) -> None:
        self.partial_ok = True

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self.path is None:
            self.stream.flush()
            return
        self.stream.close()
        if kind is None or self.partial_ok:
            os.replace(self.temporary, self.path)
        else:
            os.unlink(self.temporary)


class _Progress:
    """A progress line on stderr every few seconds (rewritten in place on a terminal)."""

    def __init__(self, display: str, quiet: bool) -> None:
        self.display, self.quiet = display, quiet
        self.terminal = sys.stderr.isatty()
        self.last = time.perf_counter()
        self.shown = False

    def update(self, stats: ServingStats) -> None:
        now = time.perf_counter()
        if self.quiet or now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        line = f"taskc: {self.display}: {stats.predicted:,} line{'s' if stats.predicted != 1 else ''} predicted"
        if self.terminal:
            sys.stderr.write("\r" + line)
            self.shown = True
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
