"""`taskc runs`: the history of a run directory, one line per `taskc run`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from taskc.compiler.money import format_usd

from .output import EXIT_OK, EXIT_USAGE

NAME = "runs"
HELP = "list the runs of a run directory: when, which task version, how the primary scored"
DESCRIPTION = """\
Every `taskc run` appends a record to RUN_DIR/history.jsonl: the time, the
taskc version, the spec hash, the git commit (in a repository), the primary
predictor and whether it passed, every predictor's scores with their 95%
intervals, the LF figures per rationale and the plan's estimated cost. Earlier
records are never rewritten, and a copy of each run's task file is kept under
RUN_DIR/history/, so each report can open with what changed since the run
before. This command lists the records, newest last."""
EPILOG = """\
examples:
  taskc runs runs/keto                      a table of the runs
  taskc runs runs/keto --format json        the records, one JSON object per line
  taskc runs runs/keto --last 5

exit status: 0 listed (also when there is no run yet), 2 RUN_DIR is not a directory."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run's directory (runs/<task> by default)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or JSON lines")
    parser.add_argument("--last", type=int, metavar="N", help="only the last N runs")


def run(args: argparse.Namespace) -> int:
    from taskc.runtime.history import read_history

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        print(f"taskc: error: {run_dir}: not a directory (RUN_DIR is what `taskc run` wrote, runs/<task> by "
              "default)", file=sys.stderr)
        return EXIT_USAGE
    records = read_history(run_dir)
    if args.last is not None:
        records = records[-args.last:] if args.last > 0 else []
    if args.format == "json":
        for record in records:
            sys.stdout.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not records:
        print(f"no runs recorded in {run_dir} yet (`taskc run SPEC -o {run_dir}` records one)")
        return EXIT_OK
    rows = [history_row(record) for record in records]
    header = ["#", "time (UTC)", "spec", "commit", "primary", "macro-F1 (test, 95% CI)", "verdict", "est. cost"]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for line in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return EXIT_OK


def history_row(record: dict[str, Any]) -> list[str]:
    primary = str(record.get("primary") or "")
    scores = (record.get("scores") or {}).get(primary) or {}
    judged = scores.get("test") or scores.get("all") or {}
    value, interval = judged.get("macro_f1"), judged.get("macro_f1_ci")
    score = "n/a" if value is None else f"{value:.3f}"
    if value is not None and isinstance(interval, list) and len(interval) == 2:
        score += f" ({interval[0]:.3f}–{interval[1]:.3f})"
    passed = record.get("passed")
    verdict = "passed" if passed else ("failed" if passed is False else "no gold")
    cost = record.get("cost_estimate_usd")
    return [str(record.get("number")), str(record.get("time", "")).replace("T", " ").rstrip("Z"),
            str(record.get("spec_hash") or "")[:10], str(record.get("git_commit") or "-")[:10], primary, score,
            verdict, "-" if cost is None else format_usd(cost)]
