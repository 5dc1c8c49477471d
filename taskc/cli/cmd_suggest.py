"""`taskc suggest`: lexicon additions and exceptions from a run's dev errors, each with its tried effect."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .output import EXIT_OK, EXIT_USAGE

NAME = "suggest"
HELP = "lexicon additions and exceptions that fix dev errors, with how many each fixes and breaks"
DESCRIPTION = """\
Every `taskc run` writes RUN_DIR/suggestions.json from the dev half's errors:
words and phrases discriminative of a rule's misses (or of its wrong votes)
against the correctly classified dev items, each proposed as an addition to a
lexicon the rule reads (or, for a lexicon it reads as `not mentions`, as an
exception). Each was tried: the rules were evaluated again with the lexicon
changed and the primary predictor decided again, the run's trained models held
fixed, so "fixes 2, breaks 0" is what the dev half shows after the edit (up to
the retrained model's part where no rule fires). A word a lexicon already holds
is never suggested for it."""
EPILOG = """\
examples:
  taskc suggest runs/keto
  taskc suggest runs/keto --format json

exit status: 0 listed (also when there is nothing to suggest), 2 RUN_DIR has no suggestions.json."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run's directory (runs/<task> by default)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or JSON")


def run(args: argparse.Namespace) -> int:
    from taskc.runtime.expert_loop import SUGGESTIONS_FILE

    path = Path(args.run_dir) / SUGGESTIONS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        suggestions = list(data["suggestions"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"taskc: error: {path}: cannot read the run's suggestions ({exc}); run `taskc run SPEC -o "
              f"{args.run_dir}` first", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        sys.stdout.write(json.dumps(suggestions, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not suggestions:
        print("no suggestion: no lexicon change tried on the dev errors fixes more than it breaks")
        return EXIT_OK
    headline = None
    for s in suggestions:
        title = f"{s.get('class')}: {s['headline']} (lexicon.{s['lexicon']})"
        if title != headline:
            print(title)
            headline = title
        also = f"  (same effect: {', '.join(s['alternatives'])})" if s.get("alternatives") else ""
        print(f"  {s['text']}{also}")
    return EXIT_OK
