"""`taskc export`: a run's training data in the layouts other trainers read (the work is in runtime/export.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .extras import missing_run_extra
from .output import EXIT_OK, EXIT_USAGE, errors_only, print_diagnostics

NAME = "export"
HELP = "write a run's training data for other trainers, with a dataset card"
DESCRIPTION = """\
Write the examples a run's students trained on (RUN_DIR/training_set.jsonl)
in the layouts other trainers take, so a team can train with any tool:

  messages.jsonl        {"messages": [system, user, assistant]}: chat fine-tuning
                        (OpenAI, open-model services, TRL's SFTTrainer); the same
                        system message and user layout (the input as JSON, fields
                        in declaration order) as taskc's own train.jsonl
  classification.jsonl  {"text": ..., "label": ..., "weight": ..., "source": ...}
                        for a classification head (Hugging Face datasets/Trainer,
                        scikit-learn); text is the fields' text joined by " | "
  labels.json           class name -> index, in the task's class order
  README.md             a dataset card: class balance, label sources and what
                        each means, weights, the LLM that ran (if any), licence

Line n of every JSONL file is the same example. The task file is the one the
run was trained from (recorded in RUN_DIR/model), or --spec; a run made for
another version of the task (its spec hash differs) is refused. Two exports of
the same run are byte-identical. DIR must be new, empty or an earlier export
(pass --force to write into another directory)."""
EPILOG = """\
examples:
  taskc export runs/keto -o export/keto
  taskc export runs/keto -o export/keto --format messages
  taskc export runs/keto -o export/keto --format classification --no-weights
  taskc export runs/keto -o shared/ --force --spec examples/keto.task.yaml

exit status:
  0  the files were written
  1  the run cannot be exported: no training_set.jsonl (run `taskc run SPEC`
     first), a bad line in it (file:line: message), the task file has errors or
     the run was trained for another version of it
  2  usage error: RUN_DIR is not a directory, DIR is a file or not empty and not
     an earlier export (without --force), an unknown --format
  4  DIR cannot be written (permissions, disk full)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run's directory (what `taskc run -o` names)")
    parser.add_argument("-o", "--output", metavar="DIR", required=True,
                        help="write the export here (created; must be empty or an earlier export)")
    parser.add_argument("--format", type=_formats, default=None, metavar="FORMATS",
                        help="comma-separated: messages, classification (default: both); the card is always written")
    parser.add_argument("--no-weights", action="store_true", help="leave the weight column out of classification.jsonl")
    parser.add_argument("--spec", metavar="SPEC", help="the task file (default: the one the run was trained from)")
    parser.add_argument("--force", action="store_true", help="write into DIR even when it holds other files")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def _formats(text: str) -> tuple[str, ...]:
    if missing_run_extra(NAME) is not None:  # `run` says why; parsing the option must not fail first
        return (text,)
    from taskc.runtime.export import parse_formats

    try:
        return parse_formats(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if (missing := missing_run_extra(NAME)) is not None:
        print(f"taskc: error: {missing}", file=sys.stderr)
        return EXIT_USAGE
    from taskc.runtime.export import FORMATS, ExportError, export

    try:
        result = export(Path(args.run_dir), Path(args.output), args.format or FORMATS,
                        spec=Path(args.spec) if args.spec else None, weights=not args.no_weights, force=args.force)
    except ExportError as exc:
        if exc.diagnostics:
            print_diagnostics(errors_only(list(exc.diagnostics), True), exc.sources, "text")
        for problem in exc.problems:
            print(f"taskc: error: {problem}", file=sys.stderr)
        return exc.exit_status
    if not args.quiet:
        for warning in result.warnings:
            print(f"taskc: warning: {warning}", file=sys.stderr)
        for written in result.files:
            size = f"{written.rows:,} {written.what}" if written.rows is not None else written.what
            print(f"taskc: wrote {result.out_dir / written.name} ({size})", file=sys.stderr)
    return EXIT_OK
