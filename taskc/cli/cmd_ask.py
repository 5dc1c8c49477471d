"""`taskc ask`: the questions a run has for the expert, the pool items whose label would teach the model most."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .output import EXIT_OK, EXIT_USAGE

NAME = "ask"
HELP = "the pool items the expert should label next: where rules, LLM and model disagree or the model is unsure"
DESCRIPTION = """\
Every `taskc run` writes RUN_DIR/questions.jsonl: the pool items whose label
would most change the model, chosen by the disagreement between the rules, the
LLM (when one labelled the pool) and the local model, and by how unsure the
model is, near-duplicates left out. This command prints them with the votes
that disagree.

To answer: save the lines (`--format jsonl`) as the file the task's
`pool.answers` names (or pass it to `taskc run --answers FILE`), set each
`label` you know to a class (leave null what you do not know), and rerun. The
answers train the model as expert labels (weighted above the rules) and join the
dev half of the gold set; the test half stays as it was."""
EPILOG = """\
examples:
  taskc ask runs/keto                          the top questions with their votes
  taskc ask runs/keto -n 5
  taskc ask runs/keto --format jsonl > examples/answers.jsonl   a file to fill in

exit status: 0 listed (also when there is no question), 2 RUN_DIR has no questions.jsonl."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run's directory (runs/<task> by default)")
    parser.add_argument("-n", type=int, default=10, metavar="N", help="show the first N questions (default 10)")
    parser.add_argument("--format", choices=("text", "jsonl"), default="text",
                        help="text (default), or the questions as JSON lines to fill in")


def run(args: argparse.Namespace) -> int:
    from taskc.runtime.expert_loop import QUESTIONS_FILE

    path = Path(args.run_dir) / QUESTIONS_FILE
    try:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        print(f"taskc: error: {path}: cannot read the run's questions ({exc}); run `taskc run SPEC -o "
              f"{args.run_dir}` first", file=sys.stderr)
        return EXIT_USAGE
    shown = lines[:max(0, args.n)]
    if args.format == "jsonl":
        for line in shown:
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not shown:
        print("no questions: every pool item's voters agree and the model is sure (or the run had no pool)")
        return EXIT_OK
    for line in shown:
        question = line.get("question") or {}
        print(f"{question.get('rank')}. {_item(line)}  (pool line {question.get('pool_line')})")
        print(f"   {question.get('why')}")
    print(f"\nanswer them: `taskc ask {args.run_dir} --format jsonl > answers.jsonl`, fill in each label, point "
          "pool.answers (or `taskc run --answers`) at the file, rerun")
    return EXIT_OK


def _item(line: dict[str, Any]) -> str:
    parts = []
    for key, value in line.items():
        if key in ("label", "question") or value in (None, "", []):
            continue
        parts.append(", ".join(map(str, value)) if isinstance(value, list) else str(value))
    text = " — ".join(parts)
    return text if len(text) <= 110 else text[:107] + "..."
